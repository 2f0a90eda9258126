"""The depth encodings and annotation files of the evaluation datasets, read exactly.

Every reader returns depth as float32 metres with 0 where there is no measurement, and raises
``LayoutError`` naming the expected layout when a file is not in it.

* 16-bit PNG with a scale: KITTI (metres x 256), TUM RGB-D (metres x 5000), NYU exports (mm).
* Sintel ``.dpt``: float32 tag 202021.25, int32 width, int32 height, then width*height float32
  metres, row-major, all little-endian.
* ETH3D: raw little-endian float32, row-major, the size of its image, no header; inf = no depth.
* TUM ``associations.txt`` (from the benchmark's ``associate.py``): ``time path time path`` lines.
* DIW ``DIW_test.csv``: two lines per image: its path, then ``y_A,x_A,y_B,x_B,rel,width,height``
  (1-based pixels; ``rel`` is ``>`` when A is farther than B, ``<`` when A is closer).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

DPT_TAG = 202021.25
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class LayoutError(ValueError):
    """A dataset file or folder is not in the layout its reader expects (the message names it)."""


def read_rgb(path: os.PathLike) -> np.ndarray:
    """An image file as (H,W,3) uint8 in its stored pixel layout (no EXIF rotation: the ground
    truth is registered to the stored pixels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise LayoutError(f"cannot read image {path}: {exc}") from None


def image_size(path: os.PathLike) -> Tuple[int, int]:
    """(height, width) of an image file, from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (UnidentifiedImageError, OSError) as exc:
        raise LayoutError(f"cannot read image {path}: {exc}") from None


def read_png16_metres(path: os.PathLike, metres_per_unit: float, expected: str) -> np.ndarray:
    """A 16-bit single-channel PNG as float32 metres (``value * metres_per_unit``; 0 stays 0).

    ``expected`` describes the layout for the error raised on an 8-bit, color or non-PNG file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            fmt, mode = img.format, img.mode
            values = np.asarray(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise LayoutError(f"cannot read depth {path}: {exc}; expected {expected}") from None
    if fmt != "PNG" or not (mode.startswith("I;16") or mode == "I") or values.ndim != 2:
        raise LayoutError(f"{path} is a {fmt} image in mode {mode}; expected {expected}")
    if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
        raise LayoutError(f"{path} holds values outside 0..65535; expected {expected}")
    return (values.astype(np.float64) * metres_per_unit).astype(np.float32)


def read_dpt(path: os.PathLike) -> np.ndarray:
    """A Sintel ``.dpt`` depth file as (H,W) float32 metres."""
    expected = "a Sintel .dpt file (float32 tag 202021.25, int32 width, int32 height, width*height float32)"
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12:
            raise LayoutError(f"{path} is {len(header)} bytes, too short for a header; expected {expected}")
        tag = np.frombuffer(header[:4], "<f4")[0]
        width, height = (int(v) for v in np.frombuffer(header[4:], "<i4"))
        if tag != np.float32(DPT_TAG):
            raise LayoutError(f"{path} starts with tag {tag!r}, not 202021.25; expected {expected}")
        if not (0 < width < 100_000 and 0 < height < 100_000):
            raise LayoutError(f"{path} declares a {width}x{height} map; expected {expected}")
        data = np.frombuffer(f.read(), "<f4")
    if data.size != width * height:
        raise LayoutError(f"{path} holds {data.size} values for a {width}x{height} map; expected {expected}")
    return data.reshape(height, width).astype(np.float32)


def read_raw_float32(path: os.PathLike, height: int, width: int) -> np.ndarray:
    """An ETH3D ground-truth depth file (raw float32, no header) as (H,W) metres; inf/NaN/<=0 -> 0."""
    size = Path(path).stat().st_size
    if size != 4 * height * width:
        raise LayoutError(
            f"{path} is {size} bytes; expected an ETH3D depth file: raw little-endian float32, row-major, "
            f"the size of its image ({width}x{height} -> {4 * height * width} bytes)"
        )
    depth = np.fromfile(path, dtype="<f4").reshape(height, width)
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0)
    return depth.astype(np.float32)


def read_depth_file(path: os.PathLike, metres_per_unit: Optional[float] = None) -> np.ndarray:
    """A depth map of the generic folder layout as float32 metres (0/NaN/inf -> 0).

    ``.png``: 16-bit integers x ``metres_per_unit`` (default 0.001: millimetres); ``.npy``/``.pfm``:
    floats x ``metres_per_unit`` (default 1: metres); ``.exr`` (needs imageio): first channel, metres."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        depth = read_png16_metres(path, 0.001 if metres_per_unit is None else metres_per_unit,
                           "a 16-bit PNG depth map (millimetres, or --depth-scale metres per unit)")
    elif suffix == ".npy":
        depth = np.load(path, allow_pickle=False)
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
            raise LayoutError(f"{path} holds a {depth.dtype} array of shape {depth.shape}; expected a 2-D numeric depth map")
        depth = depth.astype(np.float64) * (1.0 if metres_per_unit is None else metres_per_unit)
    elif suffix == ".pfm":
        from ...io.writers import read_pfm

        try:
            depth = read_pfm(path).astype(np.float64)
        except ValueError as exc:
            raise LayoutError(f"{exc}; expected a grayscale PFM depth map") from None
        if depth.ndim != 2:
            raise LayoutError(f"{path} is a color PFM; expected a grayscale (Pf) depth map")
        depth = depth * (1.0 if metres_per_unit is None else metres_per_unit)
    elif suffix == ".exr":
        depth = read_exr(path) * (1.0 if metres_per_unit is None else metres_per_unit)
    else:
        raise LayoutError(f"{path}: unknown depth format {suffix!r}; expected .png (16-bit), .npy, .pfm or .exr")
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0)
    return depth.astype(np.float32)


def read_exr(path: os.PathLike) -> np.ndarray:
    """The first channel of an OpenEXR file (needs the optional ``imageio``)."""
    try:
        import imageio.v3 as iio
    except ImportError:
        raise LayoutError(f"reading {path} needs imageio with OpenEXR support: pip install imageio "
                          "(or save the depth as .npy / 16-bit .png)") from None
    arr = np.asarray(iio.imread(path), dtype=np.float64)
    return arr if arr.ndim == 2 else arr[..., 0]


def is_hdf5(path: os.PathLike) -> bool:
    """True when the file carries the HDF5 signature at 0 or a power-of-two user-block offset
    (MATLAB v7.3 files put a 512-byte text header first)."""
    with open(path, "rb") as f:
        head = f.read(4096 + 8)
    return any(head[o:o + 8] == HDF5_SIGNATURE for o in (0, 512, 1024, 2048, 4096))


def parse_tum_associations(path: os.PathLike) -> List[Tuple[str, str]]:
    """(rgb path, depth path) pairs of a TUM associations file, in file order.

    Lines are ``time path time path`` (rgb or depth first: the column whose paths lie in a
    ``depth`` folder is the depth); ``#`` starts a comment."""
    expected = ("a TUM associations file: lines 'time rgb/NAME.png time depth/NAME.png' "
                "(python associate.py rgb.txt depth.txt > associations.txt)")
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 4:
            raise LayoutError(f"{path}:{number}: {len(parts)} fields; expected {expected}")
        try:
            float(parts[0]), float(parts[2])
        except ValueError:
            raise LayoutError(f"{path}:{number}: no timestamps; expected {expected}") from None
        rows.append((parts[1], parts[3]))
    if not rows:
        raise LayoutError(f"{path} has no associations; expected {expected}")

    def in_depth(p: str) -> bool:
        return "depth" in Path(p).parts[:-1]

    first_depth = all(in_depth(a) and not in_depth(b) for a, b in rows)
    second_depth = all(in_depth(b) and not in_depth(a) for a, b in rows)
    if second_depth:
        return rows
    if first_depth:
        return [(b, a) for a, b in rows]
    raise LayoutError(f"{path}: cannot tell the depth column (depth images must lie in a 'depth/' folder); "
                      f"expected {expected}")


def parse_diw_csv(path: os.PathLike) -> List[Tuple[str, Tuple[int, int, int, int, int], Tuple[int, int]]]:
    """(image path, (y_A, x_A, y_B, x_B, relation), (width, height)) per image of a DIW csv;
    pixels 0-based, relation +1 when A is farther than B, -1 when A is closer."""
    expected = "the DIW csv layout: an image path line, then 'y_A,x_A,y_B,x_B,<or>,width,height' (1-based pixels)"
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(lines) % 2:
        raise LayoutError(f"{path} has an odd number of lines ({len(lines)}); expected {expected}")
    rows = []
    for k in range(0, len(lines), 2):
        image, fields = lines[k], lines[k + 1].split(",")
        if len(fields) != 7 or fields[4].strip() not in ("<", ">"):
            raise LayoutError(f"{path}:{k + 2}: {lines[k + 1]!r}; expected {expected}")
        try:
            y_a, x_a, y_b, x_b, width, height = (int(round(float(fields[i]))) for i in (0, 1, 2, 3, 5, 6))
        except ValueError:
            raise LayoutError(f"{path}:{k + 2}: {lines[k + 1]!r}; expected {expected}") from None
        if "," in image:
            raise LayoutError(f"{path}:{k + 1}: {image!r} is not an image path; expected {expected}")
        relation = 1 if fields[4].strip() == ">" else -1
        rows.append((image, (y_a - 1, x_a - 1, y_b - 1, x_b - 1, relation), (width, height)))
    if not rows:
        raise LayoutError(f"{path} is empty; expected {expected}")
    return rows
