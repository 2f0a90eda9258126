"""Single-channel maps from user input: a disparity map to condition on, or a subject mask.

``to_map_tensor`` turns PIL images, numpy arrays, tensors or file paths into a float32
``(B,1,H,W)`` tensor in [0,1]. Integer data is scaled by its type's range (uint8 by 255, uint16
and 16-bit PNGs by 65535), booleans become 0/1. Float data must be finite; float values outside
[0,1] are either min-max normalized per map (``rescale=True``, for disparity) or refused.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .images import ImageError, check_pixels, load_image_file

_TOLERANCE = 1e-3


def to_map_tensor(value: Any, what: str = "map", *, rescale: bool = False, max_pixels: int | None = None) -> torch.Tensor:
    """``value`` as a float32 ``(B,1,H,W)`` tensor in [0,1]; errors are ``ImageError`` naming ``what``.

    Accepted: a PIL image (16-bit and float modes keep their precision; an RGBA/LA image whose
    alpha is not fully opaque gives its alpha, others their luminance), a numpy array ``HxW`` or
    ``HxWxC`` (first channel, or alpha as for PIL), a tensor ``(H,W)``, ``(B,H,W)`` or
    ``(B,1,H,W)``, a file path, or a list of these (stacked along the batch).
    """
    if isinstance(value, (list, tuple)):
        if not value:
            raise ImageError(f"{what} is an empty list")
        maps = [to_map_tensor(v, what, rescale=rescale, max_pixels=max_pixels) for v in value]
        if len({tuple(m.shape[-2:]) for m in maps}) > 1:
            raise ImageError(f"all maps of {what} must have the same size")
        return torch.cat(maps)
    if isinstance(value, (str, os.PathLike)):
        value = load_image_file(value, max_pixels)
    if isinstance(value, torch.Tensor):
        t = _torch_to_float(_tensor_layout(value.detach().cpu(), what))
    elif isinstance(value, np.ndarray):
        t = torch.from_numpy(_np_to_float(_array_layout(value, what)))[None, None]
    elif _is_pil(value):
        t = torch.from_numpy(_np_to_float(_pil_to_gray(value)))[None, None]
    else:
        raise ImageError(f"{what}: unsupported type {type(value).__name__} (use a tensor, array, PIL image or path)")
    check_pixels(t.shape[-2], t.shape[-1], max_pixels, what)
    return _to_unit_range(t, what, rescale)


def _is_pil(value: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, Image.Image)


def _tensor_layout(t: torch.Tensor, what: str) -> torch.Tensor:
    if t.ndim == 2:
        return t[None, None]
    if t.ndim == 3:
        return t[:, None]
    if t.ndim == 4 and t.shape[1] == 1:
        return t
    raise ImageError(f"{what} must be (B,1,H,W), (B,H,W) or (H,W), got {tuple(t.shape)}")


def _array_layout(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4):
        alpha = arr[..., -1] if arr.shape[2] in (2, 4) else None
        opaque = np.iinfo(arr.dtype).max if np.issubdtype(arr.dtype, np.integer) else 1
        arr = alpha if alpha is not None and (alpha < opaque).any() else arr[..., 0]
    if arr.ndim != 2:
        raise ImageError(f"{what} as an array must be HxW or HxWxC, got shape {arr.shape}")
    return arr


def _pil_to_gray(img) -> np.ndarray:
    """A PIL image as one 2-D array, keeping 16-bit and float precision (scaled later by dtype)."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img).astype(np.uint16)
    if mode == "I":  # how 16-bit PNGs often read: 16-bit data unless larger values are present
        arr = np.asarray(img).astype(np.float64)
        return (arr / (65535.0 if arr.max(initial=0) <= 65535 else float(arr.max()))).astype(np.float32)
    if mode == "F":
        return np.asarray(img).astype(np.float32)
    if mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(img.getchannel("A"))
        if (alpha < 255).any():
            return alpha.copy()
    return np.asarray(img.convert("L")).copy()


def _np_to_float(arr: np.ndarray) -> np.ndarray:
    """uint8 / 255, uint16 / 65535, bool as 0/1; other numbers as float32, checked later."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.number):
        return np.ascontiguousarray(arr, dtype=np.float32)
    raise ImageError(f"unsupported array dtype {arr.dtype}")


def _torch_to_float(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    if t.dtype == torch.uint16:
        return t.to(torch.int32).float() / 65535.0
    return t.float()


def _to_unit_range(t: torch.Tensor, what: str, rescale: bool) -> torch.Tensor:
    if not torch.isfinite(t).all():
        raise ImageError(f"{what} contains NaN or infinite values")
    lo, hi = t.amin(dim=(1, 2, 3), keepdim=True), t.amax(dim=(1, 2, 3), keepdim=True)
    outside = (lo < -_TOLERANCE) | (hi > 1 + _TOLERANCE)  # per map
    if not outside.any():
        return t.clamp(0, 1)
    if not rescale:
        top = hi.max().item()
        hint = " (divide by 255?)" if 1 < top <= 255 else ""
        raise ImageError(f"{what} must hold values in [0, 1], found [{lo.min().item():.3g}, {top:.3g}]{hint}")
    stretched = (t - lo) / (hi - lo).clamp_min(1e-12)
    return torch.where(outside, stretched, t).clamp(0, 1)
