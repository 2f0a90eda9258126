"""Next-ViT-L encoder, from timm's ``nextvit_large`` (no git submodule, no ``import *``).

MiDaS hooked ``features[2, 6, 36, 39]`` of the Next-ViT repository's model: the ends of its four
stages, i.e. timm's stage outputs before the final norm. The repository's key names differ from
timm's but keep the same order (timm's own filter remaps by order; so do we, checking shapes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, Tuple

import torch
from torch import nn

from .base import FeatureList, add_prefix, create_timm_model, map_by_order, strip_prefix


@dataclass(frozen=True)
class NextViTEncoderConfig:
    timm_name: str
    out_channels: Tuple[int, ...]
    timm_overrides: Tuple[Tuple[str, Any], ...] = ()

    def build(self) -> nn.Module:
        return NextViTEncoder(self)

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]:
        backbone = strip_prefix(state_dict, "model.")
        if any(k.startswith("stages.") for k in backbone):  # already timm layout
            backbone = {k: v for k, v in backbone.items() if not k.startswith("head.")}
            return add_prefix(backbone, "model.")
        backbone = {k: v for k, v in backbone.items() if not k.startswith("proj_head.")}
        return add_prefix(map_by_order(backbone, module.model), "model.")

    def reduced(self) -> "NextViTEncoderConfig":
        return replace(self, timm_overrides=(("depths", (1, 1, 5, 1)),))  # stage 3 repeats in fives


class NextViTEncoder(nn.Module):
    def __init__(self, config: NextViTEncoderConfig):
        super().__init__()
        self.config = config
        self.model = create_timm_model(config.timm_name, config.timm_overrides, num_classes=0)

    def forward(self, x: torch.Tensor) -> FeatureList:
        return self.model.forward_intermediates(
            x, indices=(0, 1, 2, 3), norm=False, output_fmt="NCHW", intermediates_only=True
        )
