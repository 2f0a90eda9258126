"""Metric depth from relative disparity and a few known depths.

MiDaS disparity ``p`` is inverse depth up to an unknown scale and shift: for each image there are
``scale, shift`` with ``1/z = scale * p + shift`` (``z`` in metres). Two known depths fix them; more
points average out noise. ``metric_depth`` fits them by least squares in inverse depth over the
known points ``i``::

    (scale, shift) = argmin sum_i (scale * p_i + shift - 1/z_i)^2

and returns ``depth = 1 / max(scale * p + shift, 1/max_depth)`` for every pixel (the aligned
disparity of the farthest surfaces can reach zero or below; those pixels get ``max_depth``).

A point's error is its relative inverse-depth residual ``r_i = |(scale * p_i + shift) * z_i - 1|``
(about its relative depth error). ``robust=True`` (RANSAC) tries the line through every pair of
points (up to ``max_trials`` pairs, drawn with a fixed seed), keeps the one that most points
agree with (``r_i <= inlier_threshold``), and refits on those inliers, so a few wrong points do
not ruin the fit; ``robust="huber"`` reweights instead (iteratively reweighted least squares
with the Huber weight, ``k = inlier_threshold``); ``robust=False`` uses every point as given.

Too few points, points that all have the same disparity, non-positive depths or a fit in which
depth grows with disparity raise ``ValueError``; a fit whose median inlier residual exceeds
``warn_residual``, that keeps fewer than half the points, or that rests on two points while
rejecting others warns (``PoorFitWarning``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

from ..inference.alignment import DegenerateFitError, fit_scale_shift
from .protocol import as_map, squeeze_leading

__all__ = ["MetricDepth", "PoorFitWarning", "fit_inverse_depth", "metric_depth", "sparse_from_points"]


class PoorFitWarning(UserWarning):
    """The known depths fit the disparity map badly: check the points, or treat the result with care."""


@dataclass(frozen=True, eq=False)
class MetricDepth:
    """``depth``: (H,W) float32 metres. ``scale``/``shift``: ``1/depth = scale * disparity + shift``.
    ``inliers``: one flag per known point (row-major order of the sparse map) that the fit kept.
    ``residual``: median relative inverse-depth error of the inliers (0.01 = about 1 %).
    ``max_depth``: the cap applied to the farthest pixels."""

    depth: np.ndarray
    scale: float
    shift: float
    inliers: np.ndarray
    residual: float
    max_depth: float

    @property
    def points(self) -> int:
        return int(self.inliers.size)


def sparse_from_points(points, height: int, width: int) -> np.ndarray:
    """A sparse depth map (0 = unknown) from ``(N, 3)`` rows ``x, y, depth`` (pixel column, row,
    metres; coordinates rounded to the nearest pixel; points on one pixel are averaged)."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"points must be (N, 3) rows of x, y, depth; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("points contain NaN or infinite values")
    x, y = np.rint(arr[:, 0]).astype(np.int64), np.rint(arr[:, 1]).astype(np.int64)
    outside = (x < 0) | (y < 0) | (x >= width) | (y >= height)
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"point {i} (x={arr[i, 0]:g}, y={arr[i, 1]:g}) lies outside the {width}x{height} image")
    if (arr[:, 2] <= 0).any():
        i = int(np.argmax(arr[:, 2] <= 0))
        raise ValueError(f"point {i} has depth {arr[i, 2]:g}; depths must be positive (metres)")
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    np.add.at(total, (y, x), arr[:, 2])
    np.add.at(count, (y, x), 1)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _residuals(scale, shift, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Relative inverse-depth residuals |(scale*x + shift) * z - 1| (broadcasts over candidate lines)."""
    return np.abs((np.multiply.outer(scale, x) + np.asarray(shift)[..., None]) * z - 1.0)


def _least_squares(x: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None) -> Tuple[float, float]:
    try:
        return fit_scale_shift(x, y, weights)
    except DegenerateFitError:
        raise ValueError("the known points all have the same disparity: scale and shift are undetermined "
                         "(measure points at different distances)") from None


def _ransac(x: np.ndarray, y: np.ndarray, z: np.ndarray, threshold: float, max_trials: int,
            seed: int) -> np.ndarray:
    """Inlier flags of the best line through two points (most inliers, then least clipped error)."""
    n = len(x)
    i, j = np.triu_indices(n, k=1)
    if len(i) > max_trials:
        pick = np.random.default_rng(seed).choice(len(i), size=max_trials, replace=False)
        i, j = i[pick], j[pick]
    keep = x[i] != x[j]
    i, j = i[keep], j[keep]
    scale = (y[i] - y[j]) / (x[i] - x[j])
    keep = scale > 0  # inverse depth grows with disparity
    i, j, scale = i[keep], j[keep], scale[keep]
    if len(scale) == 0:
        raise ValueError("no two known points give a line on which depth falls as disparity grows: "
                         "the points do not match this depth map")
    shift = y[i] - scale * x[i]
    best_key, best = None, None
    chunk = max(1, 4_000_000 // n)
    for start in range(0, len(scale), chunk):
        r = _residuals(scale[start:start + chunk], shift[start:start + chunk], x, z)
        inlier = r <= threshold
        count = inlier.sum(axis=1)
        cost = np.minimum(r, threshold).sum(axis=1)
        k = int(np.lexsort((cost, -count))[0])
        key = (-int(count[k]), float(cost[k]))
        if best_key is None or key < best_key:
            best_key, best = key, inlier[k]
    return best


def fit_inverse_depth(disparity_at_points, depth_at_points, *, robust: Union[bool, str] = True,
                      inlier_threshold: float = 0.05, max_trials: int = 2000, seed: int = 0
                      ) -> Tuple[float, float, np.ndarray]:
    """``(scale, shift, inliers)`` with ``1/depth = scale * disparity + shift`` at the given points."""
    x = np.asarray(disparity_at_points, dtype=np.float64).ravel()
    z = np.asarray(depth_at_points, dtype=np.float64).ravel()
    if robust not in (True, False, "ransac", "huber"):
        raise ValueError(f"robust must be True/'ransac', 'huber' or False, got {robust!r}")
    if not inlier_threshold > 0:
        raise ValueError(f"inlier_threshold must be positive, got {inlier_threshold}")
    y = 1.0 / z
    if robust in (True, "ransac"):
        inliers = _ransac(x, y, z, inlier_threshold, max_trials, seed)
        for _ in range(3):  # refit on the inliers, then let the refit decide who is in
            if inliers.sum() < 2:
                break
            scale, shift = _least_squares(x[inliers], y[inliers])
            again = _residuals(scale, shift, x, z) <= inlier_threshold
            if again.sum() < 2 or np.array_equal(again, inliers):
                break
            inliers = again
        scale, shift = _least_squares(x[inliers], y[inliers])
    elif robust == "huber":
        scale, shift = _least_squares(x, y)
        for _ in range(50):
            r = _residuals(scale, shift, x, z)
            weights = np.where(r <= inlier_threshold, 1.0, inlier_threshold / np.maximum(r, 1e-300))
            new = _least_squares(x, y, weights)
            if np.allclose(new, (scale, shift), rtol=1e-10, atol=0):
                break
            scale, shift = new
        inliers = _residuals(scale, shift, x, z) <= inlier_threshold
    else:
        scale, shift = _least_squares(x, y)
        inliers = np.ones(len(x), dtype=bool)
    if not scale > 0:
        raise ValueError(f"the fit has scale {scale:.3g} <= 0 (depth would grow with disparity): the known "
                         "depths do not match this depth map (another image? x and y swapped?)")
    return scale, shift, inliers


def metric_depth(disparity, sparse_depth, sparse_mask=None, *, robust: Union[bool, str] = True,
                 min_points: int = 3, inlier_threshold: float = 0.05, max_depth: Optional[float] = None,
                 warn_residual: float = 0.1, max_trials: int = 2000, seed: int = 0) -> MetricDepth:
    """Dense metric depth from ``disparity`` (H,W; MiDaS ``raw`` or normalized output: any affine
    version of inverse depth) and known depths ``sparse_depth`` (H,W metres; 0 or NaN = unknown,
    or the pixels of ``sparse_mask``). See the module docstring for the fit.

    ``max_depth`` caps the farthest pixels (default: 10x the largest known depth)."""
    disparity = as_map(disparity, "disparity")
    sparse = as_map(sparse_depth, "sparse_depth")
    if sparse.shape != disparity.shape:
        raise ValueError(f"sparse_depth is {sparse.shape[1]}x{sparse.shape[0]} but disparity is "
                         f"{disparity.shape[1]}x{disparity.shape[0]}")
    if sparse_mask is None:
        mask = np.isfinite(sparse) & (sparse != 0)
    else:
        if hasattr(sparse_mask, "detach"):
            sparse_mask = sparse_mask.detach().cpu().numpy()
        mask = squeeze_leading(np.asarray(sparse_mask)).astype(bool)
        if mask.shape != sparse.shape:
            raise ValueError(f"sparse_mask is {mask.shape} but sparse_depth is {sparse.shape}")
    if min_points < 2:
        raise ValueError(f"min_points must be at least 2 (two unknowns), got {min_points}")
    n = int(mask.sum())
    if n < min_points:
        raise ValueError(f"{n} known depth(s) given; at least min_points={min_points} are needed")
    z = sparse[mask]
    if not (np.isfinite(z).all() and (z > 0).all()):
        raise ValueError("sparse_depth must be finite and positive (metres) at every known point")
    x = disparity[mask]
    if not np.isfinite(x).all():
        raise ValueError("disparity is NaN or infinite at a known point")
    if not np.isfinite(disparity).all():
        raise ValueError("disparity contains NaN or infinite values")
    scale, shift, inliers = fit_inverse_depth(x, z, robust=robust, inlier_threshold=inlier_threshold,
                                              max_trials=max_trials, seed=seed)
    residuals = _residuals(scale, shift, x, z)
    residual = float(np.median(residuals[inliers])) if inliers.any() else float("inf")
    if max_depth is None:
        max_depth = 10.0 * float(z.max())
    elif not max_depth > 0:
        raise ValueError(f"max_depth must be positive (metres), got {max_depth}")
    kept = int(inliers.sum())
    # poor: a large error, most points rejected, or only two agreeing points (nothing checks them)
    if residual > warn_residual or kept < 0.5 * n or (kept < 3 and kept < n):
        warnings.warn(
            f"poor metric fit: {kept} of {n} known points agree within {inlier_threshold:.0%}, median error of those "
            f"{residual:.1%} (check the points' positions and units; depth is in metres)",
            PoorFitWarning,
            stacklevel=2,
        )
    depth = 1.0 / np.maximum(scale * disparity + shift, 1.0 / max_depth)
    return MetricDepth(depth=depth.astype(np.float32), scale=scale, shift=shift, inliers=inliers,
                       residual=residual, max_depth=float(max_depth))
