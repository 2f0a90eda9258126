"""High-resolution depth by overlapping tiles.

The image is cut into overlapping tiles of the model's own size; each tile is predicted at full
detail, aligned by least-squares scale and shift to a low-resolution prediction of the whole image
(which fixes the tile's unknown affine ambiguity and keeps the global layout), and the aligned tiles
are blended with smooth weights that fall to zero at inner tile borders, so no seam shows.

    out = estimate_tiled(est, "big.jpg", tile_overlap=0.25)     # DepthOutput at the image's size
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..io.images import ImageLike, to_compact_tensors
from .alignment import DegenerateFitError, fit_scale_shift
from .outputs import DepthOutput
from .transforms import normalize_disparity


@dataclass(frozen=True)
class TileGrid:
    """Tile origins along each axis and the tile size, in image pixels."""

    ys: Tuple[int, ...]
    xs: Tuple[int, ...]
    tile: Tuple[int, int]

    def boxes(self) -> List[Tuple[int, int, int, int]]:
        """(top, left, bottom, right) of each tile, row by row."""
        th, tw = self.tile
        return [(y, x, y + th, x + tw) for y in self.ys for x in self.xs]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)


def _origins(length: int, tile: int, overlap: int) -> Tuple[int, ...]:
    if length <= tile:
        return (0,)
    count = math.ceil((length - overlap) / (tile - overlap))
    count = max(count, 2)
    step = (length - tile) / (count - 1)
    return tuple(int(round(i * step)) for i in range(count))


def tile_grid(height: int, width: int, tile: Tuple[int, int], tile_overlap: float = 0.25) -> TileGrid:
    """Evenly spread tiles of size ``tile`` covering the image, neighbours overlapping by at least
    ``tile_overlap`` of a tile (a fraction in [0, 0.9])."""
    if not 0 <= tile_overlap <= 0.9:
        raise ValueError(f"tile_overlap must be a fraction in [0, 0.9], got {tile_overlap}")
    th, tw = min(tile[0], height), min(tile[1], width)
    ys = _origins(height, th, min(int(round(tile_overlap * th)), th - 1))
    xs = _origins(width, tw, min(int(round(tile_overlap * tw)), tw - 1))
    return TileGrid(ys=ys, xs=xs, tile=(th, tw))


def _ramp(length: int, fade_start: int, fade_end: int, fade: int) -> torch.Tensor:
    """1-D weight: a raised-cosine rise over ``fade`` pixels at a start that borders another tile,
    and a fall at such an end; flat 1 elsewhere (image borders keep full weight)."""
    w = torch.ones(length, dtype=torch.float64)
    if fade <= 0:
        return w
    t = (torch.arange(fade, dtype=torch.float64) + 0.5) / fade
    rise = 0.5 - 0.5 * torch.cos(math.pi * t)  # smooth, > 0
    if fade_start:
        w[:fade] = rise
    if fade_end:
        w[length - fade :] = rise.flip(0)
    return w


def blend_weights(grid: TileGrid, tile_overlap: float) -> List[torch.Tensor]:
    """One ``(th, tw)`` weight map per tile: smooth falls at edges shared with neighbours."""
    th, tw = grid.tile
    fade_h = max(1, int(round(tile_overlap * th))) if len(grid.ys) > 1 else 0
    fade_w = max(1, int(round(tile_overlap * tw))) if len(grid.xs) > 1 else 0
    out = []
    for i, _ in enumerate(grid.ys):
        wy = _ramp(th, i > 0, i < len(grid.ys) - 1, fade_h)
        for j, _ in enumerate(grid.xs):
            wx = _ramp(tw, j > 0, j < len(grid.xs) - 1, fade_w)
            out.append(wy[:, None] * wx[None, :])
    return out


def _align_tile(pred: torch.Tensor, coarse: torch.Tensor) -> Tuple[float, float]:
    """``(s, t)`` taking a tile's prediction to the whole-image pass over their finite pixels; a flat
    tile (or one with no finite pixel) gets scale 0 and the pass's mean level there."""
    p, q = pred.numpy(), coarse.numpy()
    finite = np.isfinite(p) & np.isfinite(q)
    try:
        return fit_scale_shift(p, q, finite)
    except DegenerateFitError:
        return 0.0, float(q[finite].mean()) if finite.any() else 0.0


@torch.inference_mode()
def estimate_tiled(
    estimator,
    image: ImageLike,
    *,
    tile_overlap: float = 0.25,
    tile_size: Optional[Tuple[int, int]] = None,
    batch_size: int = 4,
    percentile: Optional[Tuple[float, float]] = None,
    gamma: float = 1.0,
    invert: bool = False,
) -> DepthOutput:
    """Depth of one large image from overlapping tiles, aligned to a whole-image pass.

    ``estimator`` is a ``DepthEstimator`` (anything with ``preprocess.net_size`` and
    ``__call__(images, batch_size=...) -> DepthOutput`` works; tiles of one image all have one size).
    ``tile_size`` defaults to the model's network size, in image pixels; an image no larger than one
    tile gets the single pass. The tiles are cut from the compact image (uint8 stays uint8).
    ``raw`` of the result is in the units of the whole-image pass; ``disparity`` is normalized as
    ``DepthEstimator.__call__`` does; both ``(1,1,H,W)`` float32 on the CPU.
    """
    compact = to_compact_tensors(image, getattr(estimator, "max_pixels", None))
    if len(compact) != 1:
        raise ValueError(f"estimate_tiled takes one image, got {len(compact)}")
    img = compact[0]
    height, width = img.shape[-2:]
    tile = tuple(tile_size) if tile_size is not None else tuple(estimator.preprocess.net_size)
    if len(tile) != 2 or min(tile) < 1:
        raise ValueError(f"tile_size must be (height, width) in pixels, got {tile_size}")
    coarse = estimator(img, batch_size=1).raw[0, 0].double().cpu()  # (H, W)
    grid = tile_grid(height, width, tile, tile_overlap)
    if len(grid) == 1:
        raw = coarse
    else:
        boxes = grid.boxes()
        crops = [img[:, t:b, l:r] for t, l, b, r in boxes]
        preds: List[torch.Tensor] = []
        for start in range(0, len(crops), batch_size):
            raw_tiles = estimator(crops[start : start + batch_size], batch_size=batch_size).raw
            preds.extend(p[0].double().cpu() for p in raw_tiles)
        weights = blend_weights(grid, tile_overlap)
        acc = torch.zeros(height, width, dtype=torch.float64)
        norm = torch.zeros(height, width, dtype=torch.float64)
        for (t, l, b, r), pred, w in zip(boxes, preds, weights):
            s, sh = _align_tile(pred, coarse[t:b, l:r])
            acc[t:b, l:r] += w * (s * pred + sh)
            norm[t:b, l:r] += w
        raw = acc / norm.clamp_min(1e-12)
    raw = raw.float()[None, None]
    disparity = normalize_disparity(raw, percentile, gamma, invert)
    name = getattr(estimator, "model_name", type(estimator).__name__)
    settings = {
        "model_name": name,
        "percentile": percentile,
        "gamma": gamma,
        "invert": invert,
        "tiles": (len(grid.ys), len(grid.xs)),
        "tile_size": grid.tile,
        "tile_overlap": tile_overlap,
    }
    return DepthOutput(disparity=disparity, raw=raw, model_name=name, settings=settings)


def count_tiles(height: int, width: int, tile: Sequence[int], tile_overlap: float = 0.25) -> int:
    return len(tile_grid(height, width, (int(tile[0]), int(tile[1])), tile_overlap))
