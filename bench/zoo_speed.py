"""The whole zoo's speed in one run: images/s of every model in every setting of a device, the achieved
GFLOP/s as a share of this device's measured matmul GFLOP/s, and transformers' ``DPTForDepthEstimation``
with the same weights where transformers has the model.

    python bench/zoo_speed.py                      # CPU: batch 1 in float32 and in dtype="auto"
    python bench/zoo_speed.py --device cuda        # GPU: fp32/fp16/bf16 at batch 1 and 16, plus CUDA graphs at b1
    python bench/zoo_speed.py --models dpt_swin2_tiny_256,dpt_beit_base_384 --settings 1:fp32,1:auto

Settings are ``batch:dtype`` (``auto`` resolves per model and device, as ``DepthEstimator`` does) with an
optional ``:graphs`` (the opt-in ``enable_cuda_graphs`` path, CUDA only). Forward pass of the network
only, at its native size, median of ``--iters`` after ``--warmup``; weights random (speed does not
depend on them). ``%matmul``: achieved GFLOP/s (FLOPs counted once by ``FlopCounterMode``: matmuls and
convolutions) over a dense n x n matmul's GFLOP/s in the same dtype: near 100% the model is at the
matmul limit of the device; far below it, launches, memory traffic or small shapes dominate. Above 100%:
convolutions are counted as direct convolutions, and oneDNN's run faster than the dense matmul (on the
2-core AVX512-BF16 CPU a 3x3 256-channel convolution reached 493 GFLOP/s against 216 for an fp32 matmul).
``3090 FPS`` is the MiDaS README's batch-1 figure on an RTX 3090, for scale.
The original MiDaS code is compared by ``../shared/bench/zoo_vs_original.py`` (its own venv).
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import List, NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import midas_diffusion as md  # noqa: E402
from midas_diffusion.inference.cuda_graphs import GraphedForward  # noqa: E402
from midas_diffusion.inference.precision import resolve_dtype  # noqa: E402
from throughput import build, forward_flops, matmul_gflops, median_seconds  # noqa: E402

DEFAULT_SETTINGS = {
    "cpu": "1:fp32,1:auto",
    "cuda": "1:fp32,1:fp16,1:bf16,1:auto:graphs,16:fp32,16:fp16,16:bf16",
}
DTYPE_LABELS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


class Setting(NamedTuple):
    batch: int
    dtype: str  # fp32, fp16, bf16 or auto
    graphs: bool

    @classmethod
    def parse(cls, text: str) -> "Setting":
        parts = text.strip().split(":")
        if len(parts) not in (2, 3) or not parts[0].isdigit() or (len(parts) == 3 and parts[2] != "graphs"):
            raise argparse.ArgumentTypeError(f"a setting is batch:dtype[:graphs], e.g. 1:bf16 or 1:auto:graphs; got {text!r}")
        return cls(int(parts[0]), parts[1], len(parts) == 3)


def run(args) -> int:
    device = torch.device(args.device)
    settings: List[Setting] = [Setting.parse(s) for s in (args.settings or DEFAULT_SETTINGS[device.type]).split(",")]
    if any(s.graphs for s in settings) and device.type != "cuda":
        raise SystemExit("error: ':graphs' settings need --device cuda")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    matmul_n = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    dtypes = {resolve_dtype(s.dtype, device, name) for s in settings for name in args.models.split(",")}
    peaks = {dt: matmul_gflops(device, dt, matmul_n) for dt in sorted(dtypes, key=str)}
    print(f"# zoo speed on {where}, torch {torch.__version__}; network forward at native size, "
          f"median of {args.iters} after {args.warmup} warm-up")
    print("# matmul peak: " + ", ".join(f"{DTYPE_LABELS[dt]} {g:.0f} GFLOP/s" for dt, g in peaks.items()) + f" (n={matmul_n})")
    print("| model | batch | dtype | ours img/s | GFLOP/img | %matmul | transformers img/s | ours/transformers | 3090 FPS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        spec = md.get_model_spec(name)
        ours, hf = build(name, not args.no_transformers)
        h, w = spec.net_size
        gflop = None
        for setting in settings:
            dtype = resolve_dtype(setting.dtype, device, name)
            label = DTYPE_LABELS[dtype] + (" (auto)" if setting.dtype == "auto" else "") + (" graphs" if setting.graphs else "")
            x = (torch.rand(setting.batch, 3, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device, dtype)
            model = ours.to(device, dtype)
            if gflop is None:
                gflop = forward_flops(model, x[:1]) / 1e9
            fn = GraphedForward(model, warmup=1) if setting.graphs else model
            try:
                seconds = median_seconds(fn, x, args.iters, args.warmup + (2 if setting.graphs else 0), device)
            except RuntimeError as exc:  # e.g. out of memory at batch 16 for the largest models
                print(f"| {name} | {setting.batch} | {label} | failed: {str(exc).splitlines()[0][:80]} | | | | | |", flush=True)
                continue
            rate = setting.batch / seconds
            share = 100 * gflop * rate / peaks[dtype]
            hf_cells = "- | -"
            if hf is not None and not setting.graphs:
                hf.to(device, dtype)
                hf_seconds = median_seconds(lambda t: hf(pixel_values=t).predicted_depth, x, args.iters, args.warmup, device)
                hf_cells = f"{setting.batch / hf_seconds:.2f} | {hf_seconds / seconds:.2f}"
                hf.to("cpu")
            paper = f"{spec.reference_fps:g}" if spec.reference_fps and setting.batch == 1 else "-"
            print(f"| {name} | {setting.batch} | {label} | {rate:.2f} | {gflop:.1f} | {share:.0f}% | {hf_cells} | {paper} |",
                  flush=True)
            del x
            if device.type == "cuda":
                torch.cuda.empty_cache()
        ours = hf = None
        gc.collect()
    print("# ours/transformers > 1: we are faster. %matmul: achieved GFLOP/s over the dense-matmul GFLOP/s "
          "of the same dtype on this device")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default=",".join(md.list_models()))
    defaults = "; ".join(f"{k}: {v}" for k, v in DEFAULT_SETTINGS.items())
    parser.add_argument("--settings", default=None, help=f"comma list of batch:dtype[:graphs]; default: {defaults}")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--matmul-size", type=int, default=None, help="n of the n x n matmul (default 8192 GPU, 2048 CPU)")
    parser.add_argument("--no-transformers", action="store_true")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
