"""``midas-diffusion`` command line.

    midas-diffusion models
    midas-diffusion depth INPUT... -o OUTDIR [--model NAME] [--format png16,pfm,npy,preview] [--metric-from POINTS]
    midas-diffusion evaluate --model A,B --dataset nyu,kitti,... --root DIR [--limit N] [--out results.json]
    accelerate launch -m midas_diffusion.cli depth ...   # the same run split across processes/GPUs

Other subcommands (``stylize``, ``rgbd``, ``ui``) come from the ``pipelines`` and ``ui`` packages
through the ``midas_diffusion.cli`` entry-point group.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from ._registry import DEFAULT_MODEL

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in VIDEO_SUFFIXES


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def read_file_list(list_path: str) -> List[str]:
    """Paths from a text file, one per line (blank lines and lines starting with # ignored);
    relative paths are relative to the current folder, as ``tar -T``."""
    lines = Path(list_path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def collect_inputs(inputs: Sequence[str]) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """(file, output stem relative to OUTDIR) pairs, and the inputs that do not exist.

    Folders are searched recursively for images and videos and mirrored; a file gives its own
    name (a relative path with folders, e.g. from a file list, is mirrored as given)."""
    pairs: List[Tuple[Path, Path]] = []
    missing: List[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file() and _is_media(p)):
                pairs.append((f, f.relative_to(path).with_suffix("")))
        elif path.is_file():
            safe = not path.is_absolute() and ".." not in path.parts
            pairs.append((path, path.with_suffix("") if safe else Path(path.stem)))
        else:
            missing.append(item)
    return pairs, missing


def output_paths(outdir: Path, stem: Path, formats: Iterable[str]) -> dict:
    from .writers import SUFFIXES

    return {fmt: outdir / stem.parent / (stem.name + SUFFIXES[fmt]) for fmt in formats}


def frame_stem(stem: Path, index: int) -> Path:
    """A video's frame ``index`` is written as ``OUTDIR/<video stem>/<index:06d>.<fmt>``."""
    return stem / f"{index:06d}"


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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_depth_parser(sub) -> None:
    p = sub.add_parser("depth", help="estimate depth for image files, folders, file lists and videos")
    p.add_argument("inputs", nargs="*", help="images, videos and/or folders (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--files-from", action="append", default=[], metavar="LIST",
                   help="text file naming one input per line (relative to the current folder); repeatable")
    p.add_argument("--model", default=DEFAULT_MODEL, help="zoo model name, checkpoint file or saved folder")
    p.add_argument("--checkpoint", default=None, help="weights file for --model (default: weights folder)")
    p.add_argument("--weights-dir", default=None, help="folder holding the official .pt files")
    p.add_argument("--format", type=_parse_formats, default=["png16"],
                   help="comma list of png16 (16-bit disparity), pfm (raw), npy (raw), preview (color)")
    p.add_argument("--resolution", type=int, default=None, help="processing resolution (MiDaS --height)")
    p.add_argument("--square", action="store_true", help="resize to a square network input")
    p.add_argument("--percentile", type=_parse_percentile, default=None, help="clip LOW,HIGH percentiles")
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--invert", action="store_true", help="near = dark")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (under accelerate launch, cuda = this process's GPU)")
    p.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto",
                   help="auto: bfloat16 on CPUs with native bf16 units, float16 on CUDA (bfloat16 for Swin), per model")
    p.add_argument("--batch-size", type=_positive_int, default=1, help="images of equal network size per forward pass")
    p.add_argument("--read-ahead", type=int, default=2, help="batches decoded ahead in background threads (0: none)")
    p.add_argument("--decode-threads", type=_positive_int, default=None,
                   help="threads decoding images ahead (default: up to 4, one core left for the main thread)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster convolutions on GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (slow first batch per size)")
    p.add_argument("--tiles", action="store_true",
                   help="high resolution: overlapping tiles at the model's size aligned to a whole-image pass")
    p.add_argument("--tile-overlap", type=float, default=0.25, help="overlap of neighbouring tiles (fraction)")
    p.add_argument("--video-norm", choices=["sequence", "frame"], default="sequence",
                   help="videos: one range over a window of frames (no flicker) or per frame")
    p.add_argument("--window", type=_positive_int, default=16, help="frames per range window (--video-norm sequence)")
    p.add_argument("--cut-threshold", type=float, default=0.2, help="scene-cut threshold (mean thumbnail change)")
    p.add_argument("--max-pixels", type=float, default=64e6, help="refuse larger images (default 64e6)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--export", type=parse_export_formats, default=[],
                   help="also write a 3D file per image: comma list of ply (points), glb (mesh)")
    p.add_argument("--fov", type=float, default=60.0, help="--export: field of view along the longer side, degrees")
    p.add_argument("--near", type=float, default=1.0, help="--export: distance of disparity 1")
    p.add_argument("--far", type=float, default=10.0, help="--export: distance of disparity 0")
    p.add_argument("--max-depth-jump", type=float, default=0.1, help="--export glb: cut triangles across larger jumps")
    p.add_argument("--panorama", action="store_true", help="--export: equirectangular unprojection")
    p.add_argument("--metric-from", default=None, metavar="POINTS",
                   help="known depths: CSV x,y,depth_m, 16-bit PNG in mm, NPY in metres, EXR (imageio), or a folder "
                        "of them named like the images; also writes NAME-metric.png (mm) / .npy / .pfm (metres) "
                        "and makes --export metric")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_depth)


def parse_export_formats(text: str) -> List[str]:
    """``--export ply,glb``: the 3D formats of ``midas_diffusion.rgbd.EXPORT_FORMATS`` (both CLIs)."""
    from .rgbd import EXPORT_FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown export format(s) {bad}; choose from {', '.join(EXPORT_FORMATS)}")
    return formats


def _all_exist(targets: dict) -> bool:
    return all(p.exists() for p in targets.values())


def _write(targets: dict, disparity, raw, rgb=None, args=None, metric=None) -> None:
    """Write every requested output of one image; ``ply``/``glb`` (``--export``) need its RGB;
    ``metric`` (a ``MetricDepth``, from ``--metric-from``) feeds ``metric-*`` outputs and the exports."""
    from .writers import WRITERS

    for fmt, path in targets.items():
        if fmt.startswith("metric-"):
            from .metric_io import write_metric

            write_metric({fmt: path}, metric)
        elif fmt in ("ply", "glb"):
            from .rgbd import EXPORTERS

            geometry = dict(fov_deg=args.fov, near=args.near, far=args.far, panorama=args.panorama)
            if fmt == "glb":
                geometry["max_depth_jump"] = args.max_depth_jump
            if metric is not None:
                geometry["depth"] = metric.depth
            from .images import to_float_rgb

            pixels = to_float_rgb(rgb).permute(1, 2, 0).cpu().numpy()  # rgb: compact (C,H,W)
            EXPORTERS[fmt](path, pixels, disparity.squeeze().float().cpu(), **geometry)
        else:
            WRITERS[fmt](path, raw if fmt in ("pfm", "npy") else disparity)


def _load_estimator(args, device: str):
    import torch

    from .estimator import DepthEstimator

    est = DepthEstimator.from_pretrained(
        args.model,
        checkpoint=args.checkpoint,
        weights_dir=args.weights_dir,
        resolution=args.resolution,
        square=args.square or None,
        max_pixels=int(args.max_pixels) if args.max_pixels else None,
        progress=not args.no_progress,
        dtype=torch.float32,  # cast once, below, for the device it runs on
    )
    est.to(device, args.dtype, memory_format=torch.channels_last if args.channels_last else None)
    if args.compile:
        est.compile()
    return est


class _Counts:
    def __init__(self):
        self.done = self.skipped = self.failed = 0


def run_depth(args) -> int:
    from .parallel import current_shard, finish, resolve_device, sum_counts

    inputs = list(args.inputs)
    for list_path in args.files_from:
        try:
            inputs.extend(read_file_list(list_path))
        except OSError as exc:
            print(f"error: cannot read file list {list_path}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if not inputs:
        print("error: no inputs (give files, folders or --files-from LIST)", file=sys.stderr)
        return 1
    if args.tiles and not 0 <= args.tile_overlap <= 0.9:
        print(f"error: --tile-overlap must be in [0, 0.9], got {args.tile_overlap}", file=sys.stderr)
        return 1
    pairs, missing = collect_inputs(inputs)
    shard = current_shard(cpu=args.device.startswith("cpu"))
    counts = _Counts()
    if shard.is_main:
        for item in missing:
            print(f"error: {item}: no such file or folder", file=sys.stderr)
        counts.failed += len(missing)
    # two inputs that would write the same output: neither is processed
    by_stem: dict = {}
    for src, stem in pairs:
        by_stem.setdefault(stem, []).append(src)
    clashes = {stem for stem, srcs in by_stem.items() if len(srcs) > 1}
    if clashes and shard.is_main:
        for stem in sorted(clashes):
            names = ", ".join(str(s) for s in by_stem[stem])
            print(f"error: {names}: same output name {stem}; run them separately or give their folder", file=sys.stderr)
            counts.failed += len(by_stem[stem])
    pairs = shard.take([(src, stem) for src, stem in pairs if stem not in clashes])
    outdir = Path(args.output)
    images = [(src, output_paths(outdir, stem, args.format + args.export)) for src, stem in pairs if not is_video(src)]
    videos = [(src, stem) for src, stem in pairs if is_video(src)]
    if getattr(args, "metric_from", None):
        from .metric_io import check_metric_request, metric_targets

        problem = check_metric_request(args.metric_from, len(images), len(videos), args.format, args.export)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            finish(shard)
            return 1
        images = [(src, {**targets, **metric_targets(targets)}) for src, targets in images]
    todo = []
    for src, targets in images:
        if not args.overwrite and _all_exist(targets):
            counts.skipped += 1
        else:
            todo.append((src, targets))
    start = time.perf_counter()
    if todo or videos:
        try:
            est = _load_estimator(args, resolve_device(args.device, shard))
        except (ValueError, FileNotFoundError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            finish(shard)
            return 1
        progress = not args.no_progress and shard.is_main
        _run_images(est, todo, args, counts, progress)
        for src, stem in videos:
            _run_video(est, src, outdir, stem, args, counts, progress)
    seconds = time.perf_counter() - start
    local = {"done": counts.done, "skipped": counts.skipped, "failed": counts.failed, "seconds": seconds}
    total = sum_counts(shard, local)
    if shard.is_main:
        # images per second of the whole run: all processes' images over the slowest wall time
        wall = total["seconds"] / shard.count if shard.count > 1 else seconds
        rate = total["done"] / wall if total["done"] and wall > 0 else 0.0
        procs = f" on {shard.count} processes" if shard.count > 1 else ""
        print(f"done {total['done']:.0f}, skipped {total['skipped']:.0f} (existing), failed {total['failed']:.0f}; "
              f"{rate:.2f} images/s{procs}")
    failed_any = total["failed"] > 0
    finish(shard)
    return 1 if failed_any else 0


def _run_images(est, todo, args, counts: _Counts, progress: bool) -> None:
    from tqdm.auto import tqdm

    from .batching import default_decode_threads, group_batches, peek_size, read_ahead
    from .images import load_image_file, to_compact_tensors

    if not todo:
        return

    def net_size(item):
        size = peek_size(item[0])
        if size is None or args.tiles:
            return ("single", str(item[0])) if size is None else ("tiles", size)
        return est.network_input_size(*size)

    batches = group_batches(todo, net_size, 1 if args.tiles else args.batch_size)

    pinned = est.device.type == "cuda"

    def load(item):  # in the read-ahead threads: decoded, compact (uint8/uint16), pinned for a GPU
        return to_compact_tensors(load_image_file(item[0], est.max_pixels), est.max_pixels, pin_memory=pinned)[0]

    bar = tqdm(total=len(todo), desc="depth", unit="img", disable=not progress)
    workers = getattr(args, "decode_threads", None) or default_decode_threads()
    # decoding runs ahead on `workers` threads; one writer thread writes a batch's files while the
    # next batch computes (at most one batch of files in flight)
    written: Optional[Future] = None

    def collect() -> None:
        nonlocal written
        if written is not None:
            done, failed = written.result()  # re-raises what stopped the writer (e.g. a kill)
            counts.done += done
            counts.failed += failed
            written = None

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="midas-write") as writer:
        for batch, loaded in read_ahead(batches, load, depth=args.read_ahead, workers=workers):
            ready = []
            for (src, targets), rgb in zip(batch, loaded):
                if isinstance(rgb, (ValueError, OSError)):
                    counts.failed += 1
                    tqdm.write(f"error: {src}: {rgb}", file=sys.stderr)
                elif isinstance(rgb, BaseException):
                    raise rgb
                else:
                    ready.append((src, targets, rgb))
            bar.update(len(batch) - len(ready))
            if not ready:
                continue
            try:
                if args.tiles:
                    from .tiling import estimate_tiled

                    outs = [
                        estimate_tiled(est, rgb, tile_overlap=args.tile_overlap, batch_size=args.batch_size,
                                       percentile=args.percentile, gamma=args.gamma, invert=args.invert)
                        for _, _, rgb in ready
                    ]
                else:
                    outs = est.estimate_each([rgb for _, _, rgb in ready], percentile=args.percentile,
                                             gamma=args.gamma, invert=args.invert, batch_size=len(ready))
            except (ValueError, OSError) as exc:
                counts.failed += len(ready)
                tqdm.write(f"error: {', '.join(str(r[0]) for r in ready)}: {exc}", file=sys.stderr)
                bar.update(len(ready))
                continue
            items = [(src, targets, rgb, out.disparity[0], out.raw[0]) for (src, targets, rgb), out in zip(ready, outs)]
            collect()
            written = writer.submit(_write_batch, items, args, bar)
        collect()
    bar.close()


def _write_batch(items, args, bar) -> Tuple[int, int]:
    """Write the outputs of one batch (``(src, targets, rgb, disparity, raw)`` each): ``(done, failed)``;
    a file that cannot be written is reported and counted, the others are written."""
    from tqdm.auto import tqdm

    done = failed = 0
    for src, targets, rgb, disparity, raw in items:
        try:
            metric = None
            if getattr(args, "metric_from", None):
                from .metric_io import metric_for_image

                metric = metric_for_image(args.metric_from, src, raw)
            _write(targets, disparity, raw, rgb, args, metric)
            done += 1
        except (ValueError, OSError) as exc:
            failed += 1
            tqdm.write(f"error: {src}: {exc}", file=sys.stderr)
        bar.update(1)
    return done, failed


def _run_video(est, src: Path, outdir: Path, stem: Path, args, counts: _Counts, progress: bool) -> None:
    """Depth of every frame of a video, as ``OUTDIR/<stem>/<frame:06d>.<fmt>``.

    With sequence normalization a frame's map depends on the ``--window`` frames before it, so a
    resumed run re-predicts (without writing) the frames in the window of each missing one."""
    import torch
    from tqdm.auto import tqdm

    from .temporal import SequenceNormalization, SequenceNormalizer, thumbnail
    from .video import frame_count, read_frames

    sequence = args.video_norm == "sequence"
    window = args.window if sequence else 1
    try:
        total = frame_count(src)
        if sequence:
            normalizer = SequenceNormalizer(SequenceNormalization(
                window=args.window, percentile=args.percentile or (1.0, 99.0), cut_threshold=args.cut_threshold,
                gamma=args.gamma, invert=args.invert))
    except (ValueError, OSError, ImportError) as exc:
        counts.failed += 1
        print(f"error: {src}: {exc}", file=sys.stderr)
        return

    def targets(i):
        return output_paths(outdir, frame_stem(stem, i), args.format + args.export)

    def missing(i):
        return args.overwrite or not _all_exist(targets(i))

    def needed(i):  # frame i must be predicted: it, or a frame whose window holds it, is missing
        last = i + window - 1 if total is None else min(i + window - 1, total - 1)
        return any(missing(j) for j in range(i, last + 1))

    pending = []  # (index, thumbnail, rgb or None)
    bar = tqdm(total=total, desc=src.name, unit="frame", disable=not progress)

    def flush():
        rgbs = [rgb for _, _, rgb in pending if rgb is not None]
        raws, disparities = [], []
        if rgbs:
            if args.tiles:
                from .tiling import estimate_tiled

                outs = [estimate_tiled(est, rgb, tile_overlap=args.tile_overlap, batch_size=args.batch_size,
                                       percentile=args.percentile, gamma=args.gamma, invert=args.invert) for rgb in rgbs]
                raws = [o.per_image("raw")[0] for o in outs]
                disparities = [o.per_image("disparity")[0] for o in outs]
            else:
                out = est(rgbs, percentile=args.percentile, gamma=args.gamma, invert=args.invert, batch_size=len(rgbs))
                raws, disparities = out.per_image("raw"), out.per_image("disparity")
        k = 0
        for index, thumb, rgb in pending:
            if sequence:
                normalizer.observe(index, thumb)
            if rgb is None:
                counts.skipped += 1
                bar.update(1)
                continue
            raw, disparity = raws[k], disparities[k]
            k += 1
            if sequence:
                normalizer.add(index, raw)
            if missing(index):
                if sequence:
                    disparity = normalizer.normalize(index, raw)
                _write(targets(index), disparity, raw, rgb, args)
                counts.done += 1
            else:
                counts.skipped += 1
            bar.update(1)
        pending.clear()

    try:
        for index, frame in read_frames(src):
            rgb = torch.from_numpy(frame).permute(2, 0, 1)  # compact uint8 (3,H,W)
            keep = needed(index)
            pending.append((index, thumbnail(rgb) if sequence else None, rgb if keep else None))
            if sum(1 for p in pending if p[2] is not None) >= args.batch_size:
                flush()
        flush()
    except (ValueError, OSError) as exc:
        counts.failed += 1
        tqdm.write(f"error: {src}: {exc}", file=sys.stderr)
    bar.close()


def run_models(args) -> int:
    from ._registry import get_model_spec, list_models
    from .precision import BF16_INACCURATE, CPU_BF16_ERROR

    print(f"{'name':26s} {'input':>9s} {'params':>7s} {'fps@3090':>8s} {'bf16 mean|Δ|':>12s} {'cpu auto':>8s}  description")
    for name in list_models():
        spec = get_model_spec(name)
        h, w = spec.net_size
        fps = f"{spec.reference_fps:g}" if spec.reference_fps else "-"
        error = CPU_BF16_ERROR.get(name)
        bf16 = f"{error.mean:.1e}" if error else "-"
        auto = "fp32" if name in BF16_INACCURATE else "bf16"
        print(f"{name:26s} {h:>4d}x{w:<4d} {spec.params_m:>6.0f}M {fps:>8s} {bf16:>12s} {auto:>8s}  {spec.description}")
    print("bf16 mean|Δ|: bf16 vs float32 on a bf16 CPU, mean difference of the normalized disparity (of its range); "
          "cpu auto: what dtype='auto' picks on a CPU with native bf16 (float32 elsewhere)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="midas-diffusion", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_depth_parser(sub)
    models = sub.add_parser("models", help="list the zoo")
    models.set_defaults(func=run_models)
    from .evaluate_cli import add_evaluate_parser

    add_evaluate_parser(sub)
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
