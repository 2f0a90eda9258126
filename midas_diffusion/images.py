"""Turning what users pass (PIL images, arrays, tensors, files) into RGB float tensors in [0,1]."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Sequence, Union

import numpy as np
import torch

DEFAULT_MAX_PIXELS = 64_000_000

ImageLike = Union["PIL.Image.Image", np.ndarray, torch.Tensor, str, os.PathLike]  # noqa: F821


class ImageError(ValueError):
    """An input that cannot be used as an image, with the reason."""


def _check_pixels(height: int, width: int, max_pixels: int | None, what: str = "image") -> None:
    if height < 1 or width < 1:
        raise ImageError(f"{what} is empty ({width}x{height})")
    if max_pixels is not None and height * width > max_pixels:
        raise ImageError(
            f"{what} is {width}x{height} = {height * width / 1e6:.1f} MP, over the limit of "
            f"{max_pixels / 1e6:.1f} MP (raise max_pixels to allow it)"
        )


def load_image_file(path: Union[str, os.PathLike], max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """Open an image file fully (EXIF orientation applied); errors name the file and the problem."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            _check_pixels(img.height, img.width, max_pixels, what=str(path))
            img.load()
            img = ImageOps.exif_transpose(img)
            return img.copy() if img is not None else img
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"cannot read {path}: not an image file (or a format Pillow does not know)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"cannot read {path}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read {path}: the file is damaged or truncated ({exc})") from None


def _pil_to_array(img) -> np.ndarray:
    """PIL image -> float32 HWC RGB in [0,1]; 16-bit and float modes keep their precision."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        gray = np.asarray(img).astype(np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "I":
        arr = np.asarray(img).astype(np.float64)
        scale = 65535.0 if arr.max(initial=0) <= 65535 else float(arr.max())
        gray = (arr / scale).clip(0, 1).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        gray = np.asarray(img).astype(np.float32)
        return np.repeat(_check_unit_range(gray, "float image")[..., None], 3, axis=2)
    if mode != "RGB":
        img = img.convert("RGB")  # L, LA, P, RGBA (alpha dropped, as MiDaS does), CMYK, YCbCr ...
    return np.asarray(img).astype(np.float32) / 255.0


def _check_unit_range(arr: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise ImageError(f"{what} contains NaN or infinite values")
    lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ImageError(f"{what} must hold values in [0, 1], found [{lo:.3g}, {hi:.3g}] (divide by 255?)")
    return arr.clip(0, 1)


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"an image array must be HxW or HxWxC with C in 1..4, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        arr = _check_unit_range(arr.astype(np.float32), "a float image array")
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    else:
        raise ImageError(f"unsupported image array dtype {arr.dtype} (use uint8, uint16 or float in [0,1])")
    channels = arr.shape[2]
    if channels in (1, 2):  # gray or gray+alpha
        arr = np.repeat(arr[..., :1], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def to_rgb_tensors(
    images: Union[ImageLike, Sequence[ImageLike]], max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> List[torch.Tensor]:
    """One or many images -> a list of ``(3,H,W)`` float32 tensors in [0,1].

    Accepts PIL images, numpy arrays (HxW or HxWxC; uint8, uint16, or float in [0,1]), tensors
    (``(3,H,W)``, ``(1,H,W)``, ``(H,W)`` or a ``(B,C,H,W)`` batch; float in [0,1] or uint8), and
    file paths. Grayscale becomes 3 channels, alpha is dropped, EXIF rotation is applied.
    """
    items = _as_list(images)
    if not items:
        raise ImageError("no images given")
    out: List[torch.Tensor] = []
    for item in items:
        if isinstance(item, torch.Tensor) and item.ndim == 4:
            out.extend(_tensor_to_rgb(t, max_pixels) for t in item)
        else:
            out.append(_one_to_rgb(item, max_pixels))
    return out


def _as_list(images: Any) -> list:
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def _tensor_to_rgb(t: torch.Tensor, max_pixels: int | None) -> torch.Tensor:
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise ImageError(f"an image tensor must be (C,H,W) with C in (1,3,4) or (B,C,H,W), got {tuple(t.shape)}")
    _check_pixels(t.shape[-2], t.shape[-1], max_pixels)
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif t.is_floating_point():
        t = t.float()
        if not torch.isfinite(t).all():
            raise ImageError("image tensor contains NaN or infinite values")
        lo, hi = t.min().item(), t.max().item()
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ImageError(f"a float image tensor must hold values in [0, 1], found [{lo:.3g}, {hi:.3g}]")
        t = t.clamp(0, 1)
    else:
        raise ImageError(f"unsupported image tensor dtype {t.dtype} (use float in [0,1] or uint8)")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t[:3].contiguous()


def _one_to_rgb(item: Any, max_pixels: int | None) -> torch.Tensor:
    if isinstance(item, (str, os.PathLike)):
        item = load_image_file(item, max_pixels)
    if isinstance(item, torch.Tensor):
        return _tensor_to_rgb(item, max_pixels)
    if isinstance(item, np.ndarray):
        _check_pixels(item.shape[0], item.shape[1] if item.ndim > 1 else 1, max_pixels)
        return torch.from_numpy(_array_to_rgb(item)).permute(2, 0, 1).contiguous()
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(item, Image.Image):
        _check_pixels(item.height, item.width, max_pixels)
        return torch.from_numpy(_pil_to_array(item)).permute(2, 0, 1).contiguous()
    raise ImageError(f"unsupported image type {type(item).__name__} (use a PIL image, array, tensor or path)")
