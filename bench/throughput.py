"""Throughput of the zoo: images/s for batch sizes, dtypes, channels_last and torch.compile, against
transformers' ``DPTForDepthEstimation`` with the same weights, the achieved GFLOP/s as a share of
this machine's matmul GFLOP/s (measured in the same run), and the flicker of video normalization.

    python bench/throughput.py --quick                 # CPU, minutes: small model + one HF comparison
    python bench/throughput.py --device cuda           # small, medium and largest model, all variants

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions,
2 per multiply-add) on one forward pass. Weights are random (same for ours and transformers); speed
does not depend on them. Flicker: a static synthetic scene with per-frame noise, mean absolute
frame-to-frame change of the normalized map, per-frame min-max vs ``--video-norm sequence``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import midas_diffusion as md  # noqa: E402
from depth_speed import transformers_config  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FULL_MODELS = "midas_v21_small_256,dpt_swin2_base_384,dpt_beit_large_512"
VARIANTS = ("plain", "cl", "compile", "cl+compile")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_seconds(fn, x, iters, warmup, device) -> list:
    """The seconds of each of ``iters`` calls ``fn(x)``, after ``warmup`` untimed ones."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        sync(device)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            fn(x)
            sync(device)
            times.append(time.perf_counter() - start)
    return times


def cpu_line() -> str:
    """The CPU the figures were taken on: model name, cores, and the vector units that decide which
    paths are fast (AVX-512, its bf16 instructions, AMX)."""
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    units = [u for u in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if u in flags] or ["unknown"]
    return f"{name}, {os.cpu_count()} cores, {' '.join(units)}"


def print_table_head(title: str, columns) -> None:
    """A bench's title line (with the CPU it runs on) and the header of its markdown table."""
    print(f"# {title}")
    print(f"# CPU: {cpu_line()}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns), flush=True)


def report_measured(part: str, entries: dict, update: bool) -> None:
    """Print a bench's measured ``entries`` (per model) for ``part`` of ``inference/cpu_measurements.json``,
    and with ``update`` write them there."""
    import json

    from midas_diffusion.inference.measurements import update_measurements

    print(f"{part} = " + json.dumps(entries))
    if update:
        print(f"# written to {update_measurements(part, entries)}")


def median_seconds(fn, x, iters, warmup, device) -> float:
    return statistics.median(timed_seconds(fn, x, iters, warmup, device))


def matmul_gflops(device, dtype, n: int, iters: int = 5) -> float:
    """Dense square matmul GFLOP/s: the practical peak the models are measured against."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = median_seconds(lambda t: t @ b, a, iters, 2, device)
    return 2 * n**3 / seconds / 1e9


def build(name: str, with_transformers: bool):
    """Our network and (where transformers has the model) transformers' one, holding the same weights."""
    torch.manual_seed(0)
    config = transformers_config(name) if with_transformers else None
    ours = md.create_model(name)
    hf = None
    if config is not None:
        from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTForDepthEstimation

        model_class = DepthAnythingForDepthEstimation if isinstance(config, DepthAnythingConfig) else DPTForDepthEstimation
        hf = model_class(config).eval()
        import tempfile

        with tempfile.TemporaryDirectory() as folder:  # the layout on disk (the hub's), which we convert
            hf.save_pretrained(folder)
            ours = md.create_model(name, checkpoint=Path(folder) / "model.safetensors")
    return ours.eval(), hf


def forward_flops(model, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def flicker_report(device, frames: int = 16) -> str:
    """Flicker of a static scene: per-frame normalization vs the sequence normalizer."""
    import numpy as np

    from midas_diffusion.inference.temporal import SequenceNormalization, SequenceNormalizer, flicker, thumbnail

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:192, 0:256]
    scene = np.stack([(x / 256) * 200, (y / 192) * 200, 100 + 50 * np.sin(x / 9) * np.cos(y / 7)], -1)
    clips = [np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8) for _ in range(frames)]
    try:
        est = md.DepthEstimator.from_pretrained("midas_v21_small_256", allow_download=False, progress=False)
        weights = "official weights"
    except Exception:  # noqa: BLE001 - offline without the file: random weights still show the effect
        torch.manual_seed(0)
        est = md.DepthEstimator(md.create_model("midas_v21_small_256"), md.get_model_spec("midas_v21_small_256"))
        weights = "random weights"
    est.to(device)
    out = est(clips, batch_size=8)
    minmax = out.per_image("disparity")

    def run(window):
        norm = SequenceNormalizer(SequenceNormalization(window=window))
        maps = []
        for i, (frame, raw) in enumerate(zip(clips, out.per_image("raw"))):
            norm.observe(i, thumbnail(torch.from_numpy(frame).permute(2, 0, 1).float() / 255))
            norm.add(i, raw)
            maps.append(norm.normalize(i, raw))
        return flicker(maps)

    a, b = run(1), run(16)
    return (f"# flicker (midas_v21_small_256, {weights}, static scene, {frames} frames): per-frame min-max "
            f"{flicker(minmax):.5f}; 1-99 percentile range per frame {a:.5f}, over a 16-frame window {b:.5f} "
            f"({b / a:.2f}x)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default=FULL_MODELS)
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--matmul-size", type=int, default=None, help="n of the n x n matmul (default 8192 GPU, 2048 CPU)")
    parser.add_argument("--no-transformers", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="CPU-sized subset: the small model at batch 1 and 4, plus one transformers comparison")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    plan = []  # (model, batch, dtype, variant, compare with transformers)
    if args.quick:
        compile_ok = device.type == "cuda" or shutil.which("cc") or shutil.which("gcc")
        for dt in ("fp32", "bf16"):
            for b in (1, 4):
                for v in ("plain", "cl"):
                    plan.append(("midas_v21_small_256", b, dt, v, False))
        if compile_ok:
            plan.append(("midas_v21_small_256", 4, "fp32", "compile", False))
        plan.append(("dpt_swin2_tiny_256", 1, "fp32", "plain", True))
        args.iters, args.warmup = min(args.iters, 3), 1
        matmul_n = args.matmul_size or 1024
    else:
        for name in args.models.split(","):
            for dt in args.dtypes.split(","):
                for b in (int(v) for v in args.batches.split(",")):
                    for v in args.variants.split(","):
                        plan.append((name, b, dt, v, v == "plain"))
        matmul_n = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# throughput on {where}, torch {torch.__version__}")
    peaks = {dt: matmul_gflops(device, DTYPES[dt], matmul_n) for dt in sorted({p[2] for p in plan})}
    print("# matmul peak: " + ", ".join(f"{dt} {g:.1f} GFLOP/s (n={matmul_n})" for dt, g in peaks.items()))
    print(f"{'model':22s} {'batch':>5s} {'dtype':5s} {'variant':10s} {'img/s':>8s} {'GFLOP/img':>9s} "
          f"{'GFLOP/s':>8s} {'%matmul':>7s} {'hf img/s':>8s} {'ours/hf':>7s}")
    built = {}
    flops_per_image = {}
    for name, batch, dt, variant, compare in plan:
        dtype = DTYPES[dt]
        key = (name, dt)
        if key not in built:
            built.clear()
            gc.collect()
            ours, hf = build(name, not args.no_transformers)
            built[key] = (ours.to(device, dtype), hf)
        ours, hf = built[key]
        h, w = md.get_model_spec(name).net_size
        x = (torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device, dtype)
        if name not in flops_per_image:
            flops_per_image[name] = forward_flops(ours, x[:1])
        model = ours
        if "cl" in variant.split("+"):
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            model = model.to(memory_format=torch.contiguous_format)
        fn = torch.compile(model) if "compile" in variant else model
        if "compile" in variant:
            with torch.inference_mode():
                fn(x)  # compile outside the timing
        seconds = median_seconds(fn, x, args.iters, args.warmup, device)
        rate = batch / seconds
        gflop = flops_per_image[name] / 1e9
        achieved = gflop * rate
        hf_txt = f"{'-':>8s} {'-':>7s}"
        if compare and hf is not None:
            hf.to(device, dtype)
            t_hf = median_seconds(lambda t: hf(pixel_values=t).predicted_depth, x.contiguous(), args.iters, args.warmup, device)
            hf_txt = f"{batch / t_hf:8.2f} {t_hf / seconds:7.2f}"
        print(f"{name:22s} {batch:5d} {dt:5s} {variant:10s} {rate:8.2f} {gflop:9.2f} {achieved:8.1f} "
              f"{100 * achieved / peaks[dt]:6.1f}% {hf_txt}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(flicker_report(device))
    print("# ours/hf > 1: we are faster; %matmul: achieved model GFLOP/s over the dense-matmul GFLOP/s of the same dtype")
    return 0


if __name__ == "__main__":
    sys.exit(main())
