"""One depth path for every method: disparity (B,1,H,W) in [0,1] -> what each pipeline consumes.

Float all the way: no 8-bit round trip anywhere.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def check_disparity(disparity: torch.Tensor, height: Optional[int] = None, width: Optional[int] = None) -> torch.Tensor:
    """Validate a disparity map: (B,1,H,W) (or (B,H,W) / (H,W)), finite, not constant."""
    if not isinstance(disparity, torch.Tensor):
        raise ValueError(f"depth_map must be a torch.Tensor, got {type(disparity).__name__}")
    if disparity.ndim == 2:
        disparity = disparity[None, None]
    elif disparity.ndim == 3:
        disparity = disparity[:, None]
    if disparity.ndim != 4 or disparity.shape[1] != 1:
        raise ValueError(f"depth_map must be (B,1,H,W), (B,H,W) or (H,W), got {tuple(disparity.shape)}")
    if height is not None and tuple(disparity.shape[-2:]) != (height, width):
        raise ValueError(f"depth_map is {tuple(disparity.shape[-2:])} but the image is {(height, width)}")
    if not torch.isfinite(disparity).all():
        raise ValueError("depth_map contains NaN or infinite values")
    flat = disparity.flatten(1)
    if ((flat.max(dim=1).values - flat.min(dim=1).values) <= 1e-6).any():
        raise ValueError("depth_map is constant: it carries no shape to condition on")
    return disparity.float()


def apply_background(
    disparity: torch.Tensor, mask: Optional[torch.Tensor], weight: float = 0.0, level: Optional[float] = None
) -> torch.Tensor:
    """Flatten (``weight=0``) or down-weight (``0<weight<1``) the disparity outside ``mask``.

    ``mask`` (B,1,H,W) or (H,W) in [0,1]: 1 = subject, 0 = background. The background is pulled
    towards ``level`` (default: the far end, 0) as ``level + weight * (d - level)``; inside the
    mask the disparity is unchanged.
    """
    if mask is None:
        return disparity
    if not 0 <= weight <= 1:
        raise ValueError(f"background_weight must be in [0, 1], got {weight}")
    mask = torch.as_tensor(mask, dtype=torch.float32)
    while mask.ndim < 4:
        mask = mask.unsqueeze(0)
    if mask.shape[-2:] != disparity.shape[-2:]:
        mask = F.interpolate(mask, size=disparity.shape[-2:], mode="bilinear", align_corners=False)
    mask = mask.clamp(0, 1).to(disparity.device)
    base = torch.zeros_like(disparity) if level is None else torch.full_like(disparity, float(level))
    background = base + weight * (disparity - base)
    return mask * disparity + (1 - mask) * background


def depth2img_depth_map(disparity: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) -> (B,H,W), the layout ``StableDiffusionDepth2ImgPipeline(depth_map=)`` takes
    (it rescales to [-1,1] per sample itself)."""
    return disparity[:, 0]


def control_image(disparity: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) in [0,1] -> (B,3,H,W) in [0,1] (near = white), passed to ControlNet/adapters as is."""
    return disparity.expand(-1, 3, -1, -1).contiguous()
