"""Typed results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Union

import torch

TensorOrList = Union[torch.Tensor, List[torch.Tensor]]


@dataclass
class DepthOutput:
    """What ``DepthEstimator.__call__`` returns.

    ``disparity``: normalized relative inverse depth in [0,1], near = 1 (near = 0 with
    ``invert=True``), float32 on the CPU, at each input's own size. A ``(B,1,H,W)`` tensor when
    every input has the same size, else a list of ``(1,1,H_i,W_i)`` tensors in input order.
    ``raw``: the model's unnormalized prediction resized the same way (MiDaS ``run.py``: bicubic).
    ``model_name`` and ``settings`` record how it was made.
    """

    disparity: TensorOrList
    raw: TensorOrList
    model_name: str
    settings: Dict[str, Any] = field(default_factory=dict)

    def per_image(self, which: str = "disparity") -> List[torch.Tensor]:
        """Always a list of ``(1,H,W)`` maps, one per input image."""
        value = getattr(self, which)
        if isinstance(value, torch.Tensor):
            return [v for v in value]
        return [v[0] for v in value]

    def __len__(self) -> int:
        return len(self.disparity)
