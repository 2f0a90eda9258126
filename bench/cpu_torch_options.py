"""torch's own CPU options on the same footing as ``bench/cpu_backends.py``: which of them beats plain
eager float32, and at what error.

    python bench/cpu_torch_options.py                                     # four models (minutes)
    python bench/cpu_torch_options.py --models midas_v21_small_256 --iters 3

Options, each on the float32 network (``DepthEstimator.predict_network``'s model, input at the native
size (``--fixture-size``: the reference fixture's), batch 1, median of ``--iters`` after ``--warmup``):

* ``eager``: the baseline, what ``backend="torch"`` runs;
* ``channels-last``: inputs and weights in NHWC (``memory_format``);
* ``compile``: ``torch.compile`` with the inductor CPU backend (its compile time is the ``first`` column);
* ``onednn-graph``: ``torch.jit.trace`` + ``freeze`` with oneDNN graph fusion enabled;
* ``int8-linear``: ``torch.ao.quantization.quantize_dynamic`` of the ``nn.Linear`` layers to int8.

``max |Δ|``: the largest difference from eager float32 as a fraction of its range. Weights: the
reference recipe (``tests/reference.py``; speed does not depend on them).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_backends import bench_input, estimator  # noqa: E402
from throughput import median_seconds, print_table_head  # noqa: E402

DEFAULT_MODELS = "midas_v21_small_256,dpt_levit_224,dpt_swin2_tiny_256,dpt_beit_base_384"


def channels_last(model: nn.Module, x: torch.Tensor):
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return lambda inp: model(inp.contiguous(memory_format=torch.channels_last))


def compiled(model: nn.Module, x: torch.Tensor):
    return torch.compile(copy.deepcopy(model), backend="inductor")


def onednn_graph(model: nn.Module, x: torch.Tensor):
    torch.jit.enable_onednn_fusion(True)
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(copy.deepcopy(model), x, check_trace=False))
        traced(x), traced(x)  # the fusion pass runs in the profiling calls
    return traced


def int8_linear(model: nn.Module, x: torch.Tensor):
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)


OPTIONS = {"eager": lambda model, x: model, "channels-last": channels_last, "compile": compiled,
           "onednn-graph": onednn_graph, "int8-linear": int8_linear}


def run_model(name: str, args) -> None:
    model = estimator(name, official=False).model.float().eval()
    x = bench_input(name, args.fixture_size)
    reference, eager_speed = None, None
    for label, make in OPTIONS.items():
        try:
            start = time.perf_counter()
            fn = make(model, x)
            with torch.no_grad():
                out = fn(x).float()
            first = time.perf_counter() - start
            with torch.no_grad():
                speed = 1 / median_seconds(fn, x, args.iters, args.warmup, torch.device("cpu"))
        except Exception as exc:  # one failing option does not end the table
            print(f"| {name} | {label} | failed: {type(exc).__name__}: {str(exc)[:100]} | | | |", flush=True)
            continue
        finally:
            torch.jit.enable_onednn_fusion(False)
        reference = out if reference is None else reference
        eager_speed = speed if eager_speed is None else eager_speed
        error = ((out - reference).abs().max() / (reference.max() - reference.min())).item()
        print(f"| {name} | {label} | {speed:.2f} | {speed / eager_speed:.2f}x | {first:.1f} | {error:.1e} |",
              flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--iters", type=int, default=7, help="timed calls per option (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--fixture-size", action="store_true",
                        help="time the reference fixture's input (192x256 for most models) instead of the native size")
    args = parser.parse_args(argv)
    size = "the fixture" if args.fixture_size else "the native"
    print_table_head(f"torch CPU options, {torch.get_num_threads()} threads, torch {torch.__version__}; recipe "
                     f"weights, input at {size} size, batch 1, median of {args.iters} after {args.warmup} warm-up",
                     ("model", "option", "img/s", "vs eager", "first call s", "max |Δ| vs eager fp32"))
    for name in args.models.split(","):
        run_model(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
