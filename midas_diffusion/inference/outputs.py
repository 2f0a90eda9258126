"""Typed results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

import torch


@dataclass
class DepthOutput:
    """What ``DepthEstimator.__call__`` returns (``estimate_each`` returns one per image).

    ``disparity``: normalized relative inverse depth in [0,1], near = 1 (near = 0 with
    ``invert=True``), always a ``(B,1,H,W)`` float32 tensor at the images' size, on the CPU unless
    ``output_device`` said otherwise.
    ``raw``: the model's unnormalized prediction resized the same way (MiDaS ``run.py``: bicubic),
    ``(B,1,H,W)`` float32 on the same device.
    ``model_name`` and ``settings`` record how it was made.
    """

    disparity: torch.Tensor
    raw: torch.Tensor
    model_name: str
    settings: Dict[str, Any] = field(default_factory=dict)

    def per_image(self, which: str = "disparity") -> List[torch.Tensor]:
        """A list of ``(1,H,W)`` maps, one per image."""
        if which not in ("disparity", "raw"):
            raise ValueError(f"which must be 'disparity' or 'raw', got {which!r}")
        return list(getattr(self, which).unbind(0))

    def __len__(self) -> int:
        return self.disparity.shape[0]
