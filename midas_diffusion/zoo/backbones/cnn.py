"""The convolutional encoders of MiDaS v2.1: ResNeXt-101 32x8d (WSL) and EfficientNet-Lite3.

The original fetched both through ``torch.hub`` at construction time. Here they are timm's own
models (same architectures), regrouped into MiDaS' ``layer1..layer4`` containers so that the
official checkpoint keys (``pretrained.layer1.0.weight``, ...) are the module's own keys.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, Tuple

import torch
from torch import nn

from .base import FeatureList, create_timm_model


@dataclass(frozen=True)
class CNNEncoderConfig:
    """What both v2.1 encoder configs hold: the timm model and the widths of ``layer1..layer4``. Their
    official keys are the module's own (``filter_checkpoint`` keeps them as they are)."""

    timm_name: str
    out_channels: Tuple[int, ...]
    timm_overrides: Tuple[Tuple[str, Any], ...] = ()

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]:
        return dict(state_dict)


@dataclass(frozen=True)
class ResNetEncoderConfig(CNNEncoderConfig):
    def build(self) -> nn.Module:
        return ResNetEncoder(self)

    def reduced(self) -> "ResNetEncoderConfig":
        return replace(self, timm_overrides=(("layers", (1, 1, 1, 1)), ("base_width", 4), ("cardinality", 4)))


class ResNetEncoder(nn.Module):
    """``layer1`` = stem (conv, BN, ReLU, max-pool) + the first residual stage."""

    def __init__(self, config: ResNetEncoderConfig):
        super().__init__()
        self.config = config
        net = create_timm_model(config.timm_name, config.timm_overrides, num_classes=0)
        self.layer1 = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool, net.layer1)
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = net.layer4

    def forward(self, x: torch.Tensor) -> FeatureList:
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        return [l1, l2, l3, self.layer4(l3)]


@dataclass(frozen=True)
class EfficientNetEncoderConfig(CNNEncoderConfig):
    # which of timm's block stages make up layer1..layer4
    stage_slices: Tuple[Tuple[int, int], ...] = ((0, 2), (2, 3), (3, 5), (5, 9))

    def build(self) -> nn.Module:
        return EfficientNetEncoder(self)

    def reduced(self) -> "EfficientNetEncoderConfig":
        return replace(self, timm_name="tf_efficientnet_lite0", out_channels=(24, 40, 112, 320))


class EfficientNetEncoder(nn.Module):
    """``layer1`` = stem conv, BN+act (timm fuses the activation into the BN: index 2 stays an
    empty slot, where the original had its separate activation) and the first block stages."""

    def __init__(self, config: EfficientNetEncoderConfig):
        super().__init__()
        self.config = config
        net = create_timm_model(config.timm_name, config.timm_overrides, num_classes=0)
        (a0, a1), (b0, b1), (c0, c1), (d0, d1) = config.stage_slices
        self.layer1 = nn.Sequential(net.conv_stem, net.bn1, nn.Identity(), *net.blocks[a0:a1])
        self.layer2 = nn.Sequential(*net.blocks[b0:b1])
        self.layer3 = nn.Sequential(*net.blocks[c0:c1])
        self.layer4 = nn.Sequential(*net.blocks[d0:d1])

    def forward(self, x: torch.Tensor) -> FeatureList:
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        return [l1, l2, l3, self.layer4(l3)]
