"""Swin-L (v1) and SwinV2-L/B/T encoders (fixed, square input size).

MiDaS hooked the last block of every stage, before timm 0.6's end-of-stage downsampling. In
timm 1.x the downsampling opens the next stage, so those features are exactly the stage outputs
of ``forward_intermediates``. Official checkpoints use the 0.6 layout; timm's own checkpoint
filter for each family moves ``layers.N.downsample`` to ``layers.N+1`` and drops computed buffers.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, replace
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import WindowAttention as WindowAttentionV1
from timm.models.swin_transformer_v2 import WindowAttention as WindowAttentionV2
from torch import nn

from ..state_dicts import add_prefix, strip_prefix
from .base import FeatureList, TimmEncoder
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


class CachedBiasWindowAttention(WindowAttentionV2):
    """timm's SwinV2 window attention (same parameters, buffers and state-dict names), computed with
    two changes that leave the function unchanged:

    * the continuous position bias ``16 * sigmoid(cpb_mlp(table))[index]`` depends on the weights
      only: in inference it is computed once per device, dtype and weights version and reused
      (timm recomputes it, and gathers before the sigmoid, in every call);
    * cosine attention runs through ``F.scaled_dot_product_attention`` with the logit scale folded
      into the normalized queries and bias + shift mask as its additive mask (fused softmax, no
      separate scale/bias passes over the attention matrix); reduced precision on the CPU takes
      two batched matmuls instead, which are faster there.
    """

    @classmethod
    def adopt(cls, attn: WindowAttentionV2) -> "CachedBiasWindowAttention":
        """The same module as ``attn`` (its parameters and buffers, not copies) in this class."""
        new = cls(attn.dim, attn.window_size, attn.num_heads, qkv_bias=attn.q_bias is not None,
                  qkv_bias_separate=attn.qkv_bias_separate, pretrained_window_size=attn.pretrained_window_size,
                  device=attn.logit_scale.device, dtype=attn.logit_scale.dtype)
        new.load_state_dict(attn.state_dict(), assign=True)
        for name, buffer in attn.named_buffers(recurse=False):  # computed buffers are not in the state dict
            setattr(new, name, buffer)
        new.train(attn.training)
        return new

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) additive bias; cached while nothing records gradients."""
        # weights changed in place (load_state_dict) bump their version; tensors made under
        # inference_mode (a host may load models there) have no version counter
        key = (self.relative_coords_table.device, self.relative_coords_table.dtype,
               self.relative_coords_table.data_ptr(),
               *((p.data_ptr(), 0 if p.is_inference() else p._version, p.dtype) for p in self.cpb_mlp.parameters()))
        # a trace (OpenVINO export) records the computation instead: a cached tensor would be a
        # constant in one traced call and computed in another, and the trace check refuses that
        caching = not torch.is_grad_enabled() and not torch.jit.is_tracing()
        cached = getattr(self, "_bias_cache", None)
        if caching and cached is not None and cached[0] == key:
            return cached[1]
        table = 16 * torch.sigmoid(self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads))
        n = self.window_size[0] * self.window_size[1]
        bias = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1).contiguous()
        if caching:
            self._bias_cache = (key, bias)
        return bias

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.training or self.qkv_bias_separate or torch.jit.is_tracing():  # what timm does, unchanged
            # traced (the OpenVINO export): timm's form, the same function; the cached bias would be a
            # constant in one traced call and computed in another (the trace check refuses that), and
            # OpenVINO 2026.4's SDPA reshape fusion breaks on the windows-as-heads layout below
            return super().forward(x, mask)
        batch, n, channels = x.shape
        bias = None if self.q_bias is None else torch.cat((self.q_bias, self.k_bias, self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(batch, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        logit_scale = torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()
        q = F.normalize(q, dim=-1) * logit_scale
        k = F.normalize(k, dim=-1)
        attn_bias = self.position_bias().to(q.dtype)  # (heads, N, N)
        # 4-D (batch, heads, N, d) with a 4-D additive mask broadcast over the batch, the form that the
        # fused kernels take: shifted windows of every image share one mask, so windows and heads
        # together become the "heads" and the images the batch
        if mask is None:
            attn_mask = attn_bias.unsqueeze(0)
        else:
            windows = mask.shape[0]
            shape = (batch // windows, windows * self.num_heads, n, -1)
            attn_mask = (attn_bias.unsqueeze(0) + mask.to(q.dtype).unsqueeze(1)).view(1, windows * self.num_heads, n, n)
            q, k, v = q.reshape(shape), k.reshape(shape), v.reshape(shape)
        if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
            # measured on the CPU in bf16: two batched matmuls beat the fused kernel on these small
            # windows (SwinV2-B 1.32x, SwinV2-T 1.10x); in fp32 the fused kernel is as fast or faster
            out = torch.softmax(q @ k.transpose(-2, -1) + attn_mask, dim=-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=1.0)
        out = out.reshape(batch, self.num_heads, n, -1)
        return self.proj(out.transpose(1, 2).reshape(batch, n, channels))


class SwinEncoder(TimmEncoder):
    def __init__(self, config: SwinEncoderConfig):
        super().__init__(config)
        self.model.head = nn.Identity()  # classifier weights are not part of the depth model
        for module in list(self.model.modules()):  # SwinV2 blocks: the attention with a cached bias
            if isinstance(getattr(module, "attn", None), WindowAttentionV2):
                module.attn = CachedBiasWindowAttention.adopt(module.attn)
            elif isinstance(module, WindowAttentionV1):
                # timm leaves the fused kernel off for Swin v1 (experimental there); it computes the same
                # function and is faster (CPU fp32 1.06x, bf16 equal; on a GPU the fused kernels)
                module.fused_attn = True

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
