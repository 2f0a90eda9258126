"""Zero-shot evaluation the MiDaS way: align in disparity space, cap, then measure.

MiDaS predicts relative inverse depth (``disparity``), correct only up to an unknown scale and
shift. To compare it with metric ground truth ``z`` (metres) on the valid pixels ``M`` of one
sample (``n = |M|``), the MiDaS protocol:

1. **aligns** the prediction ``p`` to the ground-truth disparity ``d = 1/z`` by least squares,
   in closed form (``align_scale_shift``)::

       (s, t) = argmin  sum_M (s*p + t - d)^2
       s = sum_M (p - mean p)(d - mean d) / sum_M (p - mean p)^2,    t = mean d - s * mean p

2. **caps** the depth: ``z_hat = 1 / max(s*p + t, 1/cap)``. A far (or negative, after the
   shift) aligned disparity becomes the dataset's maximum depth ``cap``, so no pixel is
   infinitely far;

3. **measures** ``z_hat`` against ``z`` over ``M``:

   * ``absrel``      = (1/n) sum |z_hat - z| / z
   * ``delta_bad``   = (1/n) #{ max(z_hat/z, z/z_hat) > 1.25 }    (the paper's "delta > 1.25",
     lower is better)
   * ``delta_accuracy`` = (1/n) #{ max(z_hat/z, z/z_hat) < 1.25^k }, k = 1, 2, 3 (the
     complementary delta1/delta2/delta3 other papers report, higher is better)
   * ``rmse``        = sqrt((1/n) sum (z_hat - z)^2)
   * ``whdr`` (DIW, ordinal pairs of points A, B a person labelled "A is farther" / "A is
     closer"): the weighted share of pairs whose predicted order disagrees,
     sum_i w_i [order_i(prediction) != order_i(human)] / sum_i w_i. Disparity is inverse depth:
     A is predicted farther when ``p_A < p_B``; a tie counts as a disagreement.

A **metric** model (its spec predicts metres) is scored without step 1: its metres ``m`` are
compared directly, after the same cap, ``z_hat = min(max(m, min_depth), cap)``. The records say
which (``"alignment": "scale_shift"`` or ``"none"``; WHDR compares orders only, never aligned).

Which metric a dataset reports, its depth cap and its valid depth range are a ``Protocol``;
``PROTOCOLS`` holds the defaults per dataset (sources in the README, "Evaluation and metric
depth"). Every function takes numpy arrays or torch tensors and computes in float64 numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..inference.alignment import DegenerateFitError, fit_scale_shift

METRICS = ("absrel", "delta_bad", "whdr")
"""Metrics a protocol can report (lower is better for all three)."""

METRIC_LABELS = {"absrel": "AbsRel", "delta_bad": "δ>1.25 %", "whdr": "WHDR"}


@dataclass(frozen=True)
class Protocol:
    """How one dataset is scored.

    ``metric``: ``absrel``, ``delta_bad`` or ``whdr``. ``depth_cap``: predicted depths beyond it
    (metres) are capped to it; ``None`` caps at each sample's largest valid ground-truth depth.
    Ground truth counts as valid in ``(min_depth, max_depth]`` (``max_depth=None``: no upper
    limit). ``threshold``: the ratio for ``delta_bad``.
    """

    name: str
    metric: str
    depth_cap: Optional[float] = None
    min_depth: float = 1e-3
    max_depth: Optional[float] = None
    threshold: float = 1.25

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.depth_cap is not None and not self.depth_cap > 0:
            raise ValueError(f"depth_cap must be positive (metres), got {self.depth_cap}")
        if not self.min_depth >= 0:
            raise ValueError(f"min_depth must be >= 0, got {self.min_depth}")
        if self.max_depth is not None and not self.max_depth > self.min_depth:
            raise ValueError(f"max_depth must exceed min_depth={self.min_depth}, got {self.max_depth}")
        if not self.threshold > 1:
            raise ValueError(f"threshold must be > 1, got {self.threshold}")

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


PROTOCOLS: Dict[str, Protocol] = {
    # metric per dataset as in the MiDaS v3.1 table; caps: see README "Evaluation and metric depth"
    "diw": Protocol("diw", "whdr"),
    "eth3d": Protocol("eth3d", "absrel", depth_cap=72.0, max_depth=72.0),
    "sintel": Protocol("sintel", "absrel", depth_cap=72.0, max_depth=72.0),
    "tum": Protocol("tum", "delta_bad", depth_cap=10.0, max_depth=10.0),
    "kitti": Protocol("kitti", "delta_bad", depth_cap=80.0, max_depth=80.0),
    "nyu": Protocol("nyu", "delta_bad", depth_cap=10.0, max_depth=10.0),
    "folder": Protocol("folder", "absrel"),
}
"""Default protocol per dataset, in the column order of the MiDaS v3.1 table."""


def protocol_for(dataset: str, *, metric: Optional[str] = None, depth_cap: Optional[float] = None,
                 max_depth: Optional[float] = None) -> Protocol:
    """The default protocol of ``dataset`` with any of ``metric``/``depth_cap``/``max_depth`` replaced."""
    if dataset not in PROTOCOLS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[dataset]
    changes = {k: v for k, v in (("metric", metric), ("depth_cap", depth_cap), ("max_depth", max_depth)) if v is not None}
    if protocol.metric == "whdr" and changes.get("metric", "whdr") != "whdr":
        raise ValueError(f"{dataset} has ordinal point pairs, not depth maps: its only metric is whdr")
    if "depth_cap" in changes and "max_depth" not in changes and protocol.max_depth is not None:
        changes["max_depth"] = max(protocol.max_depth, changes["depth_cap"])
    return replace(protocol, **changes)


# ---------------------------------------------------------------------------------------- arrays
def squeeze_leading(arr: np.ndarray) -> np.ndarray:
    """Drop leading size-1 axes ((1,1,H,W) -> (H,W)) but keep a 1-pixel-high map 2-D."""
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    return arr


def as_map(value, name: str) -> np.ndarray:
    """A tensor or array as a float64 (H,W) map; a ``ValueError`` naming ``name`` otherwise."""
    if value is None:
        raise ValueError(f"{name} is required")
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    arr = squeeze_leading(np.asarray(value, dtype=np.float64))
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D map (H,W) (or (1,1,H,W)), got shape {np.shape(value)}")
    return arr


def _mask(mask, shape: Tuple[int, int], name: str = "mask") -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    mask = squeeze_leading(np.asarray(mask))
    if mask.shape != shape:
        raise ValueError(f"{name} is {mask.shape} but the maps are {shape}")
    return mask.astype(bool)


def _same_shape(a: np.ndarray, b: np.ndarray, names: Tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} is {a.shape[0]}x{a.shape[1]} but {names[1]} is {b.shape[0]}x{b.shape[1]}")


# ------------------------------------------------------------------------------------- alignment
@dataclass(frozen=True, eq=False)
class Alignment:
    """``aligned = scale * pred + shift`` (float64, the whole map), fitted over the mask."""

    scale: float
    shift: float
    aligned: np.ndarray


def align_scale_shift(pred, target, mask=None) -> Alignment:
    """Closed-form least squares of ``scale * pred + shift`` to ``target`` over ``mask``.

    Raises ``ValueError`` for an empty mask (fewer than 2 pixels), NaN/inf inside the mask or a
    prediction that is constant over the mask (scale undetermined; the rule of
    ``inference.alignment.fit_scale_shift``)."""
    pred, target = as_map(pred, "pred"), as_map(target, "target")
    _same_shape(pred, target, ("pred", "target"))
    mask = _mask(mask, pred.shape)
    n = int(mask.sum())
    if n < 2:
        raise ValueError(f"the mask selects {n} pixel(s); alignment needs at least 2")
    p, d = pred[mask], target[mask]
    if not np.isfinite(p).all():
        raise ValueError("pred contains NaN or infinite values inside the mask")
    if not np.isfinite(d).all():
        raise ValueError("target contains NaN or infinite values inside the mask")
    try:
        scale, shift = fit_scale_shift(p, d)
    except DegenerateFitError:
        raise ValueError("pred is constant over the mask: scale and shift are undetermined") from None
    return Alignment(scale=scale, shift=shift, aligned=scale * pred + shift)


def disparity_to_capped_depth(aligned_disparity, depth_cap: float) -> np.ndarray:
    """``1 / max(aligned_disparity, 1/depth_cap)``: metric depth, never beyond ``depth_cap``."""
    if not depth_cap > 0:
        raise ValueError(f"depth_cap must be positive, got {depth_cap}")
    disparity = as_map(aligned_disparity, "aligned_disparity")
    return 1.0 / np.maximum(disparity, 1.0 / depth_cap)


# --------------------------------------------------------------------------------------- metrics
def _depth_pair(pred_depth, gt_depth, mask) -> Tuple[np.ndarray, np.ndarray]:
    pred, gt = as_map(pred_depth, "pred_depth"), as_map(gt_depth, "gt_depth")
    _same_shape(pred, gt, ("pred_depth", "gt_depth"))
    if mask is None:
        mask = np.isfinite(gt) & (gt > 0)
    mask = _mask(mask, gt.shape)
    if not mask.any():
        raise ValueError("no valid pixels: the mask (or gt_depth > 0) selects nothing")
    p, g = pred[mask], gt[mask]
    if not (np.isfinite(g).all() and (g > 0).all()):
        raise ValueError("gt_depth must be finite and positive wherever it is evaluated (mask it out)")
    if not (np.isfinite(p).all() and (p > 0).all()):
        raise ValueError("pred_depth must be finite and positive wherever it is evaluated (cap it first)")
    return p, g


def absrel(pred_depth, gt_depth, mask=None) -> float:
    """Mean absolute relative error, (1/n) sum |pred - gt| / gt."""
    p, g = _depth_pair(pred_depth, gt_depth, mask)
    return float(np.mean(np.abs(p - g) / g))


def _ratio(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    return np.maximum(p / g, g / p)


def delta_bad(pred_depth, gt_depth, mask=None, threshold: float = 1.25) -> float:
    """Share of pixels with max(pred/gt, gt/pred) > ``threshold`` (a fraction; lower is better)."""
    p, g = _depth_pair(pred_depth, gt_depth, mask)
    return float(np.mean(_ratio(p, g) > threshold))


def delta_accuracy(pred_depth, gt_depth, mask=None, base: float = 1.25) -> Tuple[float, float, float]:
    """(delta1, delta2, delta3): shares of pixels with max(pred/gt, gt/pred) < base**k, k = 1, 2, 3."""
    p, g = _depth_pair(pred_depth, gt_depth, mask)
    ratio = _ratio(p, g)
    return tuple(float(np.mean(ratio < base**k)) for k in (1, 2, 3))  # type: ignore[return-value]


def rmse(pred_depth, gt_depth, mask=None) -> float:
    """Root mean squared error in the units of the depths (metres)."""
    p, g = _depth_pair(pred_depth, gt_depth, mask)
    return float(np.sqrt(np.mean((p - g) ** 2)))


def as_pairs(pairs) -> np.ndarray:
    """Ordinal pairs as an ``(N, 5)`` int array of ``y_A, x_A, y_B, x_B, relation`` (0-based pixels;
    ``relation`` +1: A is farther than B, -1: A is closer)."""
    arr = np.asarray(pairs)
    if arr.ndim == 1 and arr.size == 5:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 5 or len(arr) == 0:
        raise ValueError(f"pairs must be (N, 5) rows of y_A, x_A, y_B, x_B, relation; got shape {arr.shape}")
    if not np.all(np.mod(arr, 1) == 0):
        raise ValueError("pairs must hold integer pixel coordinates and relations")
    arr = arr.astype(np.int64)
    if not np.isin(arr[:, 4], (-1, 1)).all():
        raise ValueError("pair relations must be +1 (A farther than B) or -1 (A closer than B)")
    return arr


def whdr(pred_disparity, pairs, weights: Optional[Sequence[float]] = None) -> float:
    """Weighted human disagreement rate of a disparity map on ordinal point pairs (see ``as_pairs``)."""
    disparity = as_map(pred_disparity, "pred_disparity")
    pairs = as_pairs(pairs)
    h, w = disparity.shape
    ys, xs = pairs[:, [0, 2]], pairs[:, [1, 3]]
    if ys.min() < 0 or xs.min() < 0 or ys.max() >= h or xs.max() >= w:
        raise ValueError(f"a pair point lies outside the {w}x{h} prediction")
    weights = np.ones(len(pairs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(pairs),) or not (weights >= 0).all() or weights.sum() <= 0:
        raise ValueError(f"weights must be {len(pairs)} non-negative numbers with a positive sum")
    d_a = disparity[pairs[:, 0], pairs[:, 1]]
    d_b = disparity[pairs[:, 2], pairs[:, 3]]
    if not (np.isfinite(d_a).all() and np.isfinite(d_b).all()):
        raise ValueError("pred_disparity is NaN or infinite at a pair point")
    predicted = np.sign(d_b - d_a)  # +1: A has less disparity, i.e. A is farther
    wrong = predicted != pairs[:, 4]
    return float(np.sum(weights * wrong) / np.sum(weights))


# ---------------------------------------------------------------------------------------- sample
def valid_depth_mask(gt_depth, protocol: Protocol, mask=None) -> np.ndarray:
    """Pixels whose ground truth is finite and within the protocol's ``(min_depth, max_depth]``."""
    gt = as_map(gt_depth, "gt_depth")
    valid = np.isfinite(gt) & (gt > protocol.min_depth)
    if protocol.max_depth is not None:
        valid &= gt <= protocol.max_depth
    return valid & _mask(mask, gt.shape)


def capped_metres(pred_metres, depth_cap: float, min_depth: float = 1e-3) -> np.ndarray:
    """A metric prediction clipped to ``[min_depth, depth_cap]`` metres (no alignment)."""
    if not depth_cap > 0:
        raise ValueError(f"depth_cap must be positive, got {depth_cap}")
    metres = as_map(pred_metres, "pred_metres")
    if not np.isfinite(metres).all():
        raise ValueError("pred_metres contains NaN or infinite values")
    return np.clip(metres, max(min_depth, 1e-6), depth_cap)


def evaluate_sample(pred_disparity, gt_depth=None, mask=None, protocol: Protocol = PROTOCOLS["folder"], *,
                    pairs=None, pred_metres=None) -> Dict[str, float]:
    """Score one prediction under ``protocol``.

    Depth protocols: align ``pred_disparity`` to ``1/gt_depth`` over the valid pixels (``mask``
    and the protocol's depth range), cap, and return every metric (``absrel``, ``delta_bad``,
    ``delta1``-``delta3``, ``rmse``) plus the alignment, the pixel count, and ``metric``/``value``
    (the protocol's own metric). ``pred_metres`` (a metric model's depth in metres) is scored as
    it is, capped but not aligned (``pred_disparity`` may then be ``None``; ``whdr`` uses
    ``1/pred_metres``); ``"alignment"`` in a depth protocol's result says which. ``whdr`` protocols need ``pairs``
    (see ``as_pairs``) instead of a depth map. Degenerate samples raise ``ValueError``."""
    if not isinstance(protocol, Protocol):
        raise ValueError(f"protocol must be a Protocol, got {type(protocol).__name__}")
    alignment_kind = "none" if pred_metres is not None else "scale_shift"
    if protocol.metric == "whdr":
        if pairs is None:
            raise ValueError(f"protocol {protocol.name!r} scores ordinal pairs: pass pairs=")
        if pred_metres is not None:
            pred_disparity = 1.0 / capped_metres(pred_metres, np.inf if protocol.depth_cap is None else protocol.depth_cap)
        value = whdr(pred_disparity, pairs)
        return {"metric": "whdr", "value": value, "whdr": value, "pairs": int(len(as_pairs(pairs)))}  # ordinal: no alignment
    gt = as_map(gt_depth, "gt_depth")
    pred = as_map(pred_metres if pred_metres is not None else pred_disparity,
                  "pred_metres" if pred_metres is not None else "pred_disparity")
    _same_shape(pred, gt, ("pred_metres" if pred_metres is not None else "pred_disparity", "gt_depth"))
    valid = valid_depth_mask(gt, protocol, mask)
    if valid.sum() < 2:
        raise ValueError(f"the sample has {int(valid.sum())} valid ground-truth pixel(s); at least 2 are needed")
    cap = protocol.depth_cap if protocol.depth_cap is not None else float(gt[valid].max())
    if pred_metres is not None:
        depth = capped_metres(pred, cap, protocol.min_depth)
        scale, shift = 1.0, 0.0
    else:
        target = np.zeros_like(gt)
        target[valid] = 1.0 / gt[valid]
        alignment = align_scale_shift(pred, target, valid)
        depth = disparity_to_capped_depth(alignment.aligned, cap)
        scale, shift = alignment.scale, alignment.shift
    d1, d2, d3 = delta_accuracy(depth, gt, valid)
    result = {
        "absrel": absrel(depth, gt, valid),
        "delta_bad": delta_bad(depth, gt, valid, protocol.threshold),
        "delta1": d1,
        "delta2": d2,
        "delta3": d3,
        "rmse": rmse(depth, gt, valid),
        "alignment": alignment_kind,
        "scale": scale,
        "shift": shift,
        "depth_cap": cap,
        "valid_pixels": int(valid.sum()),
    }
    return {"metric": protocol.metric, "value": result[protocol.metric], **result}


def improvement(errors: Dict[str, float], reference: Dict[str, float]) -> Optional[float]:
    """The paper's "Imp": 100 * (1 - mean_d(errors[d] / reference[d])) over the datasets ``d`` both
    have (reference errors must be positive); ``None`` when they share none."""
    shared = [d for d in errors if d in reference and reference[d] is not None and errors[d] is not None]
    shared = [d for d in shared if reference[d] > 0]
    if not shared:
        return None
    return float(100.0 * (1.0 - np.mean([errors[d] / reference[d] for d in shared])))
