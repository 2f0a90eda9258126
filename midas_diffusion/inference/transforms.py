"""MiDaS preprocessing on tensors: network input size, resize, standardize (mean/std); and disparity maps.

Each operation is a plain function over ``(B,C,H,W)`` tensors and runs on the tensor's device.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..zoo.config import PreprocessConfig
from ..io.images import VALUE_SCALE, widen


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
    """Resize ``(B,C,H,W)`` float images (no antialiasing, like OpenCV's INTER_CUBIC).

    Bicubic enlargement on the CPU runs as two banded matrix products (``_enlarge_bicubic``), about 5x
    faster than ``F.interpolate`` at 1080p and equal to it to float rounding."""
    size = (int(size[0]), int(size[1]))
    if tuple(image.shape[-2:]) == size:
        return image
    if mode == "bicubic" and image.device.type == "cpu" and size[0] >= image.shape[-2] and size[1] >= image.shape[-1]:
        return _enlarge_bicubic(image, size)
    align = False if mode in ("bilinear", "bicubic") else None
    return F.interpolate(image, size=size, mode=mode, align_corners=align)


def resize_prediction(prediction: torch.Tensor, size: Sequence[int], config: PreprocessConfig) -> torch.Tensor:
    """A ``(B,1,h,w)`` network prediction at the image ``size``, as the model's original code does it
    (``config.output_interpolation``): bicubic (MiDaS ``run.py``) or bilinear with
    ``align_corners=True`` (Depth Anything's ``infer_image``)."""
    if config.output_interpolation == "bilinear_align_corners":
        size = (int(size[0]), int(size[1]))
        if tuple(prediction.shape[-2:]) == size:
            return prediction
        return F.interpolate(prediction, size=size, mode="bilinear", align_corners=True)
    return resize(prediction, size, "bicubic")


_CUBIC_A = -0.75  # torch's and OpenCV's bicubic coefficient
_BLOCK = 32  # output rows (columns) per block of the banded product


@lru_cache(maxsize=64)
def _bicubic_taps(in_size: int, out_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``F.interpolate(mode="bicubic", align_corners=False)`` along one axis: output ``i`` is
    ``sum_k taps[i, k] * input[index[i, k]]``; ``index`` ``(out, 4)`` clamped at the borders like torch.
    The source positions are computed as torch's CPU kernel does (float32, fused multiply-add), so
    the taps are torch's to the last bit or two. Cached: callers must not modify the tensors."""
    scale = torch.tensor(in_size, dtype=torch.float32) / out_size
    real = torch.addcmul(torch.tensor(-0.5), scale, torch.arange(out_size, dtype=torch.float32) + 0.5)
    floor = torch.floor(real)
    t = real - floor
    a = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    rest = 1 - t
    taps = torch.stack([far(t + 1), near(t), near(rest), far(rest + 1)], dim=1)
    index = (floor.long()[:, None] + torch.arange(-1, 3)).clamp_(0, in_size - 1)
    return index, taps


@lru_cache(maxsize=64)
def _bicubic_blocks(in_size: int, out_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The taps of ``_bicubic_taps`` as blocks: output ``[b*R:(b+1)*R]`` = ``weights[b] @
    input[sources[b]]``, ``sources`` ``(nb, S)`` indices and ``weights`` ``(nb, R, S)``."""
    index, taps = _bicubic_taps(in_size, out_size)
    blocks = -(-out_size // _BLOCK)
    pad = blocks * _BLOCK - out_size
    index = torch.cat([index, index[-1:].expand(pad, 4)]).view(blocks, _BLOCK, 4)
    taps = torch.cat([taps, taps.new_zeros(pad, 4)]).view(blocks, _BLOCK, 4)
    first = index.amin(dim=(1, 2))
    span = int((index.amax(dim=(1, 2)) - first).max()) + 1
    first = first.clamp_(max=in_size - span)
    weights = torch.zeros(blocks, _BLOCK, span, dtype=torch.float32)
    weights.scatter_add_(2, index - first[:, None, None], taps)
    return first[:, None] + torch.arange(span), weights


def _enlarge_bicubic(image: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bicubic enlargement of ``(B,C,h,w)`` float to ``size`` as banded products (columns, then rows)."""
    b, c, h, w = image.shape
    height, width = size
    x = image.reshape(b * c, h, w)
    cols, col_weights = _bicubic_blocks(w, width)  # (nbx, Sx), (nbx, R, Sx)
    col_weights = col_weights.to(x.dtype)
    wide = torch.matmul(x[:, :, cols].permute(0, 2, 1, 3), col_weights.transpose(1, 2))  # (N, nbx, h, R)
    wide = wide.permute(0, 2, 1, 3).reshape(b * c, h, -1)[:, :, :width]
    rows, row_weights = _bicubic_blocks(h, height)  # (nby, Sy), (nby, R, Sy)
    out = torch.matmul(row_weights.to(x.dtype), wide[:, rows, :])  # (N, nby, R, width)
    return out.reshape(b * c, -1, width)[:, :height].reshape(b, c, height, width)


def _shrinks_far(image: torch.Tensor, size: Sequence[int]) -> bool:
    """Whether a strong reduction (every output row and column reads 4 input ones, fewer than the
    image has) is cheaper by gathering those than by widening the whole image (on the CPU)."""
    return image.device.type == "cpu" and 4 * size[0] < image.shape[-2] and 4 * size[1] < image.shape[-1]


def _shrink_bicubic(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bicubic reduction (as ``F.interpolate``, no antialias) of a compact ``(C,H,W)`` image to a float32
    ``(1,C,h,w)``: only the 4 input rows and columns each output reads are gathered and widened."""
    height, width = int(size[0]), int(size[1])
    hwc = image.permute(1, 2, 0)  # the memory order of images from PIL and arrays
    rows, row_taps = _bicubic_taps(image.shape[1], height)
    gathered = widen(hwc.index_select(0, rows.reshape(-1)))  # (4h, W, C)
    tall = torch.bmm(row_taps[:, None, :], gathered.reshape(height, 4, -1))  # (h, 1, W*C)
    tall = tall.reshape(height, image.shape[2], image.shape[0])
    cols, col_taps = _bicubic_taps(image.shape[2], width)
    picked = tall.index_select(1, cols.reshape(-1)).reshape(height, width, 4, -1)  # (h, w, 4, C)
    out = torch.matmul(col_taps[None, :, None, :], picked).squeeze(2)  # (h, w, C)
    return out.permute(2, 0, 1)[None].contiguous()


def standardize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(image - mean) / std`` per channel: the network input's statistics (not ``normalize_disparity``,
    the output's min-max)."""
    mean_t = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(1, -1, 1, 1)
    return (image - mean_t) / std_t


def prepare(image: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """RGB ``(B,3,H,W)`` in [0,1] -> the standardized network input of ``config``."""
    size = network_input_size(image.shape[-2], image.shape[-1], config)
    return standardize(resize(image, size, config.interpolation), config.mean, config.std)


def prepare_compact(image: torch.Tensor, size: Sequence[int], config: PreprocessConfig) -> torch.Tensor:
    """A compact ``(C,H,W)`` image (uint8, uint16 or float32; 1 or 3 channels; see ``images``) ->
    its standardized float32 ``(1,3,h,w)`` network input of ``size``, computed on the image's device.

    The same numbers as ``prepare`` of the float image: the type's scale (1/255, 1/65535) is applied
    after the resize (which is linear), gray is widened to 3 channels after it."""
    scale = VALUE_SCALE.get(image.dtype)
    if scale is None:
        raise ValueError(f"not a compact image tensor: dtype {image.dtype}")
    if config.interpolation == "bicubic" and _shrinks_far(image, size):
        x = _shrink_bicubic(image, size)
    else:
        x = resize(widen(image[None]), size, config.interpolation)
    if scale != 1.0:
        x = x / scale
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return standardize(x, config.mean, config.std)


def check_normalization(percentile: Optional[Tuple[float, float]], gamma: float) -> None:
    """ValueError for a ``percentile`` or ``gamma`` that ``normalize_disparity`` cannot use."""
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    if percentile is not None:
        try:
            low, high = percentile
        except (TypeError, ValueError):
            raise ValueError(f"percentile must be (low, high), got {percentile!r}") from None
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentile must be (low, high) with 0 <= low < high <= 100, got {percentile}")


def normalize_disparity(
    raw: torch.Tensor,
    percentile: Optional[Tuple[float, float]] = None,
    gamma: float = 1.0,
    invert: bool = False,
    eps: float = 1e-8,
    *,
    flat: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Per-image map of ``raw`` (``(B,1,H,W)``) to [0,1] with near = 1, on ``raw``'s device.

    ``percentile=(low, high)`` clips to those percentiles before min-max (robust to outliers);
    ``gamma`` is applied after normalization (``< 1`` lifts the far range); ``invert`` gives near = 0.
    A constant map becomes all zeros (all ones with ``invert``), as does every image marked in
    ``flat`` (``(B,)`` bool: an image without any depth cue); non-finite values are the far end.
    """
    check_normalization(percentile, gamma)
    raw = raw.float()
    values = raw.reshape(raw.shape[0], -1)
    if percentile is None:
        lo, hi = values.amin(dim=1), values.amax(dim=1)  # NaN and inf show up in these
        finite = bool((torch.isfinite(lo) & torch.isfinite(hi)).all())
    else:
        finite = bool(torch.isfinite(values).all())
        if finite:
            lo, hi = _percentiles(values, percentile)
    if not finite:
        lo, hi = _finite_range(values, percentile)
        values = torch.where(torch.isfinite(values), values, lo[:, None])
    span = hi - lo
    dead = span <= eps * hi.abs().clamp(min=1.0)
    if flat is not None:
        dead = dead | flat.to(device=dead.device, dtype=torch.bool).reshape(-1)
    span = torch.where(dead, torch.full_like(span, float("inf")), span)  # a dead image maps to 0
    out = (values - lo[:, None]).div_(span[:, None])
    if percentile is not None or not finite:  # min-max of finite values lands in [0,1] by itself
        out = out.clamp_(0, 1)
    out = out.reshape(raw.shape)
    if gamma != 1.0:
        out = out.pow_(gamma)
    if invert:
        out = out.neg_().add_(1)
    return out


_MAX_QUANTILE_VALUES = 4_000_000  # percentiles of larger maps come from an even sample of this size


def _percentiles(values: torch.Tensor, percentile: Tuple[float, float]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per row of finite ``(B,N)`` values, the two percentiles (each a ``(B,)`` tensor)."""
    q = torch.tensor([percentile[0] / 100, percentile[1] / 100], device=values.device)
    n = values.shape[1]
    sample = values if n <= _MAX_QUANTILE_VALUES else values[:, :: n // _MAX_QUANTILE_VALUES + 1]
    qs = torch.stack([torch.quantile(row, q) for row in sample], dim=1)  # (2, B)
    return qs[0], qs[1]


def _finite_range(values: torch.Tensor, percentile: Optional[Tuple[float, float]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``(B,N)`` values, min/max (or percentiles) over the finite ones; 0 for a row without any."""
    lo, hi = torch.zeros(len(values), device=values.device), torch.zeros(len(values), device=values.device)
    for i, row in enumerate(values):
        row = row[torch.isfinite(row)]
        if row.numel() == 0:
            continue
        if percentile is None:
            lo[i], hi[i] = row.min(), row.max()
        else:
            pair = _percentiles(row[None], percentile)
            lo[i], hi[i] = pair[0][0], pair[1][0]
    return lo, hi
