"""The weighted least-squares scale and shift between two maps.

MiDaS predicts disparity up to an unknown scale and shift. Evaluation aligns a prediction to the
ground truth, metric depth aligns it to a few known depths, tiling aligns each tile to a whole-image
pass; all three solve, in closed form (float64)::

    (s, t) = argmin  sum_i w_i (s * pred_i + t - target_i)^2
    s = cov_w(pred, target) / var_w(pred),    t = mean_w(target) - s * mean_w(pred)

One degeneracy rule: the fit is undetermined when the weights sum to zero or the weighted variance
of ``pred`` is at most ``1e-12`` times its weighted mean square (``pred`` constant up to rounding);
``fit_scale_shift`` then raises ``DegenerateFitError`` and each caller says what that means for it.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["DegenerateFitError", "fit_scale_shift"]

RELATIVE_VARIANCE_FLOOR = 1e-12


class DegenerateFitError(ValueError):
    """``pred`` is constant over the weighted points (or no point has weight): the scale is undetermined."""


def fit_scale_shift(pred, target, weight=None) -> Tuple[float, float]:
    """``(s, t)`` minimizing ``sum(weight * (s * pred + t - target)^2)``.

    ``pred``, ``target`` and ``weight`` (default 1; non-negative; a boolean mask works) are arrays of
    one size (NumPy, or CPU tensors), flattened. Values must be finite where the weight is not zero.
    Raises ``DegenerateFitError`` (a ``ValueError``) by the rule in the module docstring."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    q = np.asarray(target, dtype=np.float64).reshape(-1)
    w = np.ones_like(p) if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    if not p.size == q.size == w.size:
        raise ValueError(f"pred, target and weight must have one size, got {p.size}, {q.size}, {w.size}")
    if weight is not None:
        used = w != 0
        p, q, w = p[used], q[used], w[used]
    sw = w.sum()
    if not sw > 0:
        raise DegenerateFitError("no point has weight: scale and shift are undetermined")
    p_mean, q_mean = (w * p).sum() / sw, (w * q).sum() / sw
    var = (w * (p - p_mean) ** 2).sum() / sw
    if not var > RELATIVE_VARIANCE_FLOOR * max((w * p * p).sum() / sw, 1e-300):
        raise DegenerateFitError("pred is constant over the weighted points: scale and shift are undetermined")
    scale = (w * (p - p_mean) * (q - q_mean)).sum() / sw / var
    return float(scale), float(q_mean - scale * p_mean)
