"""Sequence-level normalization of video depth, scene cuts, and a flicker measure.

Per-frame min-max normalization follows every small change of a frame's extremes, so a static
scene flickers. ``SequenceNormalizer`` maps each frame with the *mean* range of the last ``window``
frames of the same scene (reset at scene cuts); it depends only on those frames, so a resumed run
that re-predicts the ``window - 1`` frames before its first missing one gives the same maps.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..io.images import VALUE_SCALE


@dataclass(frozen=True)
class SequenceNormalization:
    """``window``: frames whose ranges are averaged (1 = per frame); ``percentile``: each frame's
    range is these percentiles of its raw map (``None``: min and max); ``cut_threshold``: a mean
    absolute change of the 32x32 gray thumbnail above this (in [0,1]) starts a new scene."""

    window: int = 16
    percentile: Optional[Tuple[float, float]] = (1.0, 99.0)
    cut_threshold: float = 0.2
    gamma: float = 1.0
    invert: bool = False

    def __post_init__(self):
        if self.window < 1:
            raise ValueError(f"window must be at least 1 frame, got {self.window}")
        if self.percentile is not None and not 0 <= self.percentile[0] < self.percentile[1] <= 100:
            raise ValueError(f"percentile must be (low, high) with 0 <= low < high <= 100, got {self.percentile}")
        if self.gamma <= 0:
            raise ValueError(f"gamma must be positive, got {self.gamma}")


def thumbnail(rgb: torch.Tensor, size: int = 32) -> torch.Tensor:
    """``(C,H,W)`` image -> ``(size,size)`` gray in [0,1] on the CPU, for cut detection. Float
    images are in [0,1]; uint8 and uint16 (the compact form of ``images``) are scaled by their range."""
    scale = VALUE_SCALE.get(rgb.dtype, 1.0)
    gray = rgb.float().mean(dim=0, keepdim=True)[None]
    return (F.adaptive_avg_pool2d(gray, size)[0, 0] / scale).cpu()


def frame_range(raw: torch.Tensor, percentile: Optional[Tuple[float, float]]) -> Tuple[float, float]:
    values = raw.float().reshape(-1)
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        return 0.0, 0.0
    if percentile is None:
        return values.min().item(), values.max().item()
    sample = values if values.numel() <= 1_000_000 else values[:: values.numel() // 1_000_000 + 1]
    q = torch.tensor([percentile[0] / 100, percentile[1] / 100], device=sample.device)
    lo, hi = torch.quantile(sample, q).tolist()
    return lo, hi


class SequenceNormalizer:
    """Feed frames in order: ``observe(index, thumbnail(rgb))`` for every frame (cut detection),
    then ``add(index, raw)`` for the frames that were predicted, and ``normalize(index, raw)``."""

    def __init__(self, config: SequenceNormalization = SequenceNormalization()):
        self.config = config
        self._ranges: Deque[Tuple[int, float, float]] = deque()
        self._previous: Optional[torch.Tensor] = None
        self.scene_start = 0
        self.cuts = 0

    def observe(self, index: int, thumb: torch.Tensor) -> bool:
        """Note frame ``index`` by its ``thumbnail``; True if a scene starts here (earlier ranges
        are dropped)."""
        cut = self._previous is not None and (thumb - self._previous).abs().mean().item() > self.config.cut_threshold
        self._previous = thumb
        if cut:
            self._ranges.clear()
            self.scene_start = index
            self.cuts += 1
        return cut

    def add(self, index: int, raw: torch.Tensor) -> None:
        self._ranges.append((index, *frame_range(raw, self.config.percentile)))

    def range_at(self, index: int) -> Tuple[float, float]:
        first = max(self.scene_start, index - self.config.window + 1)
        while self._ranges and self._ranges[0][0] < first:
            self._ranges.popleft()
        usable = [(lo, hi) for i, lo, hi in self._ranges if first <= i <= index]
        if not usable:
            raise ValueError(f"no predicted frame in the window of frame {index}")
        return sum(r[0] for r in usable) / len(usable), sum(r[1] for r in usable) / len(usable)

    def normalize(self, index: int, raw: torch.Tensor) -> torch.Tensor:
        """``raw`` of frame ``index`` (any shape) -> disparity in [0,1] with the window's range."""
        lo, hi = self.range_at(index)
        span = hi - lo
        raw = raw.float()
        if span <= 1e-8 * max(1.0, abs(hi)):
            out = torch.zeros_like(raw)
        else:
            out = ((torch.nan_to_num(raw, nan=lo, posinf=hi, neginf=lo) - lo) / span).clamp_(0, 1)
        if self.config.gamma != 1.0:
            out = out.pow(self.config.gamma)
        return 1 - out if self.config.invert else out


def flicker(maps: Sequence[torch.Tensor]) -> float:
    """Mean absolute frame-to-frame change of normalized maps (for a static scene, lower is better)."""
    if len(maps) < 2:
        return 0.0
    diffs = [(b.float() - a.float()).abs().mean().item() for a, b in zip(maps[:-1], maps[1:])]
    return sum(diffs) / len(diffs)
