"""The app's example photo: a small synthetic room (floor, walls, a sphere, a box), drawn here.

It is rendered by this code (ray casting with numpy, no photograph and no third-party content), so
it ships with the package as code and is covered by the project's licence (MIT). It has clear
depth: the floor recedes, the sphere and the box stand in front of the back wall.

>>> example_scene().size
(640, 448)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple, Union

import numpy as np

EXAMPLE_NAME = "midas-diffusion-example-room.png"

_LIGHT = np.array([-0.4, 0.8, 0.45]) / np.linalg.norm([-0.4, 0.8, 0.45])


def _sphere_hit(rays: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Distance along each unit ray (from the origin) to the sphere, inf where it misses."""
    b = rays @ center
    disc = b**2 - (center @ center - radius**2)
    t = b - np.sqrt(np.maximum(disc, 0))
    return np.where((disc > 0) & (t > 0), t, np.inf)


def _box_hit(rays: np.ndarray, low: np.ndarray, high: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Distance to an axis-aligned box (slab method) and the axis of the face that was hit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = low / rays, high / rays
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_in, t_out = near.max(axis=1), far.min(axis=1)
    hit = (t_in < t_out) & (t_in > 0)
    return np.where(hit, t_in, np.inf), near.argmax(axis=1)


def _plane_hit(rays: np.ndarray, axis: int, value: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = value / rays[:, axis]
    return np.where(t > 0, t, np.inf)


def example_scene(width: int = 640, height: int = 448) -> "PIL.Image.Image":  # noqa: F821
    """The example room as an RGB ``PIL.Image`` of ``width`` x ``height`` (deterministic)."""
    from PIL import Image

    if width < 16 or height < 16:
        raise ValueError(f"the example needs at least 16x16 pixels, got width={width}, height={height}")
    # camera at the origin looking down -z, slightly downward, 60 degree horizontal field of view
    focal = 0.5 * width / np.tan(np.radians(30))
    xs = (np.arange(width) + 0.5 - width / 2) / focal
    ys = (height / 2 - np.arange(height) - 0.5) / focal - 0.18
    gx, gy = np.meshgrid(xs, ys)
    rays = np.stack([gx, gy, -np.ones_like(gx)], axis=-1).reshape(-1, 3)
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)

    sphere_c, sphere_r = np.array([-0.75, -0.35, -3.6]), 0.65
    box_lo, box_hi = np.array([0.3, -1.0, -4.8]), np.array([1.4, -0.2, -3.7])
    hits = np.stack([
        _plane_hit(rays, 1, -1.0),           # 0 floor
        _plane_hit(rays, 2, -7.0),           # 1 back wall
        _plane_hit(rays, 0, -2.6),           # 2 left wall
        _plane_hit(rays, 0, 2.6),            # 3 right wall
        _sphere_hit(rays, sphere_c, sphere_r),  # 4 sphere
        _box_hit(rays, box_lo, box_hi)[0],   # 5 box
    ])
    which = hits.argmin(axis=0)
    t = hits.min(axis=0)
    points = rays * np.where(np.isfinite(t), t, 7.0)[:, None]

    normals = np.zeros_like(points)
    normals[which == 0] = (0, 1, 0)
    normals[which == 1] = (0, 0, 1)
    normals[which == 2] = (1, 0, 0)
    normals[which == 3] = (-1, 0, 0)
    on_sphere = which == 4
    normals[on_sphere] = (points[on_sphere] - sphere_c) / sphere_r
    on_box = which == 5
    face = _box_hit(rays, box_lo, box_hi)[1][on_box]
    box_n = np.zeros((on_box.sum(), 3))
    box_n[np.arange(len(face)), face] = -np.sign(rays[on_box][np.arange(len(face)), face])
    normals[on_box] = box_n

    albedo = np.zeros_like(points)
    checker = (np.floor(points[:, 0] * 1.5) + np.floor(points[:, 2] * 1.5)) % 2
    albedo[which == 0] = np.where(checker[which == 0, None] > 0, (0.78, 0.70, 0.58), (0.52, 0.42, 0.32))
    albedo[which == 1] = (0.86, 0.82, 0.74)
    albedo[which == 2] = (0.70, 0.78, 0.82)
    albedo[which == 3] = (0.82, 0.74, 0.70)
    albedo[on_sphere] = (0.20, 0.42, 0.80)
    albedo[on_box] = (0.82, 0.30, 0.22)

    # Lambert shading with shadows of the sphere and the box cast towards the light
    lit = np.clip(normals @ _LIGHT, 0, 1)
    origin = points + normals * 1e-3
    to_sphere = sphere_c - origin
    b = to_sphere @ _LIGHT
    shadow = (b > 0) & ((to_sphere**2).sum(axis=1) - b**2 < sphere_r**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (box_lo - origin) / _LIGHT, (box_hi - origin) / _LIGHT
    t_in = np.minimum(t1, t2).max(axis=1)
    t_out = np.maximum(t1, t2).min(axis=1)
    shadow |= (t_in < t_out) & (t_out > 0)
    light = 0.35 + 0.65 * lit * np.where(shadow, 0.25, 1.0)
    fog = np.exp(-0.04 * np.linalg.norm(points, axis=1))[:, None]
    rgb = albedo * light[:, None] * fog + (1 - fog) * 0.9
    image = (np.clip(rgb, 0, 1).reshape(height, width, 3) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(image)


def save_example(folder: Union[str, os.PathLike]) -> Path:
    """Write the example PNG into ``folder`` once; returns its path."""
    path = Path(folder) / EXAMPLE_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        example_scene().save(path, format="PNG")
    return path
