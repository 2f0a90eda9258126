"""transformers ``DPTForDepthEstimation`` state dicts -> the official MiDaS key layout.

The Intel DPT checkpoints on the Hugging Face hub (``Intel/dpt-large``, ``Intel/dpt-hybrid-midas``,
``Intel/dpt-beit-*``, ``Intel/dpt-swinv2-*``) are the MiDaS weights renamed by transformers'
conversion scripts. This module undoes that renaming; it only moves tensors (and re-fuses the
split attention projections) and never imports transformers. The result is what an official
MiDaS ``.pt`` of the same model holds, so ``checkpoints.convert_official`` then applies the
encoder family's usual filter.

Mapping (checked against ``transformers/models/dpt/modeling_dpt.py`` and ``save_pretrained``):

- ``neck.reassemble_stage.readout_projects.{i-1}.0`` -> ``pretrained.act_postprocess{i}.0.project.0``;
  ``neck.reassemble_stage.layers.{i-1}.projection`` / ``.resize`` -> ``pretrained.act_postprocess{i}.3`` / ``.4``;
- ``neck.convs.{i-1}`` -> ``scratch.layer{i}_rn``;
- ``neck.fusion_stage.layers.{L-i}`` -> ``scratch.refinenet{i}`` (``L`` levels), with
  ``projection`` -> ``out_conv`` and ``residual_layer{1,2}.convolution{1,2}`` -> ``resConfUnit{1,2}.conv{1,2}``;
- ``head.head.{0,2,4}`` -> ``scratch.output_conv.{0,2,4}``;
- the backbone per family (ViT ``dpt.*``, hybrid ``dpt.embeddings.backbone.bit.*``, BEiT and SwinV2
  ``backbone.*``), with ``query``/``key``/``value`` fused back into timm's ``qkv``.

transformers' BEiT and SwinV2 backbones have no final norm, which MiDaS never uses; the zoo model's
unused ``fc_norm`` (BEiT) or ``norm`` (SwinV2) is filled with an identity LayerNorm.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .backbones.beit import BeitEncoder
from .backbones.swin import SwinEncoder
from .backbones.vit import ViTEncoder
from .checkpoints import CheckpointError

StateDict = Dict[str, torch.Tensor]
# (full-match pattern, replacement template or function of the match)
Rule = Tuple[str, Union[str, Callable[[re.Match], str]]]

FAMILY_NAMES = {
    "vit": "ViT (dpt_large_384)",
    "hybrid": "ViT-hybrid (dpt_hybrid_384)",
    "beit": "BEiT (dpt_beit_*)",
    "swinv2": "SwinV2 (dpt_swin2_*)",
}

_WB = r"(weight|bias)"
_MODEL = "pretrained.model."

# Sub-keys of a transformers ViT/BEiT layer (``...layer.N.``) -> timm ``blocks.N.``.
_TOKEN_BLOCK_RULES: List[Tuple[str, str]] = [
    (rf"attention\.output\.dense\.{_WB}", r"attn.proj.\g<p>"),
    (rf"intermediate\.dense\.{_WB}", r"mlp.fc1.\g<p>"),
    (rf"output\.dense\.{_WB}", r"mlp.fc2.\g<p>"),
    (rf"layernorm_before\.{_WB}", r"norm1.\g<p>"),
    (rf"layernorm_after\.{_WB}", r"norm2.\g<p>"),
]

# Sub-keys of a transformers SwinV2 block (``...layers.S.blocks.B.``) -> timm 0.6 ``layers.S.blocks.B.``.
_SWIN_BLOCK_RULES: List[Tuple[str, str]] = _TOKEN_BLOCK_RULES + [
    (r"attention\.self\.logit_scale", "attn.logit_scale"),
    (rf"attention\.self\.continuous_position_bias_mlp\.(?P<i>\d+)\.{_WB}", r"attn.cpb_mlp.\g<i>.\g<p>"),
]


def _block_rules(hf_prefix: str, timm_prefix: str, sub_rules: Sequence[Tuple[str, str]]) -> List[Rule]:
    """Rules for every sub-key of a numbered block; ``hf_prefix``/``timm_prefix`` may hold groups."""
    rules: List[Rule] = []
    for hf_sub, timm_sub in sub_rules:
        pattern = hf_prefix + hf_sub.replace(_WB, f"(?P<p>{_WB[1:-1]})")
        rules.append((pattern, timm_prefix + timm_sub))
    return rules


# ---------------------------------------------------------------------------------------------
# Backbone rules per family.
# ---------------------------------------------------------------------------------------------

_VIT_LAYER = r"dpt\.encoder\.layer\.(?P<n>\d+)\."
_VIT_RULES: List[Rule] = [
    (r"dpt\.embeddings\.cls_token", _MODEL + "cls_token"),
    (r"dpt\.embeddings\.position_embeddings", _MODEL + "pos_embed"),
    (rf"dpt\.embeddings\.patch_embeddings\.projection\.{_WB}", _MODEL + r"patch_embed.proj.\1"),
    (rf"dpt\.layernorm\.{_WB}", _MODEL + r"norm.\1"),
    *_block_rules(_VIT_LAYER, _MODEL + r"blocks.\g<n>.", _TOKEN_BLOCK_RULES),
]

_BIT = r"dpt\.embeddings\.backbone\.bit\."
_RESNET = _MODEL + "patch_embed.backbone."
_HYBRID_RULES: List[Rule] = [
    (r"dpt\.embeddings\.cls_token", _MODEL + "cls_token"),
    (r"dpt\.embeddings\.position_embeddings", _MODEL + "pos_embed"),
    (rf"dpt\.embeddings\.projection\.{_WB}", _MODEL + r"patch_embed.proj.\1"),
    (_BIT + r"embedder\.convolution\.weight", _RESNET + "stem.conv.weight"),
    (_BIT + rf"embedder\.norm\.{_WB}", _RESNET + r"stem.norm.\1"),
    (
        _BIT + r"encoder\.stages\.(\d+)\.layers\.(\d+)\."
        + rf"((?:conv[123]|norm[123]|downsample\.conv|downsample\.norm)\.{_WB})",
        _RESNET + r"stages.\1.blocks.\2.\3",
    ),
    (rf"dpt\.layernorm\.{_WB}", _MODEL + r"norm.\1"),
    *_block_rules(_VIT_LAYER, _MODEL + r"blocks.\g<n>.", _TOKEN_BLOCK_RULES),
]

_BEIT_LAYER = r"backbone\.encoder\.layer\.(?P<n>\d+)\."
_BEIT_RULES: List[Rule] = [
    (r"backbone\.embeddings\.cls_token", _MODEL + "cls_token"),
    (rf"backbone\.embeddings\.patch_embeddings\.projection\.{_WB}", _MODEL + r"patch_embed.proj.\1"),
    (_BEIT_LAYER + r"lambda_1", _MODEL + r"blocks.\g<n>.gamma_1"),
    (_BEIT_LAYER + r"lambda_2", _MODEL + r"blocks.\g<n>.gamma_2"),
    (
        _BEIT_LAYER + r"attention\.attention\.relative_position_bias\.relative_position_bias_table",
        _MODEL + r"blocks.\g<n>.attn.relative_position_bias_table",
    ),
    *_block_rules(_BEIT_LAYER, _MODEL + r"blocks.\g<n>.", _TOKEN_BLOCK_RULES),
]

# transformers >= 5 names BEiT modules differently in memory (``model.state_dict()``), though
# ``save_pretrained`` writes the names above. These renames bring the in-memory names back.
_BEIT_IN_MEMORY_NAMES: List[Tuple[str, str]] = [
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
]

_SWIN_BLOCK = r"backbone\.encoder\.layers\.(?P<s>\d+)\.blocks\.(?P<b>\d+)\."
_SWIN_RULES: List[Rule] = [
    (rf"backbone\.embeddings\.patch_embeddings\.projection\.{_WB}", _MODEL + r"patch_embed.proj.\1"),
    (rf"backbone\.embeddings\.norm\.{_WB}", _MODEL + r"patch_embed.norm.\1"),
    # transformers keeps the 0.6-era placement: a stage ends with its downsampling.
    (
        rf"backbone\.encoder\.layers\.(\d+)\.downsample\.(reduction|norm)\.{_WB}",
        _MODEL + r"layers.\1.downsample.\2.\3",
    ),
    *_block_rules(_SWIN_BLOCK, _MODEL + r"layers.\g<s>.blocks.\g<b>.", _SWIN_BLOCK_RULES),
]

# Split attention projections: pattern -> (timm prefix, bias style). "fused": one ``qkv.bias``
# (ViT); "split": ``q_bias`` and ``v_bias``, no key bias (BEiT, SwinV2).
_QKV = r"(?P<role>query|key|value)\.(?P<p>weight|bias)"
_QKV_PATTERNS = {
    "vit": (_VIT_LAYER + r"attention\.attention\." + _QKV, _MODEL + r"blocks.\g<n>.attn.", "fused"),
    "hybrid": (_VIT_LAYER + r"attention\.attention\." + _QKV, _MODEL + r"blocks.\g<n>.attn.", "fused"),
    "beit": (_BEIT_LAYER + r"attention\.attention\." + _QKV, _MODEL + r"blocks.\g<n>.attn.", "split"),
    "swinv2": (_SWIN_BLOCK + r"attention\.self\." + _QKV, _MODEL + r"layers.\g<s>.blocks.\g<b>.attn.", "split"),
}

_BACKBONE_RULES = {"vit": _VIT_RULES, "hybrid": _HYBRID_RULES, "beit": _BEIT_RULES, "swinv2": _SWIN_RULES}

# Buffers transformers computes (older versions saved some); official files' copies are dropped anyway.
_COMPUTED_BUFFERS = re.compile(r".*\.(relative_position_index|relative_coords_table)")

# Unused final norms that transformers' backbones lack: filled with an identity LayerNorm.
_IDENTITY_NORMS = {"beit": _MODEL + "fc_norm", "swinv2": _MODEL + "norm"}


# ---------------------------------------------------------------------------------------------
# Neck and head (the same for every family).
# ---------------------------------------------------------------------------------------------


def _neck_and_head_rules(levels: int) -> List[Rule]:
    """Rules for ``neck.*`` and ``head.*``; fusion layer ``j`` is ``refinenet{levels - j}``."""

    def refinenet(match: re.Match) -> str:
        j = int(match.group("j"))
        if j >= levels:
            raise CheckpointError(f"transformers DPT fusion layer {j} has no MiDaS counterpart ({levels} levels)")
        return f"scratch.refinenet{levels - j}."

    def level(match: re.Match) -> int:
        return int(match.group("j")) + 1

    fusion = r"neck\.fusion_stage\.layers\.(?P<j>\d+)\."
    param = r"(?P<p>weight|bias)"
    return [
        (
            rf"neck\.reassemble_stage\.readout_projects\.(?P<j>\d+)\.0\.{param}",
            lambda m: f"pretrained.act_postprocess{level(m)}.0.project.0.{m.group('p')}",
        ),
        (
            rf"neck\.reassemble_stage\.layers\.(?P<j>\d+)\.projection\.{param}",
            lambda m: f"pretrained.act_postprocess{level(m)}.3.{m.group('p')}",
        ),
        (
            rf"neck\.reassemble_stage\.layers\.(?P<j>\d+)\.resize\.{param}",
            lambda m: f"pretrained.act_postprocess{level(m)}.4.{m.group('p')}",
        ),
        (r"neck\.convs\.(?P<j>\d+)\.weight", lambda m: f"scratch.layer{level(m)}_rn.weight"),
        (fusion + rf"projection\.{param}", lambda m: refinenet(m) + f"out_conv.{m.group('p')}"),
        (
            fusion + rf"residual_layer(?P<u>[12])\.convolution(?P<c>[12])\.{param}",
            lambda m: refinenet(m) + f"resConfUnit{m.group('u')}.conv{m.group('c')}.{m.group('p')}",
        ),
        (rf"head\.head\.(?P<i>[024])\.{param}", r"scratch.output_conv.\g<i>.\g<p>"),
    ]


# ---------------------------------------------------------------------------------------------
# Families.
# ---------------------------------------------------------------------------------------------


def target_family(model: nn.Module) -> str:
    """The transformers DPT family that fits ``model``, or ``CheckpointError``."""
    encoder = getattr(model, "pretrained", None)
    if isinstance(encoder, ViTEncoder):
        return "hybrid" if encoder.config.cnn_levels else "vit"
    if isinstance(encoder, BeitEncoder):
        return "beit"
    if isinstance(encoder, SwinEncoder) and encoder.config.timm_module.endswith("swin_transformer_v2"):
        return "swinv2"
    kind = type(encoder).__name__ if encoder is not None else type(model).__name__
    raise CheckpointError(
        f"transformers DPT checkpoints exist only for ViT, ViT-hybrid, BEiT and SwinV2 models, not for {kind}"
    )


def checkpoint_family(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The backbone family of a transformers DPT state dict, from its key names (None if unknown)."""
    keys = list(state_dict)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has("dpt.embeddings.backbone."):
        return "hybrid"
    if has("dpt."):
        return "vit"
    if has("backbone.encoder.layer.") or has("backbone.beit."):
        return "beit"
    if has("backbone.encoder.layers."):
        return "swinv2"
    return None


# ---------------------------------------------------------------------------------------------
# Conversion.
# ---------------------------------------------------------------------------------------------


def _apply_rules(key: str, rules: Sequence[Rule]) -> Optional[str]:
    for pattern, replacement in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return replacement(match) if callable(replacement) else match.expand(replacement)
    return None


def _in_memory_beit_names(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename transformers-5 in-memory BEiT keys to the names ``save_pretrained`` writes."""
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in _BEIT_IN_MEMORY_NAMES:
            new_key, count = re.subn(pattern, replacement, key)
            if count:
                key = new_key
                break
        out[key] = value
    return out


def _fuse_qkv(parts: Dict[str, Dict[Tuple[str, str], torch.Tensor]], bias_style: str) -> StateDict:
    """Split ``query``/``key``/``value`` projections -> timm ``qkv.weight`` and its bias(es)."""
    out: StateDict = {}
    for prefix, tensors in parts.items():
        try:
            out[prefix + "qkv.weight"] = torch.cat([tensors[(role, "weight")] for role in ("query", "key", "value")])
        except KeyError:
            raise CheckpointError(
                f"transformers DPT checkpoint lacks a query/key/value weight for {prefix}qkv"
            ) from None
        biases = {role: tensors.get((role, "bias")) for role in ("query", "key", "value")}
        if bias_style == "fused":
            if any(b is None for b in biases.values()):
                raise CheckpointError(f"transformers DPT checkpoint lacks a query/key/value bias for {prefix}qkv")
            out[prefix + "qkv.bias"] = torch.cat([biases["query"], biases["key"], biases["value"]])
        else:
            if biases["key"] is not None or biases["query"] is None or biases["value"] is None:
                raise CheckpointError(
                    f"{prefix}qkv: expected query and value biases and no key bias (BEiT/SwinV2 attention)"
                )
            out[prefix + "q_bias"] = biases["query"]
            out[prefix + "v_bias"] = biases["value"]
    return out


def _identity_norm(prefix: str, model: nn.Module, like: torch.Tensor) -> StateDict:
    """An identity LayerNorm for the model's unused ``prefix`` norm (empty if it has none)."""
    expected = model.state_dict()
    weight = expected.get(prefix + ".weight")
    if weight is None:
        return {}
    shape = tuple(weight.shape)
    return {
        prefix + ".weight": torch.ones(shape, dtype=like.dtype, device=like.device),
        prefix + ".bias": torch.zeros(shape, dtype=like.dtype, device=like.device),
    }


def _show(keys: Sequence[str]) -> str:
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def convert_transformers_dpt(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """A transformers ``DPTForDepthEstimation`` state dict -> the official MiDaS layout for ``model``.

    ``model`` is the zoo model the weights are meant for; it selects the backbone family.
    Raises ``CheckpointError`` for other families, for a checkpoint of another family, and for
    any tensor that has no place in MiDaS (e.g. a fusion batch norm or a head projection).
    """
    family = target_family(model)
    found = checkpoint_family(state_dict)
    if found is None:
        raise CheckpointError("not a transformers DPT depth checkpoint: no dpt.* or backbone.* tensors")
    if found != family:
        raise CheckpointError(
            f"transformers DPT checkpoint has a {FAMILY_NAMES[found]} backbone; the model is {FAMILY_NAMES[family]}"
        )
    if family == "beit":
        state_dict = _in_memory_beit_names(state_dict)

    levels = len(model.config.decoder.in_channels)
    rules = _BACKBONE_RULES[family] + _neck_and_head_rules(levels)
    qkv_pattern, qkv_prefix, bias_style = _QKV_PATTERNS[family]

    out: StateDict = {}
    qkv_parts: Dict[str, Dict[Tuple[str, str], torch.Tensor]] = {}
    unplaced: List[str] = []
    for key, value in state_dict.items():
        match = re.fullmatch(qkv_pattern, key)
        if match:
            qkv_parts.setdefault(match.expand(qkv_prefix), {})[(match.group("role"), match.group("p"))] = value
            continue
        if _COMPUTED_BUFFERS.fullmatch(key):
            continue
        new_key = _apply_rules(key, rules)
        if new_key is None:
            unplaced.append(key)
        elif new_key in out:
            raise CheckpointError(f"two transformers DPT tensors map to {new_key}")
        else:
            out[new_key] = value
    if unplaced:
        raise CheckpointError(
            f"{len(unplaced)} transformers DPT tensors have no place in a MiDaS {FAMILY_NAMES[family]} model: "
            f"{_show(unplaced)}"
        )
    out.update(_fuse_qkv(qkv_parts, bias_style))
    if family in _IDENTITY_NORMS and state_dict:
        norm = _identity_norm(_IDENTITY_NORMS[family], model, next(iter(state_dict.values())))
        out.update({k: v for k, v in norm.items() if k not in out})
    return out
