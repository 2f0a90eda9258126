"""RGBD geometry and export: disparity -> metric-like depth -> points / mesh / files.

MiDaS disparity is relative inverse depth; to place it in 3D the user picks the ``near`` and
``far`` distances that disparity 1 and 0 stand for, and the camera's field of view (along the
longer image side). Inverse depth is interpolated linearly between them, so planes stay planes.

Coordinates follow glTF: +Y up, the camera at the origin looking down -Z.

* ``export_ply``: a colored point cloud (binary PLY).
* ``export_glb``: a colored triangle mesh (binary glTF); triangles that would bridge a depth jump
  larger than ``max_depth_jump`` (relative) are cut. If every triangle is cut, ``ValueError`` is
  raised and nothing is written (raise ``max_depth_jump`` or smooth the map).
* ``export_side_by_side``: RGB | depth as one 8-bit image for viewing.
* ``panorama=True`` unprojects an equirectangular image onto a sphere instead of a pinhole camera.
* ``depth=`` (metres, e.g. from ``metric_depth``) replaces ``disparity``/``near``/``far``: the
  exported geometry is then in metres.

Files are written atomically (temporary name, then rename). PLY/GLB need ``trimesh``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Tuple

import numpy as np

from .writers import atomic_path, write_png16


def as_arrays(rgb, disparity) -> Tuple[np.ndarray, np.ndarray]:
    """Validate and convert: rgb (H,W,3) float in [0,1] (uint8 accepted), disparity (H,W) in [0,1]."""
    rgb = rgb.detach().cpu().numpy() if hasattr(rgb, "detach") else np.asarray(rgb)
    disparity = disparity.detach().cpu().numpy() if hasattr(disparity, "detach") else np.asarray(disparity)
    disparity = np.squeeze(disparity).astype(np.float32)
    if rgb.ndim == 3 and rgb.shape[0] == 3 and rgb.shape[-1] != 3:
        rgb = np.moveaxis(rgb, 0, -1)
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / 255
    rgb = rgb.astype(np.float32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be (H,W,3), got {rgb.shape}")
    if disparity.ndim != 2:
        raise ValueError(f"disparity must be (H,W), got {disparity.shape}")
    if rgb.shape[:2] != disparity.shape:
        raise ValueError(f"rgb is {rgb.shape[0]}x{rgb.shape[1]} but disparity is {disparity.shape[0]}x{disparity.shape[1]}")
    if not np.isfinite(disparity).all():
        raise ValueError("disparity contains NaN or infinite values")
    if disparity.min() < -1e-6 or disparity.max() > 1 + 1e-6:
        raise ValueError(f"disparity must lie in [0, 1], found [{disparity.min():.3g}, {disparity.max():.3g}]")
    return np.clip(rgb, 0, 1), np.clip(disparity, 0, 1)


def as_depth_arrays(rgb, depth) -> Tuple[np.ndarray, np.ndarray]:
    """Like ``as_arrays`` for metric depth: (H,W) distances, finite and positive (metres)."""
    depth = depth.detach().cpu().numpy() if hasattr(depth, "detach") else np.asarray(depth)
    depth = np.squeeze(depth).astype(np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H,W), got {depth.shape}")
    if not np.isfinite(depth).all() or depth.min() <= 0:
        raise ValueError("depth must be finite and positive (metres) at every pixel")
    rgb, _ = as_arrays(rgb, np.zeros(depth.shape, np.float32))
    return rgb, depth


def disparity_to_depth(disparity: np.ndarray, near: float = 1.0, far: float = 10.0) -> np.ndarray:
    """Distance for each disparity: 1 -> ``near``, 0 -> ``far``, linear in inverse depth."""
    if not 0 < near < far:
        raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
    inverse = disparity / near + (1 - disparity) / far
    return (1.0 / inverse).astype(np.float32)


def focal_length(height: int, width: int, fov_deg: float) -> float:
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    return 0.5 * max(height, width) / math.tan(math.radians(fov_deg) / 2)


def unproject(depth: np.ndarray, fov_deg: float = 60.0) -> np.ndarray:
    """Pinhole camera: (H,W) distances along the view axis -> (H,W,3) points."""
    h, w = depth.shape
    f = focal_length(h, w, fov_deg)
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    x = (u - (w - 1) / 2) / f * depth
    y = -(v - (h - 1) / 2) / f * depth
    return np.stack([x, y, -depth], axis=-1)


def unproject_equirectangular(depth: np.ndarray) -> np.ndarray:
    """Equirectangular panorama: (H,W) distances along each pixel's ray -> (H,W,3) points."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    lon = (u + 0.5) / w * 2 * np.pi - np.pi
    lat = np.pi / 2 - (v + 0.5) / h * np.pi
    direction = np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), -np.cos(lat) * np.cos(lon)], axis=-1)
    return direction * depth[..., None]


def grid_faces(depth: np.ndarray, max_depth_jump: float = 0.1) -> np.ndarray:
    """Two triangles per pixel quad, without those spanning a relative depth jump > ``max_depth_jump``."""
    h, w = depth.shape
    index = np.arange(h * w).reshape(h, w)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    z = depth.ravel()[faces]
    jump = (z.max(axis=1) - z.min(axis=1)) / z.min(axis=1)
    return faces[jump <= max_depth_jump].astype(np.int64)


def rgbd_points(rgb, disparity, fov_deg=60.0, near=1.0, far=10.0, panorama=False, depth=None):
    if depth is not None:
        rgb, depth = as_depth_arrays(rgb, depth)
    else:
        rgb, disparity = as_arrays(rgb, disparity)
        depth = disparity_to_depth(disparity, near, far)
    points = unproject_equirectangular(depth) if panorama else unproject(depth, fov_deg)
    return points, rgb, depth


def _colors(rgb: np.ndarray) -> np.ndarray:
    rgba = np.concatenate([rgb.reshape(-1, 3), np.ones((rgb.shape[0] * rgb.shape[1], 1), np.float32)], axis=1)
    return (rgba * 255 + 0.5).astype(np.uint8)


def export_ply(path: os.PathLike, rgb, disparity, fov_deg: float = 60.0, near: float = 1.0, far: float = 10.0,
               panorama: bool = False, depth=None) -> Path:
    """A colored point cloud, one vertex per pixel (binary PLY); ``depth=`` metres instead of disparity."""
    import trimesh

    points, rgb, _ = rgbd_points(rgb, disparity, fov_deg, near, far, panorama, depth)
    cloud = trimesh.PointCloud(points.reshape(-1, 3), colors=_colors(rgb))
    with atomic_path(path) as tmp:
        cloud.export(str(tmp), file_type="ply")
    return Path(path)


def export_glb(path: os.PathLike, rgb, disparity, fov_deg: float = 60.0, near: float = 1.0, far: float = 10.0,
               max_depth_jump: float = 0.1, panorama: bool = False, depth=None) -> Path:
    """A colored mesh, one vertex per pixel; no triangles across depth jumps (binary glTF);
    ``depth=`` metres instead of disparity."""
    import trimesh

    points, rgb, depth = rgbd_points(rgb, disparity, fov_deg, near, far, panorama, depth)
    faces = grid_faces(depth, max_depth_jump)
    if len(faces) == 0:
        raise ValueError(
            f"every triangle spans a depth jump larger than max_depth_jump={max_depth_jump}: the mesh would be "
            "empty, nothing was written (raise max_depth_jump)"
        )
    mesh = trimesh.Trimesh(vertices=points.reshape(-1, 3), faces=faces, vertex_colors=_colors(rgb), process=False)
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type="glb")
    return Path(path)


def export_side_by_side(path: os.PathLike, rgb, disparity) -> Path:
    """RGB | disparity (gray, near = white) as one 8-bit PNG."""
    from PIL import Image

    rgb, disparity = as_arrays(rgb, disparity)
    gray = np.repeat(disparity[..., None], 3, axis=2)
    both = (np.concatenate([rgb, gray], axis=1) * 255 + 0.5).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(both).save(tmp, format="PNG")
    return Path(path)


def export_depth_png16(path: os.PathLike, disparity) -> Path:
    return write_png16(path, disparity)


EXPORTERS = {"ply": export_ply, "glb": export_glb}
EXPORT_FORMATS = tuple(EXPORTERS)  # the one list of 3D export formats (CLI, app, nodes)
