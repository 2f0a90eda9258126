"""``midas-diffusion depth`` on a video: frames in windows of one range (no flicker), scene cuts, resume."""

from __future__ import annotations

import sys
from pathlib import Path

from .inputs import frame_stem, output_paths
from .write import all_exist, write_outputs


def run_video(est, src: Path, outdir: Path, stem: Path, args, counts, progress: bool) -> None:
    """Depth of every frame of a video, as ``OUTDIR/<stem>/<frame:06d>.<fmt>``.

    With sequence normalization a frame's map depends on the ``--window`` frames before it, so a
    resumed run re-predicts (without writing) the frames in the window of each missing one."""
    import torch
    from tqdm.auto import tqdm

    from ..inference.temporal import (
        SequenceNormalization,
        SequenceNormalizer,
        thumbnail,
    )
    from ..io.video import frame_count, read_frames

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
        return args.overwrite or not all_exist(targets(i))

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
                from ..inference.tiling import estimate_tiled

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
                write_outputs(targets(index), disparity, raw, rgb, args)
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
