"""The shard path against the folder path on the same images, and ``--engine ray`` with 1 and 2 actors.

    python bench/shards_speed.py                                   # CPU, a tiny (reduced) model, 24 images
    python bench/shards_speed.py --model dpt_hybrid_384 --full --count 256 --device cuda --dtype float16

One process, one loaded estimator: the ``depth`` image loop over N JPEG files in a folder (written as
``--format`` files) and over the same N images in tar shards of ``--per-shard`` samples (written as
shards), in images/s (the median of ``--iters`` runs after a warm-up). Then ``--engine ray`` on the
same shards with ``--actors`` 1 and 2 (``--ray 1,2``; ``--ray ''`` skips Ray) on a local Ray
(``ray.init(num_cpus=--ray-cpus)``): one run each, the wall time including the actors' start (each
imports torch and loads the model once), which a long run amortizes.

Weights are random (speed does not depend on them); photos are synthetic (``bench/photos.py``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import midas_diffusion as md  # noqa: E402
from midas_diffusion.cli import build_parser  # noqa: E402
from photos import synthetic_photo  # noqa: E402


def make_data(root: Path, count: int, per_shard: int, height: int, width: int):
    """``root/images/KEY.jpg`` and ``root/shards/NNNNN.tar`` (``KEY.jpg`` + ``KEY.txt``) of the same photos."""
    images, shards = root / "images", root / "shards"
    images.mkdir(parents=True)
    shards.mkdir()
    tars = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(synthetic_photo(height, width, seed=i)).save(buffer, format="JPEG", quality=90)
        (images / f"{i:06d}.jpg").write_bytes(buffer.getvalue())
    for s in range(0, count, per_shard):
        path = shards / f"{s // per_shard:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(s, min(count, s + per_shard)):
                for name, data in ((f"{i:06d}.jpg", (images / f"{i:06d}.jpg").read_bytes()),
                                   (f"{i:06d}.txt", f"photo {i}".encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        tars.append(path)
    return images, tars


def timed(fn, iters: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="midas_v21_small_256")
    ap.add_argument("--full", action="store_true", help="the full-size network (default: reduced, tiny)")
    ap.add_argument("--count", type=int, default=24, help="images")
    ap.add_argument("--per-shard", type=int, default=8, help="samples per shard")
    ap.add_argument("--size", default="480x640", help="HEIGHTxWIDTH of the photos")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--format", default="png16")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--ray", default="1,2", help="actor counts for --engine ray ('' skips Ray)")
    ap.add_argument("--ray-cpus", type=int, default=2)
    a = ap.parse_args()
    height, width = (int(v) for v in a.size.split("x"))

    from midas_diffusion.cli.depth_shards import process_shard
    from midas_diffusion.cli.image_loop import Counts, load_estimator, run_images
    from midas_diffusion.cli.inputs import output_paths
    from midas_diffusion.inference.devices import resolve_device

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        model = md.DepthEstimator(md.create_model(a.model, reduced=not a.full), md.get_model_spec(a.model))
        model.reduced = not a.full  # saved as such, so the CLI and the Ray actors rebuild the same network
        folder_model = str(model.save_pretrained(root / "model"))
        images, tars = make_data(root, a.count, a.per_shard, height, width)
        common = ["--model", folder_model, "--no-progress", "--device", a.device, "--dtype", a.dtype,
                  "--batch-size", str(a.batch_size), "--format", a.format, "--overwrite"]
        args = build_parser().parse_args(["depth", str(images), "-o", str(root / "files"), *common])
        est = load_estimator(args, resolve_device(a.device))
        files = sorted(images.glob("*.jpg"))

        def run_folder():
            counts = Counts()
            todo = [(f, output_paths(root / "files", Path(f.stem), args.format)) for f in files]
            run_images(est, todo, args, counts, progress=False)
            assert counts.done == len(files), (counts.done, counts.failed)

        def run_shards():
            done = sum(process_shard(est, t, root / "out" / t.name, args).done for t in tars)
            assert done == len(files), done

        what = f"{a.model}{'' if a.full else ' (reduced)'}, {a.count} photos {width}x{height}, {a.device} {a.dtype}, " \
               f"batch {a.batch_size}, {len(tars)} shards of {a.per_shard}, torch threads {torch.get_num_threads()}"
        print(what)
        folder_s, shard_s = timed(run_folder, a.iters), timed(run_shards, a.iters)
        print(f"folder path (files -> {a.format} files):   {a.count / folder_s:8.2f} images/s")
        print(f"shard path  (tar shards -> tar shards):   {a.count / shard_s:8.2f} images/s")
        actors = [int(n) for n in a.ray.split(",") if n.strip()]
        if actors:
            import ray

            from midas_diffusion.cli.depth_ray import run_on_ray

            ray.init(num_cpus=a.ray_cpus, include_dashboard=False, log_to_driver=False)
            try:
                for n in actors:
                    ray_args = build_parser().parse_args(["depth", *map(str, tars), "-o", str(root / f"ray{n}"),
                                                          *common, "--engine", "ray", "--actors", str(n)])
                    start = time.perf_counter()
                    results = run_on_ray(ray_args, [(t, root / f"ray{n}" / t.name) for t in tars])
                    seconds = time.perf_counter() - start
                    assert sum(r.done for r in results) == a.count
                    print(f"--engine ray, {n} actor(s) (start included): {a.count / seconds:8.2f} images/s "
                          f"({seconds:.1f} s)")
            finally:
                ray.shutdown()


if __name__ == "__main__":
    main()
