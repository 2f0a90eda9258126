"""``midas-diffusion`` command line.

    midas-diffusion models
    midas-diffusion depth INPUT... -o OUTDIR [--model NAME] [--format png16,pfm,npy,preview]

Other subcommands (``stylize``, ``rgbd``, ``ui``) come from the ``pipelines`` and ``ui`` packages
through the ``midas_diffusion.cli`` entry-point group.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


def collect_inputs(inputs: Sequence[str]) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """(file, output stem relative to OUTDIR) pairs, and the inputs that do not exist."""
    pairs: List[Tuple[Path, Path]] = []
    missing: List[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                pairs.append((f, f.relative_to(path).with_suffix("")))
        elif path.is_file():
            pairs.append((path, Path(path.stem)))
        else:
            missing.append(item)
    return pairs, missing


def output_paths(outdir: Path, stem: Path, formats: Iterable[str]) -> dict:
    from .writers import SUFFIXES

    return {fmt: outdir / stem.parent / (stem.name + SUFFIXES[fmt]) for fmt in formats}


def _parse_formats(text: str) -> List[str]:
    from .writers import FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
    return formats


def _parse_percentile(text: str) -> Tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("percentile is LOW,HIGH, e.g. 2,98") from None
    return low, high


def add_depth_parser(sub) -> None:
    p = sub.add_parser("depth", help="estimate depth for image files and folders")
    p.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--model", default="dpt_beit_large_512", help="zoo model name, checkpoint file or saved folder")
    p.add_argument("--checkpoint", default=None, help="weights file for --model (default: weights folder)")
    p.add_argument("--weights-dir", default=None, help="folder holding the official .pt files")
    p.add_argument("--format", type=_parse_formats, default=["png16"],
                   help="comma list of png16 (16-bit disparity), pfm (raw), npy (raw), preview (color)")
    p.add_argument("--resolution", type=int, default=None, help="processing resolution (MiDaS --height)")
    p.add_argument("--square", action="store_true", help="resize to a square network input")
    p.add_argument("--percentile", type=_parse_percentile, default=None, help="clip LOW,HIGH percentiles")
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--invert", action="store_true", help="near = dark")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--max-pixels", type=float, default=64e6, help="refuse larger images (default 64e6)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_depth)


def run_depth(args) -> int:
    import torch

    from .estimator import DepthEstimator
    from .writers import WRITERS

    pairs, missing = collect_inputs(args.inputs)
    for item in missing:
        print(f"error: {item}: no such file or folder", file=sys.stderr)
    outdir = Path(args.output)
    todo = []
    skipped = 0
    for src, stem in pairs:
        targets = output_paths(outdir, stem, args.format)
        if not args.overwrite and all(p.exists() for p in targets.values()):
            skipped += 1
            continue
        todo.append((src, targets))
    failed = len(missing)
    done = 0
    start = time.perf_counter()
    if todo:
        try:
            est = DepthEstimator.from_pretrained(
                args.model,
                checkpoint=args.checkpoint,
                weights_dir=args.weights_dir,
                resolution=args.resolution,
                square=args.square or None,
                max_pixels=int(args.max_pixels) if args.max_pixels else None,
                progress=not args.no_progress,
            ).to(args.device, getattr(torch, args.dtype))
        except (ValueError, FileNotFoundError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        from tqdm.auto import tqdm

        for src, targets in tqdm(todo, desc="depth", unit="img", disable=args.no_progress):
            try:
                out = est(str(src), percentile=args.percentile, gamma=args.gamma, invert=args.invert)
                disparity, raw = out.per_image("disparity")[0], out.per_image("raw")[0]
                for fmt, path in targets.items():
                    WRITERS[fmt](path, raw if fmt in ("pfm", "npy") else disparity)
                done += 1
            except (ValueError, OSError) as exc:
                failed += 1
                tqdm.write(f"error: {src}: {exc}", file=sys.stderr)
    seconds = time.perf_counter() - start
    rate = done / seconds if done and seconds > 0 else 0.0
    print(f"done {done}, skipped {skipped} (existing), failed {failed}; {rate:.2f} images/s")
    return 0 if failed == 0 else 1


def run_models(args) -> int:
    from ._registry import get_model_spec, list_models

    print(f"{'name':26s} {'input':>9s} {'params':>7s} {'fps@3090':>8s}  description")
    for name in list_models():
        spec = get_model_spec(name)
        h, w = spec.net_size
        fps = f"{spec.reference_fps:g}" if spec.reference_fps else "-"
        print(f"{name:26s} {h:>4d}x{w:<4d} {spec.params_m:>6.0f}M {fps:>8s}  {spec.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="midas-diffusion", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_depth_parser(sub)
    models = sub.add_parser("models", help="list the zoo")
    models.set_defaults(func=run_models)
    for extension in _extensions():
        extension(sub)
    return parser


def _extensions():
    """Subcommands contributed by other packages through the ``midas_diffusion.cli`` entry point
    group (each entry is a function ``add_parsers(subparsers)``), so this package never imports them."""
    from importlib.metadata import entry_points

    found = []
    for entry in entry_points(group="midas_diffusion.cli"):
        try:
            found.append(entry.load())
        except ImportError:  # an optional dependency of that package is missing
            continue
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
