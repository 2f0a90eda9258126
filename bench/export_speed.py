"""Mesh and point-cloud export time and file size for 512², 1024² and 2048² RGBD.

    python bench/export_speed.py [--sizes 512,1024,2048]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from midas_diffusion.io.rgbd import export_glb, export_ply  # noqa: E402


def scene(size: int):
    """A smooth RGBD scene with a few depth discontinuities (so some triangles are cut)."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / size
    disparity = 0.3 + 0.4 * u * v + 0.2 * np.sin(6 * u) * np.cos(4 * v)
    disparity[(u - 0.5) ** 2 + (v - 0.5) ** 2 < 0.04] += 0.25  # a near disc in front
    rgb = np.stack([u, v, 1 - u], axis=-1)
    return rgb, np.clip(disparity, 0, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1024,2048")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"{'size':>9s} {'format':6s} {'seconds':>8s} {'MB':>8s} {'vertices':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            rgb, disparity = scene(size)
            for fmt, fn in (("ply", export_ply), ("glb", export_glb)):
                path = Path(tmp) / f"scene.{fmt}"
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    fn(path, rgb, disparity)
                    times.append(time.perf_counter() - start)
                mb = path.stat().st_size / 2**20
                print(f"{size:>4d}x{size:<4d} {fmt:6s} {min(times):8.2f} {mb:8.1f} {size * size:>10d}", flush=True)


if __name__ == "__main__":
    main()
