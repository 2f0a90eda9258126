"""The depth path end to end: how much of ``est(photo)`` is the network, and how fast a folder runs.

    python bench/depth_e2e.py --models midas_v21_small_256,dpt_swin2_tiny_256     # CPU, float32
    python bench/depth_e2e.py --device cuda --dtype float16                        # every model
    python bench/depth_e2e.py --quick                                              # tiny models, seconds

Part 1, per model, one 1920x1080 photo (``--size``) at batch 1: the network forward on the prepared
input (``net``), and ``est(...)`` from a PIL image, a numpy array, a CPU uint8 tensor and (on CUDA) a
CUDA uint8 tensor, results returned on the CPU (``cuda>same``: left on the GPU). ``share`` is the
wrapper's part of the end-to-end time, ``1 - net / e2e``; ``x net`` is ``e2e / net``.

Part 2 (``--folder N``, default 32 on CUDA, 8 on the CPU): the ``depth`` command's image loop
(read-ahead decoding, batching, writing ``--folder-format``) on N JPEG photos at ``--batch-size``,
in images/s, against the network alone at the same batch size (prepared batch, forward only).

Weights are random (speed does not depend on them); photos are synthetic (``bench/photos.py``).
Times are medians of ``--iters`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import midas_diffusion as md  # noqa: E402
from midas_diffusion.io.images import to_compact_tensors, to_device  # noqa: E402
from midas_diffusion.inference.transforms import prepare_compact  # noqa: E402
from photos import synthetic_photo  # noqa: E402
from throughput import sync  # noqa: E402


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def median_ms(fn, iters: int, device: torch.device) -> float:
    fn()
    sync(device)
    times = []
    for _ in range(iters):
        start = clock()
        fn()
        sync(device)
        times.append(clock() - start)
    return 1000 * statistics.median(times)


def build(name: str, quick: bool, device: torch.device, dtype: str) -> md.DepthEstimator:
    torch.manual_seed(0)
    est = md.DepthEstimator(md.create_model(name, reduced=quick), md.get_model_spec(name))
    return est.to(device, dtype)


def network_input(est: md.DepthEstimator, image: np.ndarray, batch: int) -> torch.Tensor:
    compact = to_device(to_compact_tensors(image)[0], est.device)
    size = est.network_input_size(*image.shape[:2])
    with torch.inference_mode():
        x = prepare_compact(compact, size, est.preprocess)
    return x.expand(batch, -1, -1, -1).contiguous()


def part_one(est: md.DepthEstimator, photo: np.ndarray, iters: int) -> dict:
    from PIL import Image

    device = est.device
    pil = Image.fromarray(photo)
    cpu_tensor = torch.from_numpy(photo).permute(2, 0, 1)
    x = network_input(est, photo, 1)
    times = {"net": median_ms(lambda: est.predict_network(x), iters, device)}
    times["PIL"] = median_ms(lambda: est(pil), iters, device)
    times["numpy"] = median_ms(lambda: est(photo), iters, device)
    times["cpu tensor"] = median_ms(lambda: est(cpu_tensor), iters, device)
    if device.type == "cuda":
        gpu_tensor = cpu_tensor.to(device)
        times["cuda tensor"] = median_ms(lambda: est(gpu_tensor), iters, device)
        times["cuda>same"] = median_ms(lambda: est(gpu_tensor, output_device="same"), iters, device)
    return times


def part_two(est: md.DepthEstimator, folder: Path, batch: int, fmt: str, threads: int, iters: int) -> tuple:
    """(CLI images/s, network-only images/s) at ``batch``."""
    from midas_diffusion.cli import build_parser
    from midas_diffusion.cli.image_loop import Counts, run_images
    from midas_diffusion.cli.inputs import output_paths

    files = sorted(folder.glob("*.jpg"))
    args = build_parser().parse_args(
        ["depth", str(folder), "-o", str(folder / "out"), "--batch-size", str(batch), "--format", fmt,
         "--no-progress", "--overwrite", "--decode-threads", str(threads)])
    outdir = folder / "out"

    def run_folder():
        todo = [(f, output_paths(outdir, Path(f.stem), args.format)) for f in files]
        counts = Counts()
        run_images(est, todo, args, counts, progress=False)
        assert counts.done == len(files), (counts.done, counts.failed)

    seconds = median_ms(run_folder, max(1, iters // 2), est.device) / 1000
    from PIL import Image

    x = network_input(est, np.asarray(Image.open(files[0]).convert("RGB")), batch)
    net = median_ms(lambda: est.predict_network(x), iters, est.device) / 1000
    return len(files) / seconds, batch / net


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default), float16 (CUDA default), bfloat16, auto")
    parser.add_argument("--models", default=None, help="comma list (default: every model; --quick: three small ones)")
    parser.add_argument("--quick", action="store_true", help="tiny random models (reduced=True): checks the bench runs")
    parser.add_argument("--size", default="1920x1080", help="photo WIDTHxHEIGHT")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--folder", type=int, default=None, help="photos for the folder run (0: skip)")
    parser.add_argument("--folder-models", default=None, help="models for the folder run (default: the first two)")
    parser.add_argument("--batch-size", type=int, default=None, help="folder run batch (default 16 on CUDA, 4 on the CPU)")
    parser.add_argument("--folder-format", default="npy", help="what the folder run writes (npy, png16, ...)")
    parser.add_argument("--decode-threads", type=int, default=None, help="folder run decoding threads (default: the CLI's)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--clock", choices=sorted(CLOCK), default="wall",
                        help="cpu: process CPU time, robust on a shared machine (meaningful with --threads 1)")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCK[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = args.dtype or ("float16" if cuda else "float32")
    width, height = (int(v) for v in args.size.lower().split("x"))
    default_models = "midas_v21_small_256,dpt_swin2_tiny_256,dpt_levit_224" if args.quick else ",".join(md.list_models())
    models = (args.models or default_models).split(",")
    photo = synthetic_photo(height, width, seed=0)
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"# depth_e2e: {where}, {dtype}, torch {torch.__version__}, {width}x{height} photo, batch 1, median of {args.iters}"
          f" ({args.clock} clock)"
          f"{', REDUCED models' if args.quick else ''}")
    kinds = ["PIL", "numpy", "cpu tensor"] + (["cuda tensor", "cuda>same"] if cuda else [])
    head = "| model | net in | net ms | " + " | ".join(f"{k} ms" for k in kinds) + " | share PIL | x net PIL | " + \
           ("x net cuda tensor |" if cuda else "x net cpu tensor |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name in models:
        est = build(name, args.quick, device, dtype)
        t = part_one(est, photo, args.iters)
        h, w = est.network_input_size(height, width)
        last = t["cuda tensor"] if cuda else t["cpu tensor"]
        print(f"| {name} | {w}x{h} | {t['net']:.1f} | " + " | ".join(f"{t[k]:.1f}" for k in kinds)
              + f" | {1 - t['net'] / t['PIL']:.0%} | {t['PIL'] / t['net']:.2f} | {last / t['net']:.2f} |", flush=True)
        del est
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    count = args.folder if args.folder is not None else (32 if cuda else 8)
    if count:
        from PIL import Image

        batch = args.batch_size or (16 if cuda else 4)
        folder_models = (args.folder_models or ",".join(models[:2])).split(",")
        from midas_diffusion.cli.batching import default_decode_threads

        threads = args.decode_threads or default_decode_threads()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            samples = [Image.fromarray(photo)] + [Image.fromarray(synthetic_photo(height, width, seed=s)) for s in (1, 2, 3)]
            for i in range(count):  # four different photos, each made once
                samples[i % 4].save(folder / f"photo{i:03d}.jpg", quality=90)
            print(f"# folder: {count} {width}x{height} JPEGs, batch {batch}, writes {args.folder_format}, "
                  f"{threads} decoding threads")
            print("| model | depth command img/s | network only img/s | share |")
            print("|---|---|---|---|")
            for name in folder_models:
                est = build(name, args.quick, device, dtype)
                cli_rate, net_rate = part_two(est, folder, batch, args.folder_format, threads, args.iters)
                print(f"| {name} | {cli_rate:.1f} | {net_rate:.1f} | {cli_rate / net_rate:.0%} |", flush=True)
                del est
                gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
