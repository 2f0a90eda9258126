"""The run over images shared by files and tar shards: batched by network size, decoded ahead in
threads, results written on a writer thread while the next batch computes; and the estimator it runs."""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from .write import write_outputs


def load_estimator(args, device: str):
    import torch

    from ..inference.estimator import DepthEstimator

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
    est.set_backend(getattr(args, "backend", "auto"))
    if args.compile:
        est.compile()
    return est


class Counts:
    def __init__(self):
        self.done = self.skipped = self.failed = 0


@dataclass(frozen=True)
class ImageSource:
    """How the image loop reaches an item's image: its name in messages, its size from the header
    (``(height, width)``, None if unreadable) and its full decode (a PIL image, or an ``ImageError``)."""

    name: Callable[[Any], str]
    peek: Callable[[Any], Optional[Tuple[int, int]]]
    load: Callable[[Any, Optional[int]], Any]


def _file_source() -> ImageSource:
    from ..io.images import load_image_file
    from .batching import peek_size

    return ImageSource(name=lambda item: str(item[0]), peek=lambda item: peek_size(item[0]),
                       load=lambda item, max_pixels: load_image_file(item[0], max_pixels))


def run_images(est, todo, args, counts: Counts, progress: bool, source: Optional[ImageSource] = None,
               write_batch: Optional[Callable] = None) -> None:
    """Depth of every item of ``todo``: batched by network size, decoded ahead in threads, each batch's
    results handed to ``write_batch(items, args, bar) -> (done, failed)`` (``(item, rgb, disparity, raw,
    metres)`` each; ``metres`` None for a relative model) on a writer thread while the next batch computes. Files (``(path, targets)`` items) by
    default; the shard path passes its samples' ``source`` and a ``write_batch`` of its own."""
    from tqdm.auto import tqdm

    from ..inference.batching import group_batches
    from ..io.images import to_compact_tensors
    from .batching import default_decode_threads, read_ahead

    if not todo:
        return
    source = source or _file_source()
    write_batch = write_batch or _write_batch

    def net_size(item):
        size = source.peek(item)
        if size is None or args.tiles:
            return ("single", source.name(item)) if size is None else ("tiles", size)
        return est.network_input_size(*size)

    batches = group_batches(todo, net_size, 1 if args.tiles else args.batch_size)

    pinned = est.device.type == "cuda"

    def load(item):  # in the read-ahead threads: decoded, compact (uint8/uint16), pinned for a GPU
        return to_compact_tensors(source.load(item, est.max_pixels), est.max_pixels, pin_memory=pinned)[0]

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
            for item, rgb in zip(batch, loaded):
                if isinstance(rgb, (ValueError, OSError)):
                    counts.failed += 1
                    tqdm.write(f"error: {source.name(item)}: {rgb}", file=sys.stderr)
                elif isinstance(rgb, BaseException):
                    raise rgb
                else:
                    ready.append((item, rgb))
            bar.update(len(batch) - len(ready))
            if not ready:
                continue
            try:
                if args.tiles:
                    from ..inference.tiling import estimate_tiled

                    outs = [
                        estimate_tiled(est, rgb, tile_overlap=args.tile_overlap, batch_size=args.batch_size,
                                       percentile=args.percentile, gamma=args.gamma, invert=args.invert)
                        for _, rgb in ready
                    ]
                else:
                    outs = est.estimate_each([rgb for _, rgb in ready], percentile=args.percentile,
                                             gamma=args.gamma, invert=args.invert, batch_size=len(ready))
            except (ValueError, OSError) as exc:
                counts.failed += len(ready)
                tqdm.write(f"error: {', '.join(source.name(r[0]) for r in ready)}: {exc}", file=sys.stderr)
                bar.update(len(ready))
                continue
            items = [(item, rgb, out.disparity[0], out.raw[0], None if out.metres is None else out.metres[0])
                     for (item, rgb), out in zip(ready, outs)]
            collect()
            written = writer.submit(write_batch, items, args, bar)
        collect()
    bar.close()


def _write_batch(items, args, bar) -> Tuple[int, int]:
    """Write the outputs of one batch (``((src, targets), rgb, disparity, raw, metres)`` each):
    ``(done, failed)``; a file that cannot be written is reported and counted, the others are written."""
    from tqdm.auto import tqdm

    done = failed = 0
    for (src, targets), rgb, disparity, raw, metres in items:
        try:
            about = {"model": args.model, "metres_from": "the model's own prediction"} if metres is not None else None
            if getattr(args, "metric_from", None):
                from ..evaluation.metric_files import metric_for_image

                fit = metric_for_image(args.metric_from, src, raw)
                metres = fit.depth
                about = {"model": args.model, "metres_from": f"relative depth fitted to known depths ({args.metric_from})",
                         "scale": float(fit.scale), "shift": float(fit.shift)}
            write_outputs(targets, disparity, raw, rgb, args, metres, about)
            done += 1
        except (ValueError, OSError) as exc:
            failed += 1
            tqdm.write(f"error: {src}: {exc}", file=sys.stderr)
        bar.update(1)
    return done, failed
