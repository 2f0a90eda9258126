"""DINOv2 ViT-S/B/L/14 encoders (Depth Anything V2), composed from timm's ``vit_*_patch14_dinov2``.

timm's DINOv2 models hold the same tensors as Depth Anything's ``pretrained.*`` (``mask_token``
aside, which inference never uses). The token path calls the timm model's own modules (patch
projection, class token, blocks, final norm); what is the original's own:

- the position-embedding resampling of DINOv2 (``interpolate_pos_encoding``): bicubic with
  ``scale_factor = (n + 0.1) / sqrt(N)`` per axis, no antialiasing, computed in float32 (also in
  a float64 model, as the original does), and skipped only for a square input of the training grid.
  timm's ``dynamic_img_size`` resamples to a size instead, a function ~0.06 away at 392x518;
  transformers' ``Dinov2`` does the same;
- the intermediate layers (``get_intermediate_layers(..., return_class_token=True)``): the
  tokens after the hooked blocks, each through the final norm, class token split off;
- the reassembly (``DPTHead.projects``/``resize_layers``, optional class-token readout): the ViT
  family's ``Reassemble``, so the encoder gives the decoder NCHW levels as every family does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..state_dicts import Rule, apply_rules
from .base import FeatureList, TimmEncoder
from .transformers_dpt import QKV, WB, TransformersBackbone, block_rules
from .vit import Reassemble

PATCH = 14
# DINOv2's offset "to avoid floating point error in the interpolation" (facebookresearch/dino#8)
INTERPOLATE_OFFSET = 0.1


def resample_pos_embed_dinov2(pos_embed: torch.Tensor, grid: Tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """DINOv2's ``interpolate_pos_encoding`` for a ``grid`` of patches, in ``dtype``.

    ``pos_embed``: ``(1, 1 + N, C)``, class position first, ``N`` a square. The grid part is
    resampled bicubically by the scale factors ``(grid + 0.1) / sqrt(N)`` (PyTorch then maps output
    to input coordinates by those factors, not by the sizes), in float32, without antialiasing.
    """
    n = pos_embed.shape[1] - 1
    side = int(math.sqrt(n))
    if side * side != n:
        raise ValueError(f"position embedding of {n} patches is not a square grid")
    if grid[0] * grid[1] == n and grid[0] == grid[1]:
        return pos_embed.to(dtype)
    table = pos_embed.float()
    cls_pos, patch_pos = table[:, :1], table[:, 1:]
    dim = table.shape[-1]
    scale = ((grid[0] + INTERPOLATE_OFFSET) / math.sqrt(n), (grid[1] + INTERPOLATE_OFFSET) / math.sqrt(n))
    patch_pos = F.interpolate(
        patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2), scale_factor=scale, mode="bicubic", antialias=False
    )
    if tuple(patch_pos.shape[-2:]) != tuple(grid):
        raise ValueError(f"position embedding resampled to {tuple(patch_pos.shape[-2:])}, expected {tuple(grid)}")
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim)
    return torch.cat((cls_pos, patch_pos), dim=1).to(dtype)


@dataclass(frozen=True)
class DINOv2EncoderConfig:
    """A DINOv2 encoder with DPT reassembly (Depth Anything).

    ``timm_name``: ``vit_{small,base,large}_patch14_dinov2``; ``hooks``: the blocks read as
    levels (the original's ``intermediate_layer_idx``); ``out_channels``: the reassembly's widths
    (the original's ``out_channels``); ``readout``: ``"ignore"`` (``use_clstoken=False``, every
    released model) or ``"project"``.
    """

    timm_name: str
    hooks: Tuple[int, ...]
    out_channels: Tuple[int, ...]
    resample: Tuple[float, ...] = (4, 2, 1, 0.5)
    readout: str = "ignore"
    timm_overrides: Tuple[Tuple[str, Any], ...] = ()

    def build(self) -> nn.Module:
        return DINOv2Encoder(self)

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]:
        """Official ``pretrained.*`` keys (DINOv2's names) -> ``model.*`` (the timm model);
        ``mask_token`` (masked training only) is dropped; our own keys pass as they are."""
        out = {}
        for key, value in state_dict.items():
            if key == "mask_token":
                continue
            out[apply_rules(key, _OFFICIAL_RULES) or key] = value
        return out

    def transformers_backbone(self) -> Optional[TransformersBackbone]:
        return TRANSFORMERS_DINOV2

    def reduced(self) -> "DINOv2EncoderConfig":
        overrides = (("embed_dim", 32), ("depth", 4), ("num_heads", 2), ("img_size", 70))
        return replace(self, hooks=(0, 1, 2, 3), timm_overrides=overrides, out_channels=(8, 16, 32, 32))


# Official DINOv2 names relative to ``pretrained.``; ``act_postprocess*`` (the reassembly, renamed
# from ``depth_head.*`` by the model's rules) and ``model.*`` (our own layout) are already ours.
_OFFICIAL_RULES: Tuple[Rule, ...] = (
    (r"(cls_token|pos_embed|patch_embed\..*|blocks\..*|norm\..*)", r"model.\1"),
)


class DINOv2Encoder(TimmEncoder):
    def __init__(self, config: DINOv2EncoderConfig):
        super().__init__(config)
        dim = self.model.embed_dim
        for level, channels in enumerate(config.out_channels):
            self.add_module(
                f"act_postprocess{level + 1}",
                Reassemble(dim, channels, config.resample[level], readout=config.readout),
            )

    def forward(self, x: torch.Tensor) -> FeatureList:
        model = self.model
        x = model.patch_embed.proj(x)  # (B, C, h, w)
        # python ints: the resampling's scale factors are floats of the grid (a traced export, e.g.
        # OpenVINO, is then valid for the size it was traced at)
        grid = (int(x.shape[-2]), int(x.shape[-1]))
        tokens = model.patch_embed.norm(x.flatten(2).transpose(1, 2))
        tokens = torch.cat((model.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens), dim=1)
        tokens = tokens + resample_pos_embed_dinov2(model.pos_embed, grid, tokens.dtype)
        tokens = model.norm_pre(model.pos_drop(tokens))
        hooks = self.config.hooks
        features: List[torch.Tensor] = []
        for i, block in enumerate(model.blocks[: max(hooks) + 1]):
            tokens = block(tokens)
            if i in hooks:
                normed = model.norm(tokens)
                reassemble = getattr(self, f"act_postprocess{len(features) + 1}")
                features.append(reassemble(normed[:, 1:], normed[:, :1], grid))
        return features


# ---------------------------------------------------------------------------------------------
# transformers ``DepthAnythingForDepthEstimation`` (``depth-anything/*-hf``) -> official keys.
# ---------------------------------------------------------------------------------------------

_LAYER = r"backbone\.encoder\.layer\.(?P<n>\d+)\."
_BLOCK_RULES = [
    (rf"attention\.output\.dense\.{WB}", r"attn.proj.\g<p>"),
    (rf"mlp\.fc1\.{WB}", r"mlp.fc1.\g<p>"),
    (rf"mlp\.fc2\.{WB}", r"mlp.fc2.\g<p>"),
    (rf"norm1\.{WB}", r"norm1.\g<p>"),
    (rf"norm2\.{WB}", r"norm2.\g<p>"),
]

TRANSFORMERS_DINOV2 = TransformersBackbone(
    name="DINOv2",
    label="DINOv2 (depth_anything_v2_*)",
    # every transformers DINOv2 layer has a layer scale; BEiT's is ``lambda_1``
    key_prefixes=("backbone.encoder.layer.0.layer_scale1.",),
    rules=(
        (r"backbone\.embeddings\.cls_token", "pretrained.cls_token"),
        (r"backbone\.embeddings\.mask_token", "pretrained.mask_token"),
        (r"backbone\.embeddings\.position_embeddings", "pretrained.pos_embed"),
        (rf"backbone\.embeddings\.patch_embeddings\.projection\.{WB}", r"pretrained.patch_embed.proj.\1"),
        (rf"backbone\.layernorm\.{WB}", r"pretrained.norm.\1"),
        (_LAYER + r"layer_scale(?P<s>[12])\.lambda1", r"pretrained.blocks.\g<n>.ls\g<s>.gamma"),
        *block_rules(_LAYER, r"pretrained.blocks.\g<n>.", _BLOCK_RULES),
    ),
    qkv=(_LAYER + r"attention\.attention\." + QKV, r"pretrained.blocks.\g<n>.attn.", "fused"),
)
