"""LeViT-384 encoder (224x224 only: its attention biases are fixed to a 14x14 grid).

MiDaS hooked timm 0.6's flat ``blocks[3, 11, 21]``. timm 1.x groups the same modules as
``stages[i].downsample`` + ``stages[i].blocks`` (one block = attention + MLP residual), so those
hooks are the outputs of ``stages[0].blocks[1]``, ``stages[1].blocks[0]`` and
``stages[2].blocks[0]``. Tensor order is unchanged, so checkpoints are remapped by order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from .base import FeatureList, add_prefix, create_timm_model, drop_keys, map_by_order, strip_prefix, tokens_to_grid


@dataclass(frozen=True)
class LevitEncoderConfig:
    timm_name: str
    out_channels: Tuple[int, ...]
    # (stage, block) pairs whose outputs are the feature levels
    hooks: Tuple[Tuple[int, int], ...] = ((0, 1), (1, 0), (2, 0))
    timm_overrides: Tuple[Tuple[str, Any], ...] = ()

    def build(self) -> nn.Module:
        return LevitEncoder(self)

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]:
        backbone = drop_keys(strip_prefix(state_dict, "model."), prefixes=("head.", "head_dist."),
                             suffixes=("attention_bias_idxs",))
        if any(k.startswith("stages.") for k in backbone):  # already timm layout
            return add_prefix(backbone, "model.")
        return add_prefix(map_by_order(backbone, module.model), "model.")

    def reduced(self) -> "LevitEncoderConfig":
        overrides = (("embed_dim", (32, 48, 64)), ("num_heads", (2, 3, 4)), ("depth", (2, 2, 2)), ("key_dim", 8))
        return replace(self, timm_overrides=overrides, out_channels=(32, 48, 64))


class LevitEncoder(nn.Module):
    def __init__(self, config: LevitEncoderConfig):
        super().__init__()
        self.config = config
        self.model = create_timm_model(config.timm_name, config.timm_overrides, num_classes=0)

    def forward(self, x: torch.Tensor) -> FeatureList:
        model = self.model
        x = model.stem(x)
        grid = tuple(x.shape[-2:])
        tokens = x.flatten(2).transpose(1, 2)
        hooks = self.config.hooks
        features: List[torch.Tensor] = []
        for s, stage in enumerate(model.stages[: hooks[-1][0] + 1]):
            tokens = stage.downsample(tokens)
            if s > 0:
                grid = ((grid[0] - 1) // 2 + 1, (grid[1] - 1) // 2 + 1)
            last = max((b for hs, b in hooks if hs == s), default=-1)
            for b, blk in enumerate(stage.blocks[: last + 1]):
                tokens = blk(tokens)
                if (s, b) in hooks:
                    features.append(tokens_to_grid(tokens, grid))
            if len(features) == len(hooks):
                break
            for blk in stage.blocks[last + 1 :]:
                tokens = blk(tokens)
        return features
