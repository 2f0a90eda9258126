"""Next-ViT-L encoder, from timm's ``nextvit_large`` (no git submodule, no ``import *``).

MiDaS hooked ``features[2, 6, 36, 39]`` of the Next-ViT repository's model: the ends of its four
stages, i.e. timm's stage outputs before the final norm. The repository numbers its blocks flat
(``features.N``) where timm groups them (``stages.S.blocks.B``); timm's own filter remaps by key
order, which a safetensors file (keys sorted) breaks, so the rules below rename by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from ..state_dicts import Rule, add_prefix, drop_keys, indexed, rename_by_rules, strip_prefix
from .base import FeatureList, TimmEncoder


@dataclass(frozen=True)
class NextViTEncoderConfig:
    timm_name: str
    out_channels: Tuple[int, ...]
    timm_overrides: Tuple[Tuple[str, Any], ...] = ()

    def build(self) -> nn.Module:
        return NextViTEncoder(self)

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]:
        # the classifier: ``proj_head`` in the repository's files, ``head`` in timm's
        backbone = drop_keys(strip_prefix(state_dict, "model."), prefixes=("proj_head.", "head."))
        # timm-layout keys match no rule and keep their names
        return add_prefix(rename_by_rules(backbone, official_rules(module.model)), "model.")

    def reduced(self) -> "NextViTEncoderConfig":
        return replace(self, timm_overrides=(("depths", (1, 1, 5, 1)),))  # stage 3 repeats in fives


def official_block_names(nextvit: nn.Module) -> List[str]:
    """The timm module of each flat ``features.N`` of the Next-ViT repository, in order."""
    return [f"stages.{s}.blocks.{b}" for s, stage in enumerate(nextvit.stages) for b in range(len(stage.blocks))]


def official_rules(nextvit: nn.Module) -> List[Rule]:
    """Next-ViT repository backbone keys -> the keys of the timm model ``nextvit`` (``stem.*`` and
    ``norm.*`` are named alike; inside a block only the MLP's ``conv1``/``conv2`` became ``fc1``/``fc2``)."""
    inner: List[Rule] = [(r"mlp\.conv(?P<i>[12])\.(?P<p>weight|bias)", r"mlp.fc\g<i>.\g<p>")]
    return [(r"features\.(?P<n>\d+)\.(?P<rest>.+)", indexed(official_block_names(nextvit), inner))]


class NextViTEncoder(TimmEncoder):
    def __init__(self, config: NextViTEncoderConfig):
        super().__init__(config)

    def forward(self, x: torch.Tensor) -> FeatureList:
        return self.model.forward_intermediates(
            x, indices=(0, 1, 2, 3), norm=False, output_fmt="NCHW", intermediates_only=True
        )
