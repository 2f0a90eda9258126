"""ViT-L/16 (``dpt_large_384``) and ViT-B/16 + ResNet-50 (``dpt_hybrid_384``) encoders.

The token path composes the timm model's own modules (patch projection, class token, blocks);
only the position-embedding resampling is MiDaS' own: bilinear, ``align_corners=False``,
without antialiasing (timm's ``dynamic_img_size`` resamples bicubically with antialiasing,
which is a different function).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..state_dicts import Rule, drop_keys
from .base import FeatureList, TimmEncoder, float32_or_wider, tokens_to_grid
from .transformers_dpt import MODEL, QKV, TOKEN_BLOCK_RULES, WB, TransformersBackbone, block_rules


class ProjectReadout(nn.Module):
    """MiDaS ``readout="project"``: concat every token with the class token, Linear(2C->C), GELU."""

    def __init__(self, dim: int):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor, cls_token: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat((tokens, cls_token.expand_as(tokens)), dim=-1))


def _resample_layer(channels: int, factor: float) -> nn.Module | None:
    if factor == 4:
        return nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=4)
    if factor == 2:
        return nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
    if factor == 1:
        return None
    if factor == 0.5:
        return nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
    raise ValueError(f"unsupported reassemble factor {factor}")


READOUTS = ("project", "ignore")


class Reassemble(nn.Module):
    """MiDaS ``act_postprocessN``: readout, tokens to a grid, 1x1 conv, resample.

    Children are named ``0`` (readout), ``3`` (1x1 conv) and ``4`` (resample), the indices they
    have in MiDaS' Sequential, whose parameter-free steps 1-2 (transpose, unflatten) are done here.
    ``readout="ignore"`` drops the class token instead (no ``0``): Depth Anything's ``DPTHead``
    with ``use_clstoken=False``, whose ``projects``/``resize_layers`` are ``3``/``4``.
    """

    def __init__(self, dim: int, out_channels: int, factor: float, readout: str = "project"):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if readout == "project":
            self.add_module("0", ProjectReadout(dim))
        self.add_module("3", nn.Conv2d(dim, out_channels, kernel_size=1))
        resample = _resample_layer(out_channels, factor)
        if resample is not None:
            self.add_module("4", resample)

    def forward(self, tokens: torch.Tensor, cls_token: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        x = self._modules["0"](tokens, cls_token) if "0" in self._modules else tokens
        x = tokens_to_grid(x, grid)
        x = self._modules["3"](x)
        if "4" in self._modules:
            x = self._modules["4"](x)
        return x


def resize_pos_embed(pos_embed: torch.Tensor, grid: Tuple[int, int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """MiDaS' ``_resize_pos_embed``: bilinear resampling of the grid part, prefix kept."""
    prefix, posemb = pos_embed[:, :num_prefix_tokens], pos_embed[0, num_prefix_tokens:]
    old = int(math.sqrt(posemb.shape[0]))
    if (old, old) == tuple(grid):
        return pos_embed
    posemb = posemb.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    posemb = F.interpolate(float32_or_wider(posemb), size=grid, mode="bilinear", align_corners=False).to(pos_embed.dtype)
    posemb = posemb.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)
    return torch.cat([prefix, posemb], dim=1)


@dataclass(frozen=True)
class ViTEncoderConfig:
    """A ViT encoder with DPT reassembly.

    ``hooks``: block indices read as feature levels; ``cnn_levels`` of the first levels come
    instead from the ResNet stages of a hybrid patch embedding (DPT-Hybrid: 2).
    ``resample``: the reassemble factor of each level.
    """

    timm_name: str
    hooks: Tuple[int, ...]
    out_channels: Tuple[int, ...]
    resample: Tuple[float, ...] = (4, 2, 1, 0.5)
    cnn_levels: int = 0
    patch_size: int = 16
    timm_overrides: Tuple[Tuple[str, Any], ...] = ()

    def build(self) -> nn.Module:
        return ViTEncoder(self)

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]:
        return drop_keys(state_dict, prefixes=("model.head.",))

    def transformers_backbone(self) -> Optional[TransformersBackbone]:
        return TRANSFORMERS_HYBRID if self.cnn_levels else TRANSFORMERS_VIT

    def reduced(self) -> "ViTEncoderConfig":
        overrides = (("embed_dim", 32), ("depth", 4), ("num_heads", 2))
        return replace(self, hooks=(0, 1, 2, 3), timm_overrides=overrides, out_channels=self.reduced_channels())

    def reduced_channels(self) -> Tuple[int, ...]:
        # CNN levels keep their ResNet widths; token levels become small.
        return self.out_channels[: self.cnn_levels] + (8, 16, 32, 32)[self.cnn_levels :]


class ViTEncoder(TimmEncoder):
    def __init__(self, config: ViTEncoderConfig):
        super().__init__(config)
        dim = self.model.embed_dim
        for level in range(config.cnn_levels, len(config.hooks)):
            self.add_module(
                f"act_postprocess{level + 1}",
                Reassemble(dim, config.out_channels[level], config.resample[level]),
            )

    def forward(self, x: torch.Tensor) -> FeatureList:
        cfg = self.config
        model = self.model
        grid = (x.shape[-2] // cfg.patch_size, x.shape[-1] // cfg.patch_size)
        features: List[torch.Tensor] = []
        if cfg.cnn_levels:
            cnn = model.patch_embed.backbone
            x = cnn.stem(x)
            for i, stage in enumerate(cnn.stages):
                x = stage(x)
                if i < cfg.cnn_levels:
                    features.append(x)
            x = cnn.norm(x)
        x = model.patch_embed.proj(x)  # (B, C, h, w)
        grid = tuple(x.shape[-2:])
        tokens = x.flatten(2).transpose(1, 2)
        tokens = torch.cat((model.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = model.pos_drop(tokens + resize_pos_embed(model.pos_embed, grid))
        tokens = model.norm_pre(tokens)
        hooks = cfg.hooks[cfg.cnn_levels :]
        for i, block in enumerate(model.blocks[: max(hooks) + 1]):
            tokens = block(tokens)
            if i in hooks:
                level = len(features)
                reassemble = getattr(self, f"act_postprocess{level + 1}")
                features.append(reassemble(tokens[:, 1:], tokens[:, :1], grid))
        return features


# ---------------------------------------------------------------------------------------------
# transformers DPT checkpoints (``Intel/dpt-large``, ``Intel/dpt-hybrid-midas``) -> official keys.
# ---------------------------------------------------------------------------------------------

_LAYER = r"dpt\.encoder\.layer\.(?P<n>\d+)\."
_TOKEN_RULES: List[Rule] = [
    (rf"dpt\.layernorm\.{WB}", MODEL + r"norm.\1"),
    *block_rules(_LAYER, MODEL + r"blocks.\g<n>.", TOKEN_BLOCK_RULES),
]
_QKV = (_LAYER + r"attention\.attention\." + QKV, MODEL + r"blocks.\g<n>.attn.", "fused")

TRANSFORMERS_VIT = TransformersBackbone(
    name="ViT",
    label="ViT (dpt_large_384)",
    key_prefixes=("dpt.",),
    excluded_prefixes=("dpt.embeddings.backbone.",),
    rules=(
        (r"dpt\.embeddings\.cls_token", MODEL + "cls_token"),
        (r"dpt\.embeddings\.position_embeddings", MODEL + "pos_embed"),
        (rf"dpt\.embeddings\.patch_embeddings\.projection\.{WB}", MODEL + r"patch_embed.proj.\1"),
        *_TOKEN_RULES,
    ),
    qkv=_QKV,
)

_BIT = r"dpt\.embeddings\.backbone\.bit\."
_RESNET = MODEL + "patch_embed.backbone."
TRANSFORMERS_HYBRID = TransformersBackbone(
    name="ViT-hybrid",
    label="ViT-hybrid (dpt_hybrid_384)",
    key_prefixes=("dpt.embeddings.backbone.",),
    rules=(
        (r"dpt\.embeddings\.cls_token", MODEL + "cls_token"),
        (r"dpt\.embeddings\.position_embeddings", MODEL + "pos_embed"),
        (rf"dpt\.embeddings\.projection\.{WB}", MODEL + r"patch_embed.proj.\1"),
        (_BIT + r"embedder\.convolution\.weight", _RESNET + "stem.conv.weight"),
        (_BIT + rf"embedder\.norm\.{WB}", _RESNET + r"stem.norm.\1"),
        (
            _BIT + r"encoder\.stages\.(\d+)\.layers\.(\d+)\."
            + rf"((?:conv[123]|norm[123]|downsample\.conv|downsample\.norm)\.{WB})",
            _RESNET + r"stages.\1.blocks.\2.\3",
        ),
        *_TOKEN_RULES,
    ),
    qkv=_QKV,
)
