"""Which floating-point type a model runs in: ``dtype="auto"`` and the names users write.

``"auto"`` picks, per device and model:

* CPU: bfloat16 where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX on x86,
  the BF16 extension on Arm; ``MIDAS_DIFFUSION_CPU_BF16=0`` turns that off), else float32. Models
  whose bf16 result differs visibly from float32 (``BF16_INACCURATE``: 1% of the pixels off by more
  than 1% of the disparity range, measured by ``bench/bf16_accuracy.py``) stay in float32.
* CUDA: float16, except models known to overflow in float16 (``FP16_OVERFLOW``: the Swin family, as
  the original MiDaS ``run.py`` warns), which get bfloat16 where the GPU has it, else float32.
* MPS: float16, except ``FP16_OVERFLOW`` models (float32).
* any other device: float32.
"""

from __future__ import annotations

import os
import platform
from typing import Optional, Union

import torch

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

# Models whose bf16 disparity differs visibly from float32: the 99th percentile of the absolute
# difference of the min-max normalized disparity is above 1% of the range (one pixel in a hundred off by
# more than 2.5 gray levels of 255). Measured by bench/bf16_accuracy.py on the CPU (AVX512-BF16) with the
# reference recipe weights, on the fixtures' inputs and 2 synthetic photos (README, "The zoo").
# "auto" keeps these in float32 on the CPU.
BF16_INACCURATE = frozenset({
    "dpt_beit_large_512", "dpt_beit_large_384", "dpt_swin2_large_384", "dpt_swin2_base_384", "dpt_swin2_tiny_256",
    "dpt_swin_large_384", "dpt_next_vit_large_384", "dpt_large_384", "dpt_hybrid_384",
})


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


def resolve_dtype(
    dtype: Union[str, torch.dtype, None],
    device: Union[str, torch.device, None] = "cpu",
    model_name: Optional[str] = None,
) -> torch.dtype:
    """The torch dtype for ``dtype`` (a torch dtype, a name such as ``"float16"``/``"bf16"``, or
    ``"auto"``) on ``device`` for zoo model ``model_name``. ``None`` means float32."""
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
    return auto_dtype(device, model_name)


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
