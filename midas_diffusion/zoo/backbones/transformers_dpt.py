"""The record an encoder family fills in to read transformers ``DPTForDepthEstimation`` checkpoints.

A family that has Intel DPT checkpoints on the hub (ViT, ViT-hybrid, BEiT, SwinV2) defines one
``TransformersBackbone`` next to its code; ``convert_transformers.convert_transformers_dpt`` is the
one driver that applies it (plus the neck and head rules every family shares). Rules rename
transformers' backbone keys to the official MiDaS keys (``pretrained.model.*``, timm 0.6 names);
the family's usual ``filter_checkpoint`` then takes it from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, List, Optional, Sequence, Tuple

from ..state_dicts import Rule

WB = r"(weight|bias)"
MODEL = "pretrained.model."
# One split attention projection: ``query|key|value`` and ``weight|bias``.
QKV = r"(?P<role>query|key|value)\.(?P<p>weight|bias)"

# Sub-keys of a transformers ViT/BEiT layer (``...layer.N.``) -> timm ``blocks.N.``.
TOKEN_BLOCK_RULES: List[Tuple[str, str]] = [
    (rf"attention\.output\.dense\.{WB}", r"attn.proj.\g<p>"),
    (rf"intermediate\.dense\.{WB}", r"mlp.fc1.\g<p>"),
    (rf"output\.dense\.{WB}", r"mlp.fc2.\g<p>"),
    (rf"layernorm_before\.{WB}", r"norm1.\g<p>"),
    (rf"layernorm_after\.{WB}", r"norm2.\g<p>"),
]


def block_rules(hf_prefix: str, timm_prefix: str, sub_rules: Sequence[Tuple[str, str]]) -> List[Rule]:
    """Rules for every sub-key of a numbered block; ``hf_prefix``/``timm_prefix`` may hold groups."""
    rules: List[Rule] = []
    for hf_sub, timm_sub in sub_rules:
        pattern = hf_prefix + hf_sub.replace(WB, f"(?P<p>{WB[1:-1]})")
        rules.append((pattern, timm_prefix + timm_sub))
    return rules


@dataclass(frozen=True)
class TransformersBackbone:
    """How one family's transformers DPT backbone keys become official MiDaS keys.

    ``name``: the family as users know it (``"BEiT"``); ``label``: with the zoo models it fits.
    A checkpoint is of this family when a key starts with one of ``key_prefixes`` and none with
    ``excluded_prefixes``. ``rules``: backbone key renames. ``qkv``: (pattern, timm prefix
    template, bias style) of the split attention projections that are fused back into timm's
    ``qkv``; bias style ``"fused"`` (one ``qkv.bias``, ViT) or ``"split"`` (``q_bias`` and
    ``v_bias``, no key bias: BEiT, SwinV2). ``identity_norm``: the model's unused final norm that
    transformers' backbone lacks, filled with an identity LayerNorm. ``saved_names``: renames
    (``re.sub`` pattern, replacement) from in-memory module names of newer transformers versions
    to the names ``save_pretrained`` writes, applied before ``rules``.
    """

    name: str
    label: str
    key_prefixes: Tuple[str, ...]
    rules: Tuple[Rule, ...]
    qkv: Tuple[str, str, str]
    excluded_prefixes: Tuple[str, ...] = ()
    identity_norm: Optional[str] = None
    saved_names: Tuple[Tuple[str, str], ...] = ()

    def matches(self, keys: Collection[str]) -> bool:
        def has(prefixes: Tuple[str, ...]) -> bool:
            return any(k.startswith(p) for k in keys for p in prefixes)

        return has(self.key_prefixes) and not has(self.excluded_prefixes)
