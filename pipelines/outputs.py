"""What a MiDaS pipeline returns: ``MidasPipelineOutput``, and its run settings (built here only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
from diffusers.utils import BaseOutput

from .components import DepthSettings


@dataclass
class MidasPipelineOutput(BaseOutput):
    """``images``: the results (PIL list, numpy or tensor, per ``output_type``), at the input's size.
    ``disparity``: (B,1,H,W) float32 in [0,1] (near = 1) that conditioned them, at the input's size.
    ``settings``: everything needed to reproduce the call (see ``run_settings``).
    ``output_disparity``: with ``rgbd=...``, (N,1,H,W) float32 disparity aligned with each output
    image: the conditioning disparity (``rgbd="conditioning"``) or the disparity re-estimated on
    the result (``rgbd="reestimate"``); else None.
    ``output_metres``: with ``rgbd=...`` and a metric depth model, (N,1,H,W) float32 depth in metres
    aligned with each output image the same way (RGBD exports use it instead of a near/far guess);
    else None."""

    images: Any
    disparity: torch.Tensor
    settings: Dict[str, Any] = field(default_factory=dict)
    output_disparity: Optional[torch.Tensor] = None
    output_metres: Optional[torch.Tensor] = None


def run_settings(pipe: Any, arguments: Dict[str, Any], depth_settings: DepthSettings) -> Dict[str, Any]:
    """The settings of one run of ``pipe``: the one place they are put together.

    ``method`` (the pipeline's ``method_name``), the call's ``arguments`` (prompt, seed, steps, ...),
    the depth settings, the scheduler that ran, ``depth_model``: the depth model that ran (the zoo
    name of the pipeline's depth component, or the checkpoint file / saved folder ``load_pipeline``
    loaded it from; None without a component), and, for a pipeline from ``load_pipeline``, what it
    was loaded from (``base``, ``single_file_config``, ``control_model``: None for the base's own).
    ``pipeline(image, **settings)`` runs the same again.
    """
    depth_estimator = getattr(pipe, "depth_estimator", None)
    settings = dict(
        method=pipe.method_name,
        **arguments,
        **depth_settings.__dict__,
        scheduler=type(pipe.scheduler).__name__,
        depth_model=None if depth_estimator is None else depth_estimator.model_name,
    )
    settings.update(getattr(pipe, "loaded_with", {}))
    return settings
