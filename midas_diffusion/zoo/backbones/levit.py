"""LeViT-384 encoder (224x224 only: its attention biases are fixed to a 14x14 grid).

MiDaS hooked timm 0.6's flat ``blocks[3, 11, 21]``. timm 1.x groups the same modules as
``stages[i].downsample`` + ``stages[i].blocks`` (one block = attention + MLP residual), so those
hooks are the outputs of ``stages[0].blocks[1]``, ``stages[1].blocks[0]`` and
``stages[2].blocks[0]``. Official checkpoints keep the flat 0.6 names; ``official_block_names``
lists which timm module each flat ``blocks.N`` is, and the rules below rename by name, so the
order of a checkpoint's keys (sorted in a safetensors file) does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import re
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from ..state_dicts import Rule, add_prefix, drop_keys, indexed, rename_by_rules, strip_prefix
from .base import FeatureList, TimmEncoder, tokens_to_grid


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
        # timm-layout keys match no rule and keep their names
        return add_prefix(rename_by_rules(backbone, official_rules(module.model)), "model.")

    def reduced(self) -> "LevitEncoderConfig":
        overrides = (("embed_dim", (32, 48, 64)), ("num_heads", (2, 3, 4)), ("depth", (2, 2, 2)), ("key_dim", 8))
        return replace(self, timm_overrides=overrides, out_channels=(32, 48, 64))


# timm 0.6 -> 1.x, inside one module: ``LinearNorm`` ``c`` is ``linear`` (``bn`` keeps its name);
# ``Sequential`` slots became names (``proj.1`` / ``q.1`` -> ``.ln``; an MLP's ``0``/``2`` -> ``ln1``/``ln2``).
_LINEAR_NORM = r"(?P<ln>c|bn)\.(?P<p>weight|bias|running_mean|running_var|num_batches_tracked)"


def _linear_norm(match: re.Match) -> str:
    return ("linear" if match.group("ln") == "c" else "bn") + "." + match.group("p")


_INNER_RULES: List[Rule] = [
    (r"attention_biases", "attention_biases"),
    (rf"(?P<w>qkv|kv)\.{_LINEAR_NORM}", lambda m: f"{m.group('w')}.{_linear_norm(m)}"),
    (rf"(?P<w>q|proj)\.1\.{_LINEAR_NORM}", lambda m: f"{m.group('w')}.ln.{_linear_norm(m)}"),
    (rf"(?P<i>[02])\.{_LINEAR_NORM}", lambda m: f"ln{int(m.group('i')) // 2 + 1}.{_linear_norm(m)}"),
]


def official_block_names(levit: nn.Module) -> List[str]:
    """The timm module of each flat 0.6 ``blocks.N``, in order: per stage, the attention
    downsampling and its MLP (stages after the first), then each block's attention and MLP (0.6
    wrapped those two in ``Residual`` modules, hence their ``blocks.N.m.`` keys)."""
    names: List[str] = []
    for s, stage in enumerate(levit.stages):
        if hasattr(stage.downsample, "attn_downsample"):
            names += [f"stages.{s}.downsample.attn_downsample", f"stages.{s}.downsample.mlp"]
        for b in range(len(stage.blocks)):
            names += [f"stages.{s}.blocks.{b}.attn", f"stages.{s}.blocks.{b}.mlp"]
    return names


def official_rules(levit: nn.Module) -> List[Rule]:
    """Official (timm 0.6) LeViT backbone keys -> the keys of the timm 1.x model ``levit``."""
    return [
        (rf"patch_embed\.(?P<i>[0246])\.{_LINEAR_NORM}", lambda m: f"stem.conv{int(m.group('i')) // 2 + 1}.{_linear_norm(m)}"),
        (r"blocks\.(?P<n>\d+)\.(?:m\.)?(?P<rest>.+)", indexed(official_block_names(levit), _INNER_RULES)),
    ]


class LevitEncoder(TimmEncoder):
    def __init__(self, config: LevitEncoderConfig):
        super().__init__(config)

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
