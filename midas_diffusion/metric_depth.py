"""The documented path ``midas_diffusion.metric_depth``: a plain re-export of ``midas_diffusion.evaluation.metric_depth``."""

from .evaluation.metric_depth import (  # noqa: F401
    MetricDepth,
    PoorFitWarning,
    fit_inverse_depth,
    metric_depth,
    sparse_from_points,
)

__all__ = [
    "MetricDepth",
    "PoorFitWarning",
    "fit_inverse_depth",
    "metric_depth",
    "sparse_from_points",
]
