"""``midas-diffusion depth SHARDS.tar -o OUT``: WebDataset tar shards in, shards of the same names out.

Each output shard holds every member of its input shard unchanged and in order, and after each sample's
members its depth fields (``depth.png`` 16-bit, and ``depth.npy`` / ``depth.pfm`` / ``depth-preview.png``
as ``--format`` asks) and ``midas.json`` (settings and model). The images run through the same loop
as files (``depth.run_images``: batched by network size, decoded ahead). A shard is written under a
temporary name and renamed into place when complete: a finished shard (its output name exists) is
skipped, an interrupted one is redone. A sample whose image cannot be read is named on stderr and left
out; the shard still completes. ``--engine ray`` runs the shards on a Ray cluster (``depth_ray``).
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from ..inference.annotator import depth_settings
from ..io.shards import SETTINGS_FIELD, ShardError, depth_fields, is_shard, iter_expanded, read_shard, write_shard
from .image_loop import Counts, ImageSource, load_estimator, run_images

# what the shard path cannot do (each writes files beside an image, and a shard has no folder)
_FILE_ONLY = (("export", "--export"), ("metric_from", "--metric-from"), ("files_from", "--files-from"))


@dataclass
class ShardResult:
    """What one shard's run did: images done/failed, and whether the output shard was written."""

    done: int = 0
    failed: int = 0
    written: bool = False


def wants_shards(inputs: Sequence[str]) -> bool:
    return any(is_shard(item) for item in inputs)


def option_errors(args) -> List[str]:
    """Options the shard path cannot take (each stops the run before anything is read)."""
    return [f"{flag} does not apply to tar shards (write files from a folder instead)"
            for name, flag in _FILE_ONLY if getattr(args, name, None)]


def plan_shards(args) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """``(input, output)`` shard pairs, and error lines (inputs that are not shards or do not exist, two
    inputs of one output name): the others still run."""
    errors: List[str] = []
    paths: List[Path] = []
    try:
        expanded = list(iter_expanded(args.inputs))
    except ValueError as exc:
        return [], [str(exc)]
    for item in expanded:
        path = Path(item)
        if not is_shard(path):
            errors.append(f"{item}: not a .tar shard (give shards and folders of images in separate runs)")
        elif not path.is_file():
            errors.append(f"{item}: no such shard")
        else:
            paths.append(path)
    by_name: Dict[str, List[Path]] = {}
    for path in paths:
        by_name.setdefault(path.name, []).append(path)
    for name, same in by_name.items():
        if len(same) > 1:
            errors.append(f"{', '.join(map(str, same))}: same output shard {name}; run them separately")
    outdir = Path(args.output)
    pairs = [(p, outdir / p.name) for p in paths if len(by_name[p.name]) == 1]
    same = [src for src, dest in pairs if dest.resolve() == src.resolve()]
    errors += [f"{src}: the output shard would replace it (give another -o folder)" for src in same]
    return [(src, dest) for src, dest in pairs if src not in same], errors


def _sample_source(shard: Path) -> ImageSource:
    from ..io.images import load_image_bytes
    from .batching import peek_size

    def name(item):  # items: (sample index, key, image bytes)
        return f"{shard}:{item[1]}"

    return ImageSource(name=name, peek=lambda item: peek_size(io.BytesIO(item[2])),
                       load=lambda item, max_pixels: load_image_bytes(item[2], name(item), max_pixels))


def process_shard(est, src: Path, dest: Path, args, progress: bool = False) -> ShardResult:
    """Depth for every image sample of shard ``src``, written as shard ``dest`` (atomically)."""
    result = ShardResult()
    try:
        samples = read_shard(src)
    except ShardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        result.failed += 1
        return result
    image_fields = [(i, sample, sample.image_field()) for i, sample in enumerate(samples)]
    items = [(i, sample.key, sample.fields()[name]) for i, sample, name in image_fields if name is not None]
    fields: Dict[int, Dict[str, bytes]] = {}

    def keep(batch, _args, bar):  # on the writer thread: encode each sample's depth fields
        for (i, _, _), _rgb, disparity, raw, _metres in batch:  # raw: a metric model's metres
            fields[i] = depth_fields(disparity, raw, args.format)
            bar.update(1)
        return len(batch), 0

    counts = Counts()
    run_images(est, items, args, counts, progress, source=_sample_source(src), write_batch=keep)
    tile_overlap = args.tile_overlap if args.tiles else None
    settings = depth_settings(est, args.format, args.percentile, args.gamma, args.invert, tile_overlap)
    image_rows = {i for i, _, _ in items}
    out = [(s, {**fields[i], SETTINGS_FIELD: settings} if i in fields else {})
           for i, s in enumerate(samples) if i in fields or i not in image_rows]
    try:
        write_shard(dest, out)
    except OSError as exc:
        print(f"error: {dest}: cannot write the shard ({exc.strerror or exc})", file=sys.stderr)
        result.failed += counts.done + counts.failed
        return result
    result.done, result.failed, result.written = counts.done, counts.failed, True
    return result


def run_here(args, todo: Sequence[Tuple[Path, Path]]) -> List[ShardResult]:
    """The shards one after another in this process (the ``--engine local`` runner); under
    ``accelerate launch`` on this process's device."""
    from ..inference.devices import resolve_device
    from .parallel import current_shard, process_device

    device = process_device(args.device, current_shard(cpu=args.device.startswith("cpu")))
    est = load_estimator(args, resolve_device(device))
    return [process_shard(est, src, dest, args, not args.no_progress) for src, dest in todo]


def run_shards(args, runner: Callable = run_here) -> int:
    """The shard path of ``depth``: plan, then ``runner(args, todo)`` (``run_here``, or Ray's ``run_on_ray``).
    With ``run_here`` under ``accelerate launch`` the processes stride over the shards, as over files."""
    from .parallel import ProcessShard, current_shard, finish, sum_counts

    problems = option_errors(args)
    if args.tiles and not 0 <= args.tile_overlap <= 0.9:
        problems.append(f"--tile-overlap must be in [0, 0.9], got {args.tile_overlap}")
    pairs, errors = plan_shards(args) if not problems else ([], [])
    for line in problems + errors:
        print(f"error: {line}", file=sys.stderr)
    if problems or (errors and not pairs):
        return 1
    procs = current_shard(cpu=args.device.startswith("cpu")) if runner is run_here else ProcessShard()
    pairs = procs.take(pairs)  # before looking at what exists, so that every process agrees
    todo = [(src, dest) for src, dest in pairs if args.overwrite or not dest.exists()]
    start = time.perf_counter()
    results: List[ShardResult] = []
    problem = None
    if todo:
        try:
            results = runner(args, todo)
        except (ValueError, RuntimeError, ImportError, FileNotFoundError, OSError) as exc:
            problem = str(exc)
            print(f"error: {problem}", file=sys.stderr)
    local = {"written": sum(r.written for r in results), "unwritten": len(results) - sum(r.written for r in results),
             "skipped": len(pairs) - len(todo), "done": sum(r.done for r in results),
             "failed": sum(r.failed for r in results), "problems": int(problem is not None),
             "seconds": time.perf_counter() - start}
    total = sum_counts(procs, local)
    if procs.is_main and not total["problems"]:
        wall = total["seconds"] / procs.count
        rate = total["done"] / wall if total["done"] and wall > 0 else 0.0
        on = f" on {procs.count} processes" if procs.count > 1 else ""
        print(f"shards: written {total['written']:.0f}, skipped {total['skipped']:.0f} (finished), "
              f"failed {total['unwritten']:.0f}; images: done {total['done']:.0f}, failed {total['failed']:.0f}; "
              f"{rate:.2f} images/s{on}")
    finish(procs)
    return 1 if errors or total["problems"] or total["failed"] or total["unwritten"] else 0
