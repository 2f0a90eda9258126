"""Which floating-point type a model runs in: ``dtype="auto"`` and the names users write.

``"auto"`` picks, per device and model:

* CPU: bfloat16 where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX on x86,
  the BF16 extension on Arm; ``MIDAS_DIFFUSION_CPU_BF16=0`` turns that off), else float32. Models
  whose bf16 result differs visibly from float32 (``BF16_INACCURATE``, from the measured
  ``CPU_BF16_ERROR`` and the rule ``bf16_error_is_visible``) stay in float32.
* CUDA: float16, except models known to overflow in float16 (``FP16_OVERFLOW``: the Swin family, as
  the original MiDaS ``run.py`` warns), which get bfloat16 where the GPU has it, else float32.
* MPS: float16, except ``FP16_OVERFLOW`` models (float32).
* any other device: float32.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Dict, Optional, Union

import torch

from .measurements import cpu_measurements

DTYPE_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
CPU_BF16_ENV = "MIDAS_DIFFUSION_CPU_BF16"

# Swin and SwinV2 may give non-finite values in float16 (the original run.py's warning for --optimize).
FP16_OVERFLOW = frozenset({"dpt_swin_large_384", "dpt_swin2_large_384", "dpt_swin2_base_384", "dpt_swin2_tiny_256"})


@dataclass(frozen=True)
class Bf16Error:
    """How far bf16 moves a model's disparity from float32: absolute difference of the min-max normalized
    disparity, as a fraction of its range, over every pixel of the measured inputs."""

    max: float
    p99: float
    mean: float


# A bf16 error is visible when the average pixel moves by more than 1% of the range (2.5 of 255 gray
# levels), one pixel in a hundred by more than 5%, or any region by more than 10% (an artifact). A maximum
# of 1% is not a useful bar: in bf16 some pixel of every model moves by more (a rounding at a depth edge).
VISIBLE_MEAN = 0.01
VISIBLE_P99 = 0.05
VISIBLE_MAX = 0.10


def bf16_error_is_visible(error: Bf16Error) -> bool:
    return error.mean > VISIBLE_MEAN or error.p99 > VISIBLE_P99 or error.max > VISIBLE_MAX


# Measured by bench/bf16_accuracy.py on the CPU (AVX512-BF16, 2 threads) with the reference recipe weights
# (deterministic random weights, not the released ones), on each model's fixture input and 3 synthetic
# photos (cpu_measurements.json); README "The zoo" shows them.
CPU_BF16_ERROR: Dict[str, Bf16Error] = {
    name: Bf16Error(**error) for name, error in cpu_measurements()["bf16_error"].items()
}

# Models that "auto" keeps in float32 on the CPU: their bf16 error is visible.
BF16_INACCURATE = frozenset(name for name, error in CPU_BF16_ERROR.items() if bf16_error_is_visible(error))


def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bf16 matrices natively (x86 AVX512-BF16 or AMX, Arm BF16), as torch
    reports it; emulated bf16 (plain AVX512 or AVX2) is slower than float32 and does not count.
    The environment variable ``MIDAS_DIFFUSION_CPU_BF16=0`` (or ``1``) overrides the answer."""
    override = os.environ.get(CPU_BF16_ENV, "").strip()
    if override in ("0", "1"):
        return override == "1"
    try:
        machine = platform.machine().lower()
        if machine in ("arm64", "aarch64"):
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch build without these probes
        return False


def _cuda_has_bf16(device: torch.device) -> bool:
    try:
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    except (AssertionError, RuntimeError):
        return False


def parse_dtype(dtype: Union[str, torch.dtype, None]) -> Union[torch.dtype, str]:
    """The torch dtype a name (``"float16"``, ``"bf16"``, ``"torch.float32"``, ...) or torch dtype
    means, or ``"auto"`` kept as it is, for a caller that does not know the device and model yet
    (``resolve_dtype`` applies the rule once it does). ``None`` means float32."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"dtype must be float32, float16, bfloat16 or 'auto', got {dtype}")
        return dtype
    if not isinstance(dtype, str):
        raise ValueError(f"dtype must be a torch dtype or one of 'auto', 'float32', 'float16', 'bfloat16', got {dtype!r}")
    key = dtype.strip().lower().removeprefix("torch.")
    if key in DTYPE_NAMES:
        return DTYPE_NAMES[key]
    if key != "auto":
        raise ValueError(f"dtype must be 'auto', 'float32', 'float16' or 'bfloat16', got {dtype!r}")
    return "auto"


def resolve_dtype(
    dtype: Union[str, torch.dtype, None],
    device: Union[str, torch.device, None] = "cpu",
    model_name: Optional[str] = None,
) -> torch.dtype:
    """The torch dtype for ``dtype`` (a torch dtype, a name such as ``"float16"``/``"bf16"``, or
    ``"auto"``) on ``device`` for zoo model ``model_name``. ``None`` means float32."""
    parsed = parse_dtype(dtype)
    return auto_dtype(device, model_name) if parsed == "auto" else parsed


def auto_dtype(device: Union[str, torch.device, None] = "cpu", model_name: Optional[str] = None) -> torch.dtype:
    """What ``dtype="auto"`` means for ``model_name`` on ``device`` (see the module docstring)."""
    kind = torch.device(device if device is not None else "cpu").type
    if kind == "cpu":
        if model_name in BF16_INACCURATE or not cpu_has_native_bf16():
            return torch.float32
        return torch.bfloat16
    if kind == "cuda":
        if model_name in FP16_OVERFLOW:
            return torch.bfloat16 if _cuda_has_bf16(torch.device(device)) else torch.float32
        return torch.float16
    if kind == "mps":
        return torch.float32 if model_name in FP16_OVERFLOW else torch.float16
    return torch.float32
