"""Files around metric depth: reading known depths, writing metric maps (``depth --metric-from``).

Known depths (``POINTS``) come as

* a CSV of ``x,y,depth_m`` rows (pixel column and row of the image, 0-based; a header row is
  allowed);
* a 16-bit PNG depth image in millimetres (0 = unknown), e.g. from a phone's depth sensor;
* an NPY array: a depth image in metres (0/NaN = unknown) or ``(N, 3)`` ``x, y, depth_m`` rows (an
  array of the photo's own size is always read as a depth image);
* an EXR depth image in metres (needs the optional ``imageio``).

A depth image may be smaller than the photo (phone depth sensors are): with the same aspect
ratio, each known pixel is placed at the matching photo position.

Metric depth (fitted to known depths, or a metric model's own prediction) is written as
``NAME-metric.png`` (16-bit, millimetres, 0 = none, saturating at 65.535 m), ``NAME-metric.npy``
and ``NAME-metric.pfm`` (float32 metres), with ``NAME-metric.json`` beside them stating the units
and where the metres came from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from .metric_depth import MetricDepth, sparse_from_points
from ..io.writers import SUFFIXES, atomic_path, write_npy, write_pfm

POINT_SUFFIXES = (".csv", ".npy", ".png", ".exr")
METRIC_FORMATS = ("png16", "npy", "pfm")
PNG_MM_SCALE = 0.001  # metres per unit of a NAME-metric.png (16-bit millimetres)
UNITS = {"png16": "millimetres (uint16; metres = value * 0.001; 0 = none; saturates at 65.535 m)",
         "npy": "metres (float32)", "pfm": "metres (float32)"}


def parse_points(text: str, where: str = "known depths") -> np.ndarray:
    """``x,y,depth_m`` rows (one per line; blank lines, ``#`` comments and one header row allowed)
    as an (N, 3) array; a bad row is a ``ValueError`` naming ``where`` and its line number."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = [f.strip() for f in line.split(",")]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            if len(fields) != 3:
                raise ValueError
            rows.append([float(f) for f in fields])
        except ValueError:
            if not rows and number == 1:  # a header row
                continue
            raise ValueError(f"{where}:{number}: {line.strip()!r} is not 'x,y,depth_m'") from None
    if not rows:
        raise ValueError(f"{where} has no x,y,depth_m rows")
    return np.asarray(rows)


def _read_csv(path: Path) -> np.ndarray:
    return parse_points(path.read_text(), str(path))


def _map_to_points(depth: np.ndarray, height: int, width: int, path: Path) -> np.ndarray:
    """Known pixels of a depth image as x, y, depth rows in the coordinates of a height x width photo."""
    h, w = depth.shape
    if (h, w) != (height, width) and abs(w / h - width / height) > 0.01 * (width / height):
        raise ValueError(f"{path} is {w}x{h}, another aspect ratio than the {width}x{height} image")
    known = np.isfinite(depth) & (depth > 0)
    ys, xs = np.nonzero(known)
    x = (xs + 0.5) * (width / w) - 0.5
    y = (ys + 0.5) * (height / h) - 0.5
    return np.stack([x, y, depth[known]], axis=1)


def load_known_depths(path: os.PathLike, height: int, width: int) -> np.ndarray:
    """A sparse (height, width) depth map in metres (0 = unknown) from a POINTS file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"known depths {path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return sparse_from_points(_read_csv(path), height, width)
    if suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim == 2 and arr.shape[1] == 3 and arr.shape != (height, width):
            return sparse_from_points(arr, height, width)
        if arr.ndim != 2:
            raise ValueError(f"{path} has shape {arr.shape}; expected a depth image in metres or (N, 3) x, y, depth rows")
        return sparse_from_points(_map_to_points(arr.astype(np.float64), height, width, path), height, width)
    if suffix in (".png", ".exr"):
        from .datasets.formats import read_exr, read_png16_metres

        if suffix == ".png":
            depth = read_png16_metres(path, 0.001, "a 16-bit PNG depth image in millimetres (0 = unknown)").astype(np.float64)
        else:
            depth = read_exr(path)
        return sparse_from_points(_map_to_points(depth, height, width, path), height, width)
    raise ValueError(f"known depths {path}: unknown format {suffix!r}; use .csv (x,y,depth_m), .npy, "
                     ".png (16-bit, millimetres) or .exr")


def find_known_depths(source: os.PathLike, image: os.PathLike) -> Path:
    """``source`` itself if it is a file, else ``source/<image stem>.{csv,npy,png,exr}``."""
    source = Path(source)
    if source.is_file():
        return source
    if source.is_dir():
        for suffix in POINT_SUFFIXES:
            candidate = source / (Path(image).stem + suffix)
            if candidate.is_file():
                return candidate
        raise ValueError(f"no known depths for {Path(image).name} in {source} "
                         f"(expected {Path(image).stem}{{{','.join(POINT_SUFFIXES)}}})")
    raise ValueError(f"--metric-from {source}: no such file or folder")


def metric_targets(targets: Dict[str, Path]) -> Dict[str, Path]:
    """``metric-<fmt>`` output paths beside the png16/npy/pfm outputs of one image."""
    extra = {}
    for fmt in METRIC_FORMATS:
        if fmt in targets:
            path, suffix = Path(targets[fmt]), SUFFIXES[fmt]
            extra[f"metric-{fmt}"] = path.with_name(path.name[: -len(suffix)] + "-metric" + suffix)
    return extra


def metric_sidecar(targets: Dict[str, Path]) -> Dict[str, Path]:
    """``{"metric-json": NAME-metric.json}`` beside the ``metric-*`` targets (none without them)."""
    first = next((Path(p) for k, p in targets.items() if k.startswith("metric-") and k != "metric-json"), None)
    if first is None:
        return {}
    stem = first.name[: -len(first.suffix)]
    return {"metric-json": first.with_name(stem + ".json")}


def check_metric_request(source: str, image_count: int, video_count: int, formats: List[str],
                         exports: List[str]) -> Optional[str]:
    """Why ``--metric-from`` cannot run with these inputs (``None`` when it can)."""
    if video_count:
        return "--metric-from works on images, not videos"
    if Path(source).is_file() and image_count > 1:
        return (f"--metric-from {source} is one file for {image_count} images; give a folder of files named "
                "like the images")
    if not Path(source).exists():
        return f"--metric-from {source}: no such file or folder"
    if not exports and not any(f in formats for f in METRIC_FORMATS):
        return "--metric-from writes metric depth as png16, npy or pfm (or --export ply,glb); add one to --format"
    return None


def write_depth_png_mm(path: os.PathLike, depth) -> Path:
    """Metric depth as a 16-bit PNG in millimetres (rounded; 0 = none; saturates at 65535 mm)."""
    from PIL import Image

    arr = np.squeeze(np.asarray(depth, dtype=np.float64))
    mm = np.where(np.isfinite(arr) & (arr > 0), np.round(arr * 1000.0), 0)
    with atomic_path(path) as tmp:
        Image.fromarray(np.clip(mm, 0, 65535).astype(np.uint16)).save(tmp, format="PNG")
    return Path(path)


def write_metric(targets: Dict[str, Path], depth, about: Optional[Dict[str, Any]] = None) -> None:
    """Write the ``metric-*`` entries of ``targets``: ``depth`` in metres (``(H,W)``); the
    ``metric-json`` sidecar states the units of each file written beside it and ``about`` (where the
    metres came from)."""
    writers = {"metric-png16": write_depth_png_mm, "metric-npy": write_npy, "metric-pfm": write_pfm}
    depth = depth.detach().cpu().float().numpy() if hasattr(depth, "detach") else np.asarray(depth)
    for key, path in targets.items():
        if key in writers:
            writers[key](path, depth)
    if "metric-json" in targets:
        sidecar = {"files": {Path(p).name: UNITS[k[len("metric-"):]] for k, p in targets.items() if k in writers},
                   "png16_scale_m": PNG_MM_SCALE, **(about or {})}
        with atomic_path(targets["metric-json"]) as tmp:
            tmp.write_text(json.dumps(sidecar, indent=1, sort_keys=True))


def metric_for_image(source: os.PathLike, image: os.PathLike, raw, **options) -> MetricDepth:
    """Fit the known depths for ``image`` (see ``find_known_depths``) to its raw prediction."""
    from .metric_depth import metric_depth

    raw = np.squeeze(raw.detach().cpu().float().numpy() if hasattr(raw, "detach") else np.asarray(raw))
    sparse = load_known_depths(find_known_depths(source, image), *raw.shape)
    return metric_depth(raw, sparse, **options)
