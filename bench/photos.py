"""Synthetic, natural-looking test photos (no photo files ship with the repository).

A sky gradient over a ground plane that recedes to a horizon, overlapping shapes with shading
(near ones larger and lower), texture that fades with distance, sensor noise and a slight blur:
structure at every scale, like a photo, and deterministic from a seed.
"""

from __future__ import annotations

import numpy as np


def synthetic_photo(height: int = 1080, width: int = 1920, seed: int = 0) -> np.ndarray:
    """An ``(height, width, 3)`` uint8 RGB image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = y / height, x / width
    horizon = 0.35 + 0.1 * rng.random()
    sky = np.stack([0.45 + 0.3 * v, 0.6 + 0.25 * v, 0.95 - 0.1 * v], axis=-1)
    ground_base = np.array([0.35, 0.45, 0.25]) + 0.1 * rng.standard_normal(3)
    depth = np.clip((v - horizon) / (1 - horizon), 1e-3, 1)  # 0 at the horizon, 1 at the bottom
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (u - 0.5) * 40 / (depth + 0.05))
    ground = ground_base[None, None] * (0.7 + 0.3 * depth[..., None]) * (0.85 + 0.15 * stripes[..., None])
    img = np.where((v > horizon)[..., None], ground, sky)
    for _ in range(int(rng.integers(6, 12))):  # shapes, far to near
        cy = horizon + (1 - horizon) * rng.random() * 0.9
        scale = 0.03 + 0.2 * (cy - horizon) / (1 - horizon)
        cx, color = rng.random(), np.clip(rng.random(3), 0.05, 0.95)
        r = scale * (0.5 + rng.random())
        if rng.random() < 0.5:  # a shaded ball
            d2 = ((u - cx) * width / height) ** 2 + (v - cy) ** 2
            inside = d2 < r**2
            shade = np.clip(1 - ((u - cx + r / 3) ** 2 + (v - cy + r / 3) ** 2) / (2 * r**2), 0.3, 1)
            img = np.where(inside[..., None], color[None, None] * shade[..., None], img)
        else:  # a box standing on the ground
            half_w = r * height / width
            inside = (np.abs(u - cx) < half_w) & (v < cy) & (v > cy - 1.6 * r)
            side = 0.75 + 0.25 * (u > cx)
            img = np.where(inside[..., None], color[None, None] * side[..., None], img)
    img = img + 0.02 * rng.standard_normal((height // 8 + 1, width // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:height, :width]
    img = img + 0.015 * rng.standard_normal(img.shape)
    img = (img + np.roll(img, 1, 0) + np.roll(img, 1, 1) + np.roll(img, (1, 1), (0, 1))) / 4  # slight blur
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
