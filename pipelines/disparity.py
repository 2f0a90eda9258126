"""Disparity maps in the pipelines: the user's ``depth_map`` and ``background_mask`` checked, the
mask applied, and the disparity (B,1,H,W) in [0,1] in the form each method consumes.

Float all the way: no 8-bit round trip anywhere.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F

from midas_diffusion.io.maps import to_map_tensor


def check_disparity(disparity: Any, height: Optional[int] = None, width: Optional[int] = None) -> torch.Tensor:
    """A user's ``depth_map`` as (B,1,H,W) float32 disparity in [0,1] (near = 1).

    Tensors (B,1,H,W), (B,H,W) or (H,W), arrays, PIL images (16-bit PNGs included) and paths are
    accepted; integer data is scaled by its type's range and float data outside [0,1] is min-max
    normalized per map. It must be finite, not constant, and (when given) of the image's size.
    """
    disparity = to_map_tensor(disparity, "depth_map", rescale=True)
    if height is not None and tuple(disparity.shape[-2:]) != (height, width):
        raise ValueError(f"depth_map is {tuple(disparity.shape[-2:])} but the image is {(height, width)}")
    flat = disparity.flatten(1)
    if ((flat.max(dim=1).values - flat.min(dim=1).values) <= 1e-6).any():
        raise ValueError("depth_map is constant: it carries no shape to condition on")
    return disparity


def check_background(mask: Any, weight: float, height: int, width: int, batch: Optional[int] = None) -> torch.Tensor:
    """A ``background_mask`` (1 = subject) as (B,1,H,W) float32 in [0,1] at the image's size, and
    its ``background_weight`` in [0, 1]; what ``apply_background`` takes.

    A mask of another size with the same aspect ratio (within 1%) is resized; any other size, or a
    batch that is neither 1 nor the images', is a ``ValueError`` naming ``background_mask``.
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"background_weight must be in [0, 1], got {weight}")
    mask = to_map_tensor(mask, "background_mask")
    if batch is not None and mask.shape[0] not in (1, batch):
        raise ValueError(f"background_mask holds {mask.shape[0]} masks for {batch} images")
    h, w = mask.shape[-2:]
    if (h, w) != (height, width):
        if abs(w / h - width / height) > 0.01 * width / height:
            raise ValueError(f"background_mask is {w}x{h} but the image is {width}x{height}")
        mask = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
    return mask


def apply_background(
    disparity: torch.Tensor, mask: Optional[torch.Tensor], weight: float = 0.0, level: Optional[float] = None
) -> torch.Tensor:
    """Flatten (``weight=0``) or down-weight (``0<weight<1``) the disparity outside ``mask``.

    ``mask`` and ``weight`` as ``check_background`` returns and checks them: 1 = subject,
    0 = background. The background is pulled towards ``level`` (default: the far end, 0) as
    ``level + weight * (d - level)``; inside the mask the disparity is unchanged.
    """
    if mask is None:
        return disparity
    mask = mask.to(disparity.device)
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
