"""MiDaS preprocessing on tensors: network input size, resize, normalize; and disparity maps.

Each operation is a plain function over ``(B,C,H,W)`` tensors.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .config import PreprocessConfig


def _to_multiple(x: float, multiple: int, min_val: float = 0, max_val: Optional[float] = None) -> int:
    """MiDaS ``constrain_to_multiple_of``: round half to even, floor above ``max_val``, ceil below ``min_val``."""
    y = int(np.round(x / multiple) * multiple)
    if max_val is not None and y > max_val:
        y = int(np.floor(x / multiple) * multiple)
    if y < min_val:
        y = int(np.ceil(x / multiple) * multiple)
    return y


def network_input_size(height: int, width: int, config: PreprocessConfig) -> Tuple[int, int]:
    """The ``(height, width)`` the network sees for an image of ``height`` x ``width``.

    Equal to MiDaS' ``Resize.get_size`` wherever that works. Where MiDaS rounds a side to 0 (extreme
    aspect ratios, e.g. 64x2000 at 384) and OpenCV fails, the side is raised to ``config.min_side``
    (at least one multiple), so every image gets a usable size.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    net_h, net_w = config.net_size
    if not config.keep_aspect_ratio:
        return net_h, net_w
    scale_h, scale_w = net_h / height, net_w / width
    method = config.resize_method
    if method == "lower_bound":
        scale_h = scale_w = max(scale_h, scale_w)
    elif method == "upper_bound":
        scale_h = scale_w = min(scale_h, scale_w)
    elif abs(1 - scale_w) < abs(1 - scale_h):  # minimal: the scale closest to 1
        scale_h = scale_w
    else:
        scale_w = scale_h
    m = config.ensure_multiple_of
    bounds = {
        "lower_bound": (dict(min_val=net_h), dict(min_val=net_w)),
        "upper_bound": (dict(max_val=net_h), dict(max_val=net_w)),
        "minimal": ({}, {}),
    }[method]
    new_h = _to_multiple(scale_h * height, m, **bounds[0])
    new_w = _to_multiple(scale_w * width, m, **bounds[1])
    floor = max(config.min_side, m) if m > 1 else config.min_side
    floor = int(np.ceil(floor / m) * m)
    return max(new_h, floor), max(new_w, floor)


def with_resolution(config: PreprocessConfig, resolution: Optional[int] = None, square: Optional[bool] = None) -> PreprocessConfig:
    """The config at another processing resolution (MiDaS ``--height``) and/or square mode.

    Fixed-size models (Swin, SwinV2, LeViT) accept neither: asking for another size is an error.
    """
    if resolution is not None:
        if resolution < config.min_side:
            raise ValueError(f"processing_resolution must be at least {config.min_side}, got {resolution}")
        m = config.ensure_multiple_of
        resolution = _to_multiple(resolution, m)
        if config.fixed_size and (resolution, resolution) != tuple(config.net_size):
            raise ValueError(
                f"processing_resolution={resolution} is not possible: this model only runs at "
                f"{config.net_size[0]}x{config.net_size[1]} (leave the resolution unset)"
            )
        config = replace(config, net_size=(resolution, resolution))
    if square is not None and not config.fixed_size:
        config = replace(config, keep_aspect_ratio=not square)
    return config


def resize(image: torch.Tensor, size: Sequence[int], mode: str = "bicubic") -> torch.Tensor:
    """Resize ``(B,C,H,W)`` float images (no antialiasing, like OpenCV's INTER_CUBIC)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    align = False if mode in ("bilinear", "bicubic") else None
    return F.interpolate(image, size=tuple(size), mode=mode, align_corners=align)


def normalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    mean_t = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(1, -1, 1, 1)
    return (image - mean_t) / std_t


def prepare(image: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """RGB ``(B,3,H,W)`` in [0,1] -> the normalized network input of ``config``."""
    size = network_input_size(image.shape[-2], image.shape[-1], config)
    return normalize(resize(image, size, config.interpolation), config.mean, config.std)


def normalize_disparity(
    raw: torch.Tensor,
    percentile: Optional[Tuple[float, float]] = None,
    gamma: float = 1.0,
    invert: bool = False,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Per-image map of ``raw`` (``(B,1,H,W)``) to [0,1] with near = 1.

    ``percentile=(low, high)`` clips to those percentiles before min-max (robust to outliers);
    ``gamma`` is applied after normalization (``< 1`` lifts the far range); ``invert`` gives near = 0.
    A constant map becomes all zeros; non-finite values are treated as the far end.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    if percentile is not None:
        low, high = percentile
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentile must be (low, high) with 0 <= low < high <= 100, got {percentile}")
    raw = raw.float()
    out = torch.empty_like(raw)
    for i, d in enumerate(raw):
        finite = torch.isfinite(d)
        values = d[finite]
        if values.numel() == 0:
            out[i] = 0
            continue
        if percentile is not None:
            q = torch.tensor([percentile[0] / 100, percentile[1] / 100], device=values.device)
            sample = values if values.numel() <= 4_000_000 else values[:: values.numel() // 4_000_000 + 1]
            lo, hi = torch.quantile(sample, q).tolist()
        else:
            lo, hi = values.min().item(), values.max().item()
        span = hi - lo
        if span <= eps * max(1.0, abs(hi)):
            out[i] = 0
            continue
        mapped = ((torch.where(finite, d, torch.full_like(d, lo)) - lo) / span).clamp_(0, 1)
        out[i] = mapped
    if gamma != 1.0:
        out = out.pow(gamma)
    if invert:
        out = 1 - out
    return out
