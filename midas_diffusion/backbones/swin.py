"""Swin-L (v1) and SwinV2-L/B/T encoders (fixed, square input size).

MiDaS hooked the last block of every stage, before timm 0.6's end-of-stage downsampling. In
timm 1.x the downsampling opens the next stage, so those features are exactly the stage outputs
of ``forward_intermediates``. Official checkpoints use the 0.6 layout; timm's own checkpoint
filter for each family moves ``layers.N.downsample`` to ``layers.N+1`` and drops computed buffers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ..state_dicts import add_prefix, strip_prefix
from .base import FeatureList, create_timm_model
from .transformers_dpt import MODEL, QKV, TOKEN_BLOCK_RULES, WB, TransformersBackbone, block_rules


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

    def transformers_backbone(self) -> Optional[TransformersBackbone]:
        # Intel published SwinV2 DPT checkpoints only (no Swin v1)
        return TRANSFORMERS_SWINV2 if self.timm_module.endswith("swin_transformer_v2") else None

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


# ---------------------------------------------------------------------------------------------
# transformers DPT checkpoints (``Intel/dpt-swinv2-*``) -> official keys.
# ---------------------------------------------------------------------------------------------

_BLOCK = r"backbone\.encoder\.layers\.(?P<s>\d+)\.blocks\.(?P<b>\d+)\."
_BLOCK_RULES = TOKEN_BLOCK_RULES + [
    (r"attention\.self\.logit_scale", "attn.logit_scale"),
    (rf"attention\.self\.continuous_position_bias_mlp\.(?P<i>\d+)\.{WB}", r"attn.cpb_mlp.\g<i>.\g<p>"),
]
TRANSFORMERS_SWINV2 = TransformersBackbone(
    name="SwinV2",
    label="SwinV2 (dpt_swin2_*)",
    key_prefixes=("backbone.encoder.layers.",),
    rules=(
        (rf"backbone\.embeddings\.patch_embeddings\.projection\.{WB}", MODEL + r"patch_embed.proj.\1"),
        (rf"backbone\.embeddings\.norm\.{WB}", MODEL + r"patch_embed.norm.\1"),
        # transformers keeps the 0.6-era placement: a stage ends with its downsampling.
        (
            rf"backbone\.encoder\.layers\.(\d+)\.downsample\.(reduction|norm)\.{WB}",
            MODEL + r"layers.\1.downsample.\2.\3",
        ),
        *block_rules(_BLOCK, MODEL + r"layers.\g<s>.blocks.\g<b>.", _BLOCK_RULES),
    ),
    qkv=(_BLOCK + r"attention\.self\." + QKV, MODEL + r"layers.\g<s>.blocks.\g<b>.attn.", "split"),
    # transformers' SwinV2 backbone has no final norm (MiDaS never uses it)
    identity_norm=MODEL + "norm",
)
