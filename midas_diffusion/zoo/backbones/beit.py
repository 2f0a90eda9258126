"""BEiT-L/16 and BEiT-B/16 encoders at any aspect ratio.

timm's ``Beit`` has no ``dynamic_img_size``: its relative-position bias is built for one
window. MiDaS resamples the bias table for each input window; this module does the same with
its own attention and block functions over the timm modules' parameters (nothing in timm is
replaced or patched, so a plain timm ``Beit`` built elsewhere is unaffected).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..state_dicts import drop_keys
from .base import FeatureList, TimmEncoder, float32_or_wider
from .transformers_dpt import MODEL, QKV, TOKEN_BLOCK_RULES, WB, TransformersBackbone, block_rules
from .vit import Reassemble


@lru_cache(maxsize=32)
def relative_position_index(window: Tuple[int, int], device: str = "cpu") -> torch.Tensor:
    """BEiT's index into the bias table for a ``window`` of patches plus the class token."""
    h, w = window
    num_relative_distance = (2 * h - 1) * (2 * w - 1) + 3
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    relative[:, :, 0] += h - 1
    relative[:, :, 1] += w - 1
    relative[:, :, 0] *= 2 * w - 1
    index = torch.zeros((h * w + 1,) * 2, dtype=torch.long)
    index[1:, 1:] = relative.sum(-1)
    index[0, 0:] = num_relative_distance - 3
    index[0:, 0] = num_relative_distance - 2
    index[0, 0] = num_relative_distance - 1
    return index.to(device)  # cached per device: no host-to-device copy on every forward


def relative_position_bias(attn: nn.Module, window: Tuple[int, int]) -> torch.Tensor:
    """The (1, heads, N, N) bias of ``attn`` resampled to ``window`` (MiDaS ``_get_rel_pos_bias``).

    The (2Wh-1)x(2Ww-1) grid of the table is resized bilinearly; the three class-token rows stay.
    """
    table = attn.relative_position_bias_table
    old_h, old_w = (2 * s - 1 for s in attn.window_size)
    new_h, new_w = 2 * window[0] - 1, 2 * window[1] - 1
    grid, cls_rows = table[: old_h * old_w], table[old_h * old_w :]
    if (old_h, old_w) != (new_h, new_w):
        grid = grid.reshape(1, old_w, old_h, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(float32_or_wider(grid), size=(new_h, new_w), mode="bilinear", align_corners=False).to(table.dtype)
        grid = grid.permute(0, 2, 3, 1).reshape(new_h * new_w, -1)
    table = torch.cat([grid, cls_rows])
    n = window[0] * window[1] + 1
    index = relative_position_index(tuple(window), str(table.device))
    bias = table[index.view(-1)].view(n, n, -1)
    # contiguous: SDPA's fused kernels need a unit-stride last dimension in the mask
    return bias.permute(2, 0, 1).contiguous().unsqueeze(0)


def attention(attn: nn.Module, x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """BEiT attention with the bias for ``window`` (fused scaled-dot-product attention)."""
    b, n, _ = x.shape
    bias = None
    if attn.q_bias is not None:
        bias = torch.cat((attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias))
    qkv = F.linear(x, attn.qkv.weight, bias).reshape(b, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    mask = relative_position_bias(attn, window).to(q.dtype) if attn.relative_position_bias_table is not None else None
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
    return attn.proj(out.transpose(1, 2).reshape(b, n, -1))


def block(blk: nn.Module, x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    if blk.gamma_1 is None:
        x = x + blk.drop_path1(attention(blk.attn, blk.norm1(x), window))
        return x + blk.drop_path2(blk.mlp(blk.norm2(x)))
    x = x + blk.drop_path1(blk.gamma_1 * attention(blk.attn, blk.norm1(x), window))
    return x + blk.drop_path2(blk.gamma_2 * blk.mlp(blk.norm2(x)))


@dataclass(frozen=True)
class BeitEncoderConfig:
    timm_name: str
    hooks: Tuple[int, ...]
    out_channels: Tuple[int, ...]
    resample: Tuple[float, ...] = (4, 2, 1, 0.5)
    patch_size: int = 16
    timm_overrides: Tuple[Tuple[str, Any], ...] = ()

    def build(self) -> nn.Module:
        return BeitEncoder(self)

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]:
        # relative_position_index is computed per window; the classifier is unused.
        return drop_keys(state_dict, prefixes=("model.head.",), suffixes=("relative_position_index",))

    def transformers_backbone(self) -> Optional[TransformersBackbone]:
        return TRANSFORMERS_BEIT

    def reduced(self) -> "BeitEncoderConfig":
        overrides = (("embed_dim", 32), ("depth", 4), ("num_heads", 2))
        return replace(self, hooks=(0, 1, 2, 3), timm_overrides=overrides, out_channels=(8, 16, 32, 32))


class BeitEncoder(TimmEncoder):
    def __init__(self, config: BeitEncoderConfig):
        super().__init__(config)
        dim = self.model.embed_dim
        for level, (channels, factor) in enumerate(zip(config.out_channels, config.resample)):
            self.add_module(f"act_postprocess{level + 1}", Reassemble(dim, channels, factor))

    def forward(self, x: torch.Tensor) -> FeatureList:
        model = self.model
        x = model.patch_embed.proj(x)
        window = tuple(x.shape[-2:])
        tokens = model.patch_embed.norm(x.flatten(2).transpose(1, 2))
        tokens = torch.cat((model.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        if model.pos_embed is not None:
            raise ValueError("MiDaS BEiT encoders use relative position bias only")
        tokens = model.pos_drop(tokens)
        features: List[torch.Tensor] = []
        hooks = self.config.hooks
        for i, blk in enumerate(model.blocks[: max(hooks) + 1]):
            tokens = block(blk, tokens, window)
            if i in hooks:
                reassemble = getattr(self, f"act_postprocess{len(features) + 1}")
                features.append(reassemble(tokens[:, 1:], tokens[:, :1], window))
        return features


# ---------------------------------------------------------------------------------------------
# transformers DPT checkpoints (``Intel/dpt-beit-*``) -> official keys.
# ---------------------------------------------------------------------------------------------

_LAYER = r"backbone\.encoder\.layer\.(?P<n>\d+)\."
TRANSFORMERS_BEIT = TransformersBackbone(
    name="BEiT",
    label="BEiT (dpt_beit_*)",
    key_prefixes=("backbone.encoder.layer.", "backbone.beit."),
    rules=(
        (r"backbone\.embeddings\.cls_token", MODEL + "cls_token"),
        (rf"backbone\.embeddings\.patch_embeddings\.projection\.{WB}", MODEL + r"patch_embed.proj.\1"),
        (_LAYER + r"lambda_1", MODEL + r"blocks.\g<n>.gamma_1"),
        (_LAYER + r"lambda_2", MODEL + r"blocks.\g<n>.gamma_2"),
        (
            _LAYER + r"attention\.attention\.relative_position_bias\.relative_position_bias_table",
            MODEL + r"blocks.\g<n>.attn.relative_position_bias_table",
        ),
        *block_rules(_LAYER, MODEL + r"blocks.\g<n>.", TOKEN_BLOCK_RULES),
    ),
    qkv=(_LAYER + r"attention\.attention\." + QKV, MODEL + r"blocks.\g<n>.attn.", "split"),
    # transformers' BEiT backbone has no final norm (MiDaS never uses it)
    identity_norm=MODEL + "fc_norm",
    # transformers >= 5 names BEiT modules differently in memory (``model.state_dict()``), though
    # ``save_pretrained`` writes the names above.
    saved_names=(
        (r"^backbone\.beit\.embeddings\.", "backbone.embeddings."),
        (r"^backbone\.beit\.layers\.(\d+)\.attention\.q_proj\.", r"backbone.encoder.layer.\1.attention.attention.query."),
        (r"^backbone\.beit\.layers\.(\d+)\.attention\.k_proj\.", r"backbone.encoder.layer.\1.attention.attention.key."),
        (r"^backbone\.beit\.layers\.(\d+)\.attention\.v_proj\.", r"backbone.encoder.layer.\1.attention.attention.value."),
        (r"^backbone\.beit\.layers\.(\d+)\.attention\.o_proj\.", r"backbone.encoder.layer.\1.attention.output.dense."),
        (r"^backbone\.beit\.layers\.(\d+)\.mlp\.fc1\.", r"backbone.encoder.layer.\1.intermediate.dense."),
        (r"^backbone\.beit\.layers\.(\d+)\.mlp\.fc2\.", r"backbone.encoder.layer.\1.output.dense."),
        (
            r"^backbone\.beit\.layers\.(\d+)\.relative_position_bias\.",
            r"backbone.encoder.layer.\1.attention.attention.relative_position_bias.",
        ),
        (r"^backbone\.beit\.layers\.(\d+)\.", r"backbone.encoder.layer.\1."),
    ),
)
