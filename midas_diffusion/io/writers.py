"""Writing depth maps: 16-bit PNG, PFM, .npy and a colored preview, always atomically.

Every writer writes to a temporary file beside the target and renames it into place, so an
interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator

import numpy as np

FORMATS = ("png16", "pfm", "npy", "preview")
SUFFIXES = {"png16": ".png", "pfm": ".pfm", "npy": ".npy", "preview": "-preview.png", "ply": ".ply", "glb": ".glb"}


@contextmanager
def atomic_path(dest: os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``dest``'s folder; on success rename it to ``dest``, else delete it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def _as_2d(disparity) -> np.ndarray:
    arr = disparity.detach().cpu().numpy() if hasattr(disparity, "detach") else np.asarray(disparity)
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ValueError(f"a depth map must be 2-D after squeezing, got shape {arr.shape}")
    return arr.astype(np.float32)


def to_uint16(disparity) -> np.ndarray:
    """[0,1] float map -> uint16 0..65535 (rounded; non-finite -> 0)."""
    arr = np.nan_to_num(_as_2d(disparity), nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(arr, 0, 1) * 65535).astype(np.uint16)


def encode_png16(disparity) -> bytes:
    """The bytes of the 16-bit PNG ``write_png16`` writes (tar shards hold them as ``depth.png``)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_uint16(disparity)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png16(path: os.PathLike, disparity) -> Path:
    return _write_bytes(path, encode_png16(disparity))


def _write_bytes(path: os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def read_uint16_png(path: os.PathLike) -> np.ndarray:
    """A 16-bit PNG's values as they are stored (uint16; ``write_png16`` maps disparity 0-1 to 0-65535)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img).astype(np.uint16)


def encode_pfm(values, scale: float = 1.0) -> bytes:
    """Grayscale PFM (``Pf``), little-endian, rows bottom-to-top, as MiDaS writes raw predictions."""
    arr = _as_2d(values)
    header = f"Pf\n{arr.shape[1]} {arr.shape[0]}\n{-abs(scale)}\n".encode()
    return header + np.flipud(arr).astype("<f4").tobytes()


def write_pfm(path: os.PathLike, values, scale: float = 1.0) -> Path:
    return _write_bytes(path, encode_pfm(values, scale))


def read_pfm(path: os.PathLike) -> np.ndarray:
    with open(path, "rb") as f:
        header = f.readline().strip()
        if header not in (b"Pf", b"PF"):
            raise ValueError(f"{path} is not a PFM file")
        width, height = map(int, f.readline().split())
        scale = float(f.readline())
        dtype = "<f4" if scale < 0 else ">f4"
        channels = 3 if header == b"PF" else 1
        data = np.fromfile(f, dtype=dtype, count=width * height * channels)
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


def encode_npy(values) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, _as_2d(values))
    return buffer.getvalue()


def write_npy(path: os.PathLike, values) -> Path:
    return _write_bytes(path, encode_npy(values))


def inferno(values: np.ndarray) -> np.ndarray:
    """An inferno-like colormap (polynomial fit) of [0,1] values -> uint8 RGB."""
    t = np.clip(values, 0, 1)[..., None]
    c0 = np.array([0.000218, 0.001651, -0.019480])
    c1 = np.array([0.106513, 0.563956, 3.932712])
    c2 = np.array([11.602493, -3.972854, -15.942394])
    c3 = np.array([-41.703996, 17.436398, 44.354145])
    c4 = np.array([77.162935, -33.402359, -81.807309])
    c5 = np.array([-71.319428, 32.626064, 73.209519])
    c6 = np.array([25.131126, -12.242669, -23.070325])
    rgb = c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * c6)))))
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def encode_preview(disparity) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(inferno(_as_2d(disparity))).save(buffer, format="PNG")
    return buffer.getvalue()


def write_preview(path: os.PathLike, disparity) -> Path:
    return _write_bytes(path, encode_preview(disparity))


WRITERS: Dict[str, Callable] = {"png16": write_png16, "pfm": write_pfm, "npy": write_npy, "preview": write_preview}
# each format's bytes (what WRITERS write; tar shards hold them in memory); pfm and npy take the raw prediction
ENCODERS: Dict[str, Callable] = {"png16": encode_png16, "pfm": encode_pfm, "npy": encode_npy, "preview": encode_preview}
RAW_FORMATS = frozenset({"pfm", "npy"})
