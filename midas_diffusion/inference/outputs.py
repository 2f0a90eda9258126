"""Typed results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

MIN_METRES = 1e-3  # a metric model's depth is clamped to at least 1 mm (a ReLU head can give 0)


@dataclass
class DepthOutput:
    """What ``DepthEstimator.__call__`` returns (``estimate_each`` returns one per image).

    ``disparity``: normalized relative inverse depth in [0,1], near = 1 (near = 0 with
    ``invert=True``), always a ``(B,1,H,W)`` float32 tensor at the images' size, on the CPU unless
    ``output_device`` said otherwise.
    ``raw``: the model's unnormalized prediction resized the same way (MiDaS ``run.py``: bicubic),
    ``(B,1,H,W)`` float32 on the same device.
    ``metres``: for a metric model (its spec ``predicts == "metres"``) the depth in metres,
    ``(B,1,H,W)`` float32 like ``raw`` (which is then the same prediction, unclamped), at least
    ``MIN_METRES``; ``None`` for a relative model. For a metric model ``disparity`` is the normalized
    inverse of ``metres`` (min-max of ``1/metres`` per image, near = 1), so every consumer of
    ``disparity`` (conditioning, previews) gets the same kind of map from every model.
    ``model_name`` and ``settings`` record how it was made (``settings["predicts"]``: ``"disparity"``
    or ``"metres"``).
    """

    disparity: torch.Tensor
    raw: torch.Tensor
    model_name: str
    settings: Dict[str, Any] = field(default_factory=dict)
    metres: Optional[torch.Tensor] = None

    def per_image(self, which: str = "disparity") -> List[torch.Tensor]:
        """A list of ``(1,H,W)`` maps, one per image (``which="metres"`` only for a metric model)."""
        if which not in ("disparity", "raw", "metres"):
            raise ValueError(f"which must be 'disparity', 'raw' or 'metres', got {which!r}")
        if which == "metres" and self.metres is None:
            raise ValueError(f"{self.model_name} predicts relative disparity, not metres: there is no metric depth")
        return list(getattr(self, which).unbind(0))

    def __len__(self) -> int:
        return self.disparity.shape[0]
