"""Local evaluation datasets: ``open_dataset(name, root)`` -> a reader with ``samples()`` and ``load()``.

Layouts and depth encodings are described in ``readers`` and ``formats``; nothing is downloaded.
"""

from __future__ import annotations

import os
from typing import Optional

from .formats import LayoutError
from .readers import (
    DIW,
    ETH3D,
    KITTI,
    TUM,
    DepthDataset,
    Folder,
    NYUExported,
    NYUMat,
    Sample,
    SampleRef,
    Sintel,
    open_nyu,
)

DATASETS = ("diw", "eth3d", "sintel", "tum", "kitti", "nyu", "folder")
"""Dataset names, in the column order of the MiDaS v3.1 table (``folder``: your own RGB-D data)."""


def open_dataset(name: str, root: os.PathLike, *, depth_scale: Optional[float] = None,
                 render_pass: str = "final") -> DepthDataset:
    """The reader for dataset ``name`` at ``root``. ``depth_scale`` (metres per stored unit) is for
    ``folder``; ``render_pass`` (``final``/``clean``) for ``sintel``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if depth_scale is not None and name != "folder":
        raise ValueError(f"depth_scale applies to the folder layout only; {name} has a fixed depth encoding")
    if name == "nyu":
        return open_nyu(root)
    if name == "folder":
        return Folder(root, depth_scale=depth_scale)
    if name == "sintel":
        return Sintel(root, render_pass=render_pass)
    return {"diw": DIW, "eth3d": ETH3D, "tum": TUM, "kitti": KITTI}[name](root)


__all__ = [
    "DATASETS",
    "DIW",
    "ETH3D",
    "KITTI",
    "TUM",
    "DepthDataset",
    "Folder",
    "LayoutError",
    "NYUExported",
    "NYUMat",
    "Sample",
    "SampleRef",
    "Sintel",
    "open_dataset",
]
