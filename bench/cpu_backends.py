"""The CPU backends side by side, for every model in one run: torch float32, torch ``dtype="auto"``,
OpenVINO f32 and bf16 (``backend="openvino"``), and what the default (``backend="auto"``,
``dtype="auto"``) runs once its background export is ready.

    python bench/cpu_backends.py                                   # every model (tens of minutes)
    python bench/cpu_backends.py --models midas_v21_small_256 --iters 1

Network only (``DepthEstimator.predict_network``) at the model's native size (``--fixture-size``: the
reference fixture's input, 192x256 for most models), images/s at batch 1 and 4 (median of ``--iters``
after ``--warmup``; OpenVINO runs a batch one image at a time). ``first call``: the first call of a
fresh session with an empty cache, export and compile included (torch: its first forward). ``cached
start``: the first call of a new session whose IR is on disk (read, compile with OpenVINO's blob cache,
run). ``max |Δ|``: the largest difference from torch float32 at batch 1, as a fraction of torch
float32's range. Weights: the reference recipe (``tests/reference.py``, as ``bench/bf16_accuracy.py``;
speed does not depend on them), or ``--official`` for the released files in your weights folder; input:
regenerated from the fixture's seed at that size. The IR cache is a temporary folder
(``MIDAS_DIFFUSION_OPENVINO_CACHE``; your weights folder is not touched). The speed-ups (OpenVINO over
torch in the same precision) are what ``openvino_backend.OPENVINO_SPEEDUP`` holds: ``--update`` writes
them into ``inference/cpu_measurements.json``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import midas_diffusion as md  # noqa: E402
from midas_diffusion.inference import openvino_backend  # noqa: E402
from midas_diffusion.inference.precision import resolve_dtype  # noqa: E402
from midas_diffusion.loading.checkpoints import load_into  # noqa: E402
from reference import fixture, fixture_input, official_checkpoint  # noqa: E402
from throughput import median_seconds, print_table_head, report_measured  # noqa: E402

LABELS = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def estimator(name: str, official: bool) -> md.DepthEstimator:
    if official:  # the released weights from the weights folder (never downloaded here)
        return md.DepthEstimator.from_pretrained(name, allow_download=False, progress=False, dtype=torch.float32)
    model = md.create_model(name)
    load_into(model, official_checkpoint(name, seed=int(fixture(name)["seed"])), model_name=name)
    return md.DepthEstimator(model, md.get_model_spec(name))


def bench_input(name: str, fixture_size: bool = False) -> torch.Tensor:
    """The network input the CPU benches time, batch 1: by default at the model's native network size
    (what a photo is resized to; ``fixture_input`` from the fixture's seed), with ``fixture_size`` the
    reference fixture's own input (smaller for most models: 192x256, Depth Anything 196x266)."""
    if fixture_size:
        return torch.from_numpy(fixture(name)["x"]).float()
    return fixture_input(int(fixture(name)["seed"]), *md.get_model_spec(name).net_size)


def timed(fn, x) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        fn(x)
    return time.perf_counter() - start


def forget_compiled(est) -> None:
    """As a new session: the compiled models of this network are dropped (the IR stays on disk)."""
    with openvino_backend.COMPILED.lock:
        openvino_backend.COMPILED.by_model.pop(est.model, None)


def measure_path(est, x1, x4, args, ref, cached_start: bool):
    first = timed(est.predict_network, x1)
    cached = float("nan")
    if cached_start:
        forget_compiled(est)
        cached = timed(est.predict_network, x1)
    cpu = torch.device("cpu")
    b1 = 1 / median_seconds(est.predict_network, x1, args.iters, args.warmup, cpu)
    b4 = 4 / median_seconds(est.predict_network, x4, args.iters, args.warmup, cpu)
    with torch.inference_mode():
        out = est.predict_network(x1)
    error = float("nan") if ref is None else ((out - ref).abs().max() / (ref.max() - ref.min())).item()
    return out, b1, b4, first, cached, error


def run_model(name: str, args) -> dict:
    est = estimator(name, args.official).set_backend("torch")
    x1 = bench_input(name, args.fixture_size)
    x4 = torch.cat([x1, x1.flip(-1), x1.flip(-2), -x1])
    auto = resolve_dtype("auto", "cpu", name)
    # float32 paths first: casting to bf16 rounds the weights for good
    paths = [("torch fp32", "torch", torch.float32), ("openvino f32", "openvino", torch.float32),
             (f"torch auto ({LABELS[auto]})", "torch", auto), ("openvino bf16", "openvino", torch.bfloat16)]
    ref, speed = None, {}
    for label, backend, dtype in paths:
        est.to(dtype=dtype).set_backend(backend)
        try:
            out, b1, b4, first, cached, error = measure_path(est, x1, x4, args, ref, backend == "openvino")
        except Exception as exc:  # one failing path does not end the table
            print(f"| {name} | {label} | failed: {type(exc).__name__}: {str(exc)[:120]} | | | | |", flush=True)
            continue
        ref = out if ref is None else ref
        speed[(backend, dtype)] = b1
        cached_text = "-" if cached != cached else f"{cached:.2f}"
        error_text = "(reference)" if error != error else f"{error:.1e}"
        print(f"| {name} | {label} | {b1:.2f} | {b4:.2f} | {first:.2f} | {cached_text} | {error_text} |", flush=True)
    ratios = {LABELS[d]: speed[("openvino", d)] / speed[("torch", d)]
              for d in (torch.float32, torch.bfloat16) if ("openvino", d) in speed and ("torch", d) in speed}
    picks = "openvino" if openvino_backend.auto_picks_openvino(name, auto) else "torch"
    print(f"|   | default (backend auto, {LABELS[auto]}) runs {picks}; OpenVINO / torch b1: "
          + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()) + " | | | | | |", flush=True)
    forget_compiled(est)
    del est
    gc.collect()
    return {precision: round(ratio, 2) for precision, ratio in
            (("f32", ratios.get("fp32")), ("bf16", ratios.get("bf16"))) if ratio is not None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(md.list_models()))
    parser.add_argument("--iters", type=int, default=7, help="timed calls per setting (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--update", action="store_true",
                        help="write the speed-ups into inference/cpu_measurements.json (openvino_backend.OPENVINO_SPEEDUP)")
    parser.add_argument("--official", action="store_true",
                        help="the released weights from the weights folder (MIDAS_DIFFUSION_WEIGHTS) instead of the recipe")
    parser.add_argument("--fixture-size", action="store_true",
                        help="time the reference fixture's input (192x256 for most models) instead of the native size")
    args = parser.parse_args(argv)
    if not openvino_backend.openvino_installed():
        raise SystemExit("error: this bench compares OpenVINO: pip install openvino")
    import openvino

    with tempfile.TemporaryDirectory() as tmp:
        os.environ[openvino_backend.OPENVINO_CACHE_ENV] = tmp  # a fresh IR cache: first calls export
        print_table_head(f"CPU backends, {torch.get_num_threads()} threads, torch {torch.__version__}, OpenVINO "
                         f"{openvino.get_version()}; {'official' if args.official else 'recipe'} weights, input at "
                         f"{'the fixture' if args.fixture_size else 'the native'} size, network only, median of {args.iters} after {args.warmup} warm-up",
                         ("model", "path", "img/s b1", "img/s b4", "first call s", "cached start s",
                          "max |Δ| vs torch fp32"))
        speedups = {name: run_model(name, args) for name in args.models.split(",")}
    report_measured("openvino_speedup", speedups, args.update)
    return 0


if __name__ == "__main__":
    sys.exit(main())
