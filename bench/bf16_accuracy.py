"""How far bf16 moves each model's disparity from float32, on the CPU (what ``dtype="auto"`` decides on).

    python bench/bf16_accuracy.py                               # every model, fixtures + 3 synthetic photos
    python bench/bf16_accuracy.py --models dpt_swin2_tiny_256 --photos a.jpg b.jpg

Weights: the reference recipe (``tests/reference.py``, the same deterministic weights the parity tests
use; no download), or with ``--official`` the released files from your weights folder; trained weights
may behave differently from the recipe's, so rerun with ``--official`` where you have them. Inputs: the reference fixture's network input of each model (``x``, computed by the
original MiDaS code) and synthetic natural-looking photos (``bench/photos.py``; ``--photos`` adds
your own files), run end to end through ``DepthEstimator``. For each input the disparity is min-max
normalized per image, so differences are fractions of its range; the table gives the max and mean
absolute difference over all pixels of all inputs, and its 99th percentile. A model whose error is
visible by ``precision.bf16_error_is_visible`` (mean above 1% of the range, 1 pixel in 100 off by
more than 5%, or any pixel by more than 10%) belongs in ``precision.BF16_INACCURATE``: ``dtype="auto"`` keeps it in float32. Paste
``--update`` writes the measured errors into ``inference/cpu_measurements.json`` (``precision.CPU_BF16_ERROR``). The speed-up is the forward time at
batch 1 on the fixture input, float32 over bf16, of each of ``--iters`` timed runs (run i of float32
over run i of bf16): the table gives their median and, for two runs or more, their min-max in brackets
(``python bench/bf16_accuracy.py --iters 7`` for a spread worth quoting).
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import midas_diffusion as md  # noqa: E402
from midas_diffusion.loading.checkpoints import load_into  # noqa: E402
from photos import synthetic_photo  # noqa: E402
from reference import fixture, official_checkpoint  # noqa: E402
import statistics  # noqa: E402

from throughput import report_measured, timed_seconds  # noqa: E402


def _minmax(y: torch.Tensor) -> torch.Tensor:
    flat = y.reshape(y.shape[0], -1).double()
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    return (flat - lo) / (hi - lo).clamp_min(1e-30)


def measure(name: str, photos, iters: int, official: bool) -> dict:
    ref = fixture(name)
    if official:  # the released weights from the weights folder (never downloaded here)
        est = md.DepthEstimator.from_pretrained(name, allow_download=False, progress=False)
        model = est.model
    else:
        model = md.create_model(name)
        load_into(model, official_checkpoint(name, seed=int(ref["seed"])), model_name=name)
        est = md.DepthEstimator(model, md.get_model_spec(name))
    x = torch.from_numpy(ref["x"])
    diffs = []
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        est.to(dtype=dtype)
        with torch.inference_mode():
            fixture_out = est.predict_network(x)
        photo_outs = [est(p).disparity for p in photos]
        seconds[dtype] = timed_seconds(est.predict_network, x[:1], iters, 1, torch.device("cpu"))
        if dtype == torch.float32:
            fp32 = (fixture_out, photo_outs)
        else:
            diffs.append((_minmax(fixture_out) - _minmax(fp32[0])).abs())
            diffs.extend((a.double() - b.double()).abs().reshape(1, -1) for a, b in zip(photo_outs, fp32[1]))
    all_diffs = torch.cat([d.reshape(-1) for d in diffs])
    fixture_max = diffs[0].max().item()
    photo_max = max((d.max().item() for d in diffs[1:]), default=0.0)
    sample = all_diffs if all_diffs.numel() <= 4_000_000 else all_diffs[:: all_diffs.numel() // 4_000_000 + 1]
    del est, model
    gc.collect()
    return {
        "max": all_diffs.max().item(),
        "p99": torch.quantile(sample.float(), 0.99).item(),
        "mean": all_diffs.mean().item(),
        "fixture_max": fixture_max,
        "photo_max": photo_max,
        "speedups": [a / b for a, b in zip(seconds[torch.float32], seconds[torch.bfloat16])],
    }


def _speedup(ratios) -> str:
    """``1.40x`` for one run, ``1.40x (1.25-1.53)`` (median, min-max) for more, ``-`` for none."""
    if not ratios:
        return "-"
    text = f"{statistics.median(ratios):.2f}x"
    return text if len(ratios) == 1 else f"{text} ({min(ratios):.2f}-{max(ratios):.2f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(md.list_models()))
    parser.add_argument("--photos", nargs="*", default=[], help="extra photo files (your own)")
    parser.add_argument("--synthetic", type=int, default=3, help="synthetic photos (480x640, seeds 0..N-1)")
    parser.add_argument("--iters", type=int, default=2, help="timed forward passes per dtype (0: no timing; 7 for a spread)")
    parser.add_argument("--official", action="store_true",
                        help="the released weights from the weights folder (MIDAS_DIFFUSION_WEIGHTS) instead of the recipe")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--update", action="store_true", help="write the errors into inference/cpu_measurements.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from midas_diffusion.io.images import load_image_file
    from midas_diffusion.inference.precision import Bf16Error, bf16_error_is_visible, cpu_has_native_bf16

    photos = [synthetic_photo(480, 640, seed) for seed in range(args.synthetic)]
    photos += [load_image_file(p) for p in args.photos]
    print(f"# bf16 vs float32 on the CPU (native bf16: {cpu_has_native_bf16()}, {args.threads} threads, torch {torch.__version__});"
          f" {'official' if args.official else 'recipe'} weights; inputs: the fixture + {len(photos)} photos; |diff| of min-max normalized disparity")
    print("| model | max abs diff | p99 abs diff | mean abs diff | fixture max | photos max | bf16 speed-up b1, median (min-max) | auto |")
    print("|---|---|---|---|---|---|---|---|")
    refused, entries = [], {}
    for name in args.models.split(","):
        r = measure(name, photos, args.iters, args.official)
        error = Bf16Error(max=float(f"{r['max']:.1e}"), p99=float(f"{r['p99']:.1e}"), mean=float(f"{r['mean']:.1e}"))
        entries[name] = {"max": error.max, "p99": error.p99, "mean": error.mean}
        auto = "fp32" if bf16_error_is_visible(error) else "bf16"
        if auto == "fp32":
            refused.append(name)
        print(f"| {name} | {r['max']:.2e} | {r['p99']:.2e} | {r['mean']:.2e} | {r['fixture_max']:.2e} | {r['photo_max']:.2e} "
              f"| {_speedup(r['speedups'])} | {auto} |", flush=True)
    print(f"# refused (BF16_INACCURATE): {sorted(refused)}")
    report_measured("bf16_error", entries, args.update)
    return 0


if __name__ == "__main__":
    sys.exit(main())
