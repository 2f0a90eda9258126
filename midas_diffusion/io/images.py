"""Turning what users pass (PIL images, arrays, tensors, files) into image tensors.

Two forms:

* the **compact** form (``to_compact_tensors``): ``(C,H,W)`` with ``C`` 1 (gray) or 3 (RGB), in the
  input's own type: uint8, uint16 (16-bit PNG/TIFF, uint16 arrays), or float32 in [0,1] (float
  inputs only). Nothing is converted at full resolution on the CPU; arrays and PIL pixels are wrapped
  or copied once (straight into pinned memory when ``pin_memory=True``, for a fast, non-blocking copy
  to a GPU). ``to_device`` moves one there; the estimator converts and resizes on its own device.
* float RGB (``to_rgb_tensors``): ``(3,H,W)`` float32 in [0,1], for code that wants plain pixels.

EXIF orientation is applied to PIL images (``ImageOps.exif_transpose``) wherever they enter, files
included, so a photo is processed the way it is shown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Sequence, Union

import numpy as np
import torch

# the image files we read (one set: the CLI, folder inputs and the evaluation data sets)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})
DEFAULT_MAX_PIXELS = 64_000_000
_ORIENTATION = 0x0112  # EXIF tag

ImageLike = Union["PIL.Image.Image", np.ndarray, torch.Tensor, str, os.PathLike]  # noqa: F821

# the value of full intensity for each compact type
VALUE_SCALE = {torch.uint8: 255.0, torch.uint16: 65535.0, torch.float32: 1.0}
_TORCH_DTYPES = {np.uint8: torch.uint8, np.uint16: torch.uint16, np.float32: torch.float32}


class ImageError(ValueError):
    """An input that cannot be used as an image, with the reason."""


def check_pixels(height: int, width: int, max_pixels: int | None, what: str = "image") -> None:
    if height < 1 or width < 1:
        raise ImageError(f"{what} is empty ({width}x{height})")
    if max_pixels is not None and height * width > max_pixels:
        raise ImageError(
            f"{what} is {width}x{height} = {height * width / 1e6:.1f} MP, over the limit of "
            f"{max_pixels / 1e6:.1f} MP (raise max_pixels to allow it)"
        )


def upright(img):
    """A PIL image as it is shown: its EXIF orientation applied (the image itself if it has none)."""
    orientation = img.getexif().get(_ORIENTATION, 1)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        from PIL import ImageOps

        return ImageOps.exif_transpose(img)
    return img


def load_image_file(path: Union[str, os.PathLike], max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """Open an image file fully (EXIF orientation applied); errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    return _open_image(path, str(path), max_pixels)


def load_image_bytes(data: bytes, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """An encoded image held in memory (e.g. a tar shard's ``jpg`` member) opened as ``load_image_file``
    opens a file; ``name`` (the sample's key) names it in errors."""
    import io

    if not data:
        raise ImageError(f"cannot read {name}: the image is empty (0 bytes)")
    return _open_image(io.BytesIO(data), name, max_pixels)


def _open_image(source, what: str, max_pixels: int | None):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as img:
            check_pixels(img.height, img.width, max_pixels, what=what)
            img.load()
            shown = upright(img)
            return shown if shown is not img else img.copy()  # the copy outlives the closed file
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"cannot read {what}: not an image file (or a format Pillow does not know)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"cannot read {what}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read {what}: the file is damaged or truncated ({exc})") from None


# ---------------------------------------------------------------------------- compact form
def _check_unit_range(arr: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise ImageError(f"{what} contains NaN or infinite values")
    lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ImageError(f"{what} must hold values in [0, 1], found [{lo:.3g}, {hi:.3g}] (divide by 255?)")
    return arr.clip(0, 1)


def _pil_to_array(img) -> np.ndarray:
    """PIL image -> HxWxC (C 1 or 3) uint8, uint16 or float32 [0,1], without widening 8-bit data."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img).astype(np.uint16)[..., None]  # native byte order
    if mode == "I":
        arr = np.asarray(img).astype(np.float64)
        scale = 65535.0 if arr.max(initial=0) <= 65535 else float(arr.max())
        return (arr / scale).clip(0, 1).astype(np.float32)[..., None]
    if mode == "F":
        return _check_unit_range(np.asarray(img).astype(np.float32), "float image")[..., None]
    if mode in ("L", "1", "LA"):
        img = img if mode == "L" else img.convert("L")  # alpha dropped, as MiDaS does
        return np.asarray(img)[..., None]
    if mode != "RGB":
        img = img.convert("RGB")  # P, RGBA (alpha dropped, as MiDaS does), CMYK, YCbCr ...
    return np.asarray(img)


def _compact_array(arr: np.ndarray) -> np.ndarray:
    """A user's HxW / HxWxC array -> HxWxC (C 1 or 3) uint8, uint16 or float32 in [0,1]."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"an image array must be HxW or HxWxC with C in 1..4, got shape {arr.shape}")
    arr = arr[..., :1] if arr.shape[2] in (1, 2) else arr[..., :3]  # gray (+alpha) or RGB (+alpha)
    if arr.dtype in (np.uint8, np.uint16):
        return arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if np.issubdtype(arr.dtype, np.floating):
        return _check_unit_range(arr.astype(np.float32), "a float image array")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    raise ImageError(f"unsupported image array dtype {arr.dtype} (use uint8, uint16 or float in [0,1])")


def _array_to_tensor(arr: np.ndarray, pin_memory: bool) -> torch.Tensor:
    """HxWxC array -> (C,H,W) tensor viewing dense HxWxC memory (one copy at most)."""
    if pin_memory:
        out = torch.empty(arr.shape, dtype=_TORCH_DTYPES[arr.dtype.type], pin_memory=True)
        out.numpy()[...] = arr
    elif arr.flags.writeable and arr.flags.c_contiguous:
        out = torch.from_numpy(arr)
    else:  # read-only (e.g. from PIL) or strided: one dense copy
        out = torch.from_numpy(np.ascontiguousarray(arr) if arr.flags.writeable else np.array(arr, order="C"))
    return out.permute(2, 0, 1)


def _tensor_to_compact(t: torch.Tensor, max_pixels: int | None) -> torch.Tensor:
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise ImageError(f"an image tensor must be (C,H,W) with C in (1,3,4) or (B,C,H,W), got {tuple(t.shape)}")
    check_pixels(t.shape[-2], t.shape[-1], max_pixels)
    t = t[:1] if t.shape[0] == 1 else t[:3]
    if t.dtype in (torch.uint8, torch.uint16):
        return t
    if t.dtype == torch.bool:
        return t.to(torch.uint8) * 255
    if not t.is_floating_point():
        raise ImageError(f"unsupported image tensor dtype {t.dtype} (use float in [0,1], uint8 or uint16)")
    t = t.float()
    lo, hi = torch.stack(torch.aminmax(t)).tolist()  # one sync for a GPU tensor; NaN propagates
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageError("image tensor contains NaN or infinite values")
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ImageError(f"a float image tensor must hold values in [0, 1], found [{lo:.3g}, {hi:.3g}]")
    return t.clamp(0, 1) if lo < 0 or hi > 1 else t


def to_compact_tensor(item: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS, pin_memory: bool = False) -> torch.Tensor:
    """One image (PIL image, array, ``(C,H,W)``/``(H,W)`` tensor or path) -> its compact tensor: the
    one conversion of an image (``to_compact_tensors`` applies it to each)."""
    if isinstance(item, (str, os.PathLike)):
        item = load_image_file(item, max_pixels)
    if isinstance(item, torch.Tensor):
        return _tensor_to_compact(item, max_pixels)
    if isinstance(item, np.ndarray):
        check_pixels(item.shape[0], item.shape[1] if item.ndim > 1 else 1, max_pixels)
        return _array_to_tensor(_compact_array(item), pin_memory)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(item, Image.Image):
        item = upright(item)
        check_pixels(item.height, item.width, max_pixels)
        return _array_to_tensor(_pil_to_array(item), pin_memory)
    raise ImageError(f"unsupported image type {type(item).__name__} (use a PIL image, array, tensor or path)")


class CompactImages(list):
    """Images already in compact form: what ``to_compact_tensors`` returns. Passed to it again (on
    their way from a pipeline through its depth component to the estimator) they come back as they
    are, with only their sizes checked against ``max_pixels``: an image is converted, and a float
    image's range scanned (one GPU sync), once."""


def _as_list(images: Any) -> list:
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def to_compact_tensors(
    images: Union[ImageLike, Sequence[ImageLike]],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    pin_memory: bool = False,
) -> List[torch.Tensor]:
    """One or many images -> a list (``CompactImages``) of ``(C,H,W)`` tensors in compact form (see
    the module docstring); a ``CompactImages`` comes back as it is.

    Accepts PIL images, numpy arrays (HxW or HxWxC; uint8, uint16, bool, or float in [0,1]), tensors
    (``(3,H,W)``, ``(1,H,W)``, ``(H,W)`` or a ``(B,C,H,W)`` batch; float in [0,1], uint8 or uint16),
    and file paths. Alpha is dropped; EXIF rotation is applied. Tensors stay on their device.
    ``pin_memory=True`` puts the pixels of PIL images and arrays in pinned (page-locked) memory.
    """
    if isinstance(images, CompactImages):
        for t in images:
            check_pixels(t.shape[-2], t.shape[-1], max_pixels)
        return images
    items = _as_list(images)
    if not items:
        raise ImageError("no images given")
    out = CompactImages()
    for item in items:
        if isinstance(item, torch.Tensor) and item.ndim == 4:
            out.extend(to_compact_tensor(t, max_pixels, pin_memory) for t in item)
        else:
            out.append(to_compact_tensor(item, max_pixels, pin_memory))
    return out


def _pinned_copy(image: torch.Tensor) -> torch.Tensor:
    """A copy of a CPU image in pinned memory, keeping an HxWxC layout (one plain memory copy)."""
    hwc = image.permute(1, 2, 0) if image.ndim == 3 else None
    if hwc is not None and hwc.is_contiguous():
        return torch.empty(hwc.shape, dtype=image.dtype, pin_memory=True).copy_(hwc).permute(2, 0, 1)
    return torch.empty(image.shape, dtype=image.dtype, pin_memory=True).copy_(image)


def to_device(image: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A compact image on ``device``: a CPU image goes to a GPU from pinned memory, without blocking."""
    if image.device == device:
        return image
    if device.type == "cuda" and image.device.type == "cpu":
        if not image.is_pinned():
            image = _pinned_copy(image)
        return image.to(device, non_blocking=True)
    return image.to(device)


def widen(image: torch.Tensor) -> torch.Tensor:
    """A compact image as float32 (values unscaled: 0..255, 0..65535 or 0..1), on its device, in its
    memory layout (an HxWxC image stays channels-last: one streaming pass). uint16 goes through
    int32 (few kernels take uint16, on GPUs especially)."""
    if image.dtype == torch.uint16:
        image = image.view(torch.int16).to(torch.int32).bitwise_and_(0xFFFF)
    return image.float()


def dense_view(image: torch.Tensor) -> torch.Tensor:
    """The same pixels viewed in memory order (an ``(C,H,W)`` view of HxWxC memory as ``(H,W,C)``),
    for reductions whose result does not depend on the order, which run far faster on it."""
    if image.ndim == 3 and not image.is_contiguous():
        hwc = image.permute(1, 2, 0)
        if hwc.is_contiguous():
            return hwc
    return image


def to_float_rgb(image: torch.Tensor) -> torch.Tensor:
    """A compact ``(C,H,W)`` or ``(B,C,H,W)`` image -> float32 RGB in [0,1], on its device."""
    scale = VALUE_SCALE.get(image.dtype)
    if scale is None:
        raise ImageError(f"not a compact image tensor: dtype {image.dtype}")
    rgb = widen(image)
    if scale != 1.0:
        rgb = rgb.div_(scale)
    channel = -3
    return rgb.expand(*rgb.shape[:channel], 3, *rgb.shape[channel + 1 :]) if rgb.shape[channel] == 1 else rgb


def to_rgb_tensors(
    images: Union[ImageLike, Sequence[ImageLike]], max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> List[torch.Tensor]:
    """One or many images -> a list of ``(3,H,W)`` float32 tensors in [0,1] (inputs as for
    ``to_compact_tensors``; gray becomes 3 channels)."""
    return [to_float_rgb(t).contiguous() for t in to_compact_tensors(images, max_pixels)]
