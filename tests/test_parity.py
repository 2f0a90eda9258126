"""Same function as the original MiDaS: recipe weights in, the original code's outputs out (CPU).
(Depth Anything's counterpart: ``test_depth_anything.py``.)

The reference outputs (``tests/reference_data``) were computed by the original code in float32
(``y``) and in float64 (``y64``). The float64 comparison means the same on every CPU: float64
rounding is ~1e-16, far below what a wrong port changes, so every model must match ``y64`` to
1e-8 of the output's range (measured: ~1e-14). The float32 comparison is kept where float32 is
well conditioned, at the tolerance it always had.
"""

import gc

import pytest
import torch

import midas_diffusion as md
from midas_diffusion.loading.factory import load_model

from reference import fixture, midas_models, official_checkpoint

FLOAT64_TOLERANCE = 1e-8  # of the output's range
FLOAT32_TOLERANCE = 1e-4  # of the output's range

# No float32 check for Next-ViT-L: with the recipe's weights its activations reach ~4e7 through 40
# residual BN blocks, its attention softmax saturates, and float32 rounding decides which token
# wins, so the float32 output moves by ~1e-2 of the range with the CPU's kernels and the thread
# count (the original code itself, in float32 on an AVX-512/AMX CPU, is 1.3e-2 away from its own
# float64 output). A float32 comparison of this fixture says nothing about the port; the float64
# one does (ours equals the original to ~2e-14 of the range).
ILL_CONDITIONED_IN_FLOAT32 = {"dpt_next_vit_large_384"}


def _relative_error(y: torch.Tensor, expected: torch.Tensor) -> float:
    assert y.shape == expected.shape
    span = (expected.max() - expected.min()).item()
    assert span > 0, "degenerate reference output"
    return (y - expected).abs().max().item() / span


@pytest.mark.parametrize("name", [n for n in md.list_models() if n in midas_models()])
def test_reference_output(name):
    ref = fixture(name)
    official = official_checkpoint(name, seed=ref["seed"])
    # keys sorted, as a safetensors file or a rebuilt dict holds them (never the file's order)
    model = load_model(name, {k: official[k] for k in sorted(official)})
    del official
    x = torch.from_numpy(ref["x"])

    if name not in ILL_CONDITIONED_IN_FLOAT32:
        with torch.inference_mode():
            y32 = model(x)
        assert y32.dtype == torch.float32
        err32 = _relative_error(y32, torch.from_numpy(ref["y"]))
        assert err32 < FLOAT32_TOLERANCE, f"{name}: float32 max abs error {err32:.2e} of the range"

    model.double()
    model.train().eval()  # drops per-dtype caches filled by the float32 pass (LeViT's attention biases)
    with torch.inference_mode():
        y64 = model(x.double())
    assert y64.dtype == torch.float64
    err64 = _relative_error(y64, torch.from_numpy(ref["y64"]))
    assert err64 < FLOAT64_TOLERANCE, f"{name}: float64 max abs error {err64:.2e} of the range"
    del model
    gc.collect()
