"""Swin-L (v1) and SwinV2-L/B/T encoders (fixed, square input size).

MiDaS hooked the last block of every stage, before timm 0.6's end-of-stage downsampling. In
timm 1.x the downsampling opens the next stage, so those features are exactly the stage outputs
of ``forward_intermediates``. Official checkpoints use the 0.6 layout; timm's own checkpoint
filter for each family moves ``layers.N.downsample`` to ``layers.N+1`` and drops computed buffers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any, Dict, Tuple

import torch
from torch import nn

from .base import FeatureList, add_prefix, create_timm_model, strip_prefix


@dataclass(frozen=True)
class SwinEncoderConfig:
    timm_name: str
    out_channels: Tuple[int, ...]
    # timm module whose ``checkpoint_filter_fn`` converts the 0.6-era layout
    timm_module: str = "timm.models.swin_transformer_v2"
    timm_overrides: Tuple[Tuple[str, Any], ...] = ()

    def build(self) -> nn.Module:
        return SwinEncoder(self)

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]:
        backbone = strip_prefix(state_dict, "model.")
        backbone = {k: v for k, v in backbone.items() if not k.startswith("head.")}
        filter_fn = importlib.import_module(self.timm_module).checkpoint_filter_fn
        return add_prefix(filter_fn(backbone, module.model), "model.")

    def reduced(self) -> "SwinEncoderConfig":
        overrides = (("embed_dim", 16), ("depths", (1, 1, 2, 1)), ("num_heads", (1, 2, 2, 4)))
        return replace(self, timm_overrides=overrides, out_channels=(16, 32, 64, 128))


class SwinEncoder(nn.Module):
    def __init__(self, config: SwinEncoderConfig):
        super().__init__()
        self.config = config
        self.model = create_timm_model(config.timm_name, config.timm_overrides, num_classes=0)
        self.model.head = nn.Identity()  # classifier weights are not part of the depth model

    def forward(self, x: torch.Tensor) -> FeatureList:
        expected = tuple(self.model.patch_embed.img_size)
        if tuple(x.shape[-2:]) != expected:
            raise ValueError(f"this Swin encoder only runs at {expected[0]}x{expected[1]}, got {tuple(x.shape[-2:])}")
        return self.model.forward_intermediates(
            x, indices=(0, 1, 2, 3), norm=False, output_fmt="NCHW", intermediates_only=True
        )
