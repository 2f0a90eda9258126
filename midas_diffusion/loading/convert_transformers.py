"""transformers ``DPTForDepthEstimation`` state dicts -> the official MiDaS key layout.

The Intel DPT checkpoints on the Hugging Face hub (``Intel/dpt-large``, ``Intel/dpt-hybrid-midas``,
``Intel/dpt-beit-*``, ``Intel/dpt-swinv2-*``) are the MiDaS weights renamed by transformers'
conversion scripts; the Depth Anything ``-hf`` ones (``DepthAnythingForDepthEstimation``) have the
same neck with a DINOv2 backbone (``backbone.*``, renamed to the official ``pretrained.*``). This module undoes that renaming; it only moves tensors (and re-fuses the
split attention projections) and never imports transformers. The result is what an official
MiDaS ``.pt`` of the same model holds, so ``checkpoints.convert_official`` then applies the
encoder family's usual filter.

Mapping (checked against ``transformers/models/dpt/modeling_dpt.py`` and ``save_pretrained``):

- ``neck.reassemble_stage.readout_projects.{i-1}.0`` -> ``pretrained.act_postprocess{i}.0.project.0``;
  ``neck.reassemble_stage.layers.{i-1}.projection`` / ``.resize`` -> ``pretrained.act_postprocess{i}.3`` / ``.4``;
- ``neck.convs.{i-1}`` -> ``scratch.layer{i}_rn``;
- ``neck.fusion_stage.layers.{L-i}`` -> ``scratch.refinenet{i}`` (``L`` levels), with
  ``projection`` -> ``out_conv`` and ``residual_layer{1,2}.convolution{1,2}`` -> ``resConfUnit{1,2}.conv{1,2}``;
- ``head.head.{0,2,4}`` -> ``scratch.output_conv.{0,2,4}`` (Depth Anything: ``head.conv{1,2,3}``);
- the backbone by its family's rules (``TRANSFORMERS_*`` in ``backbones/vit.py``, ``beit.py``,
  ``swin.py``: ViT ``dpt.*``, hybrid ``dpt.embeddings.backbone.bit.*``, BEiT and SwinV2
  ``backbone.*``), with ``query``/``key``/``value`` fused back into timm's ``qkv``.

transformers' BEiT and SwinV2 backbones have no final norm, which MiDaS never uses; the zoo model's
unused ``fc_norm`` (BEiT) or ``norm`` (SwinV2) is filled with an identity LayerNorm.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from ..zoo.backbones.beit import TRANSFORMERS_BEIT
from ..zoo.backbones.dinov2 import TRANSFORMERS_DINOV2
from ..zoo.backbones.swin import TRANSFORMERS_SWINV2
from ..zoo.backbones.transformers_dpt import TransformersBackbone
from ..zoo.backbones.vit import TRANSFORMERS_HYBRID, TRANSFORMERS_VIT
from ..zoo.state_dicts import CheckpointError, Rule, StateDict, apply_rules, show_keys

# Every family with transformers DPT checkpoints; a checkpoint's family is the first whose keys it has
# (DINOv2 before BEiT: both have ``backbone.encoder.layer.*``, only DINOv2 ``layer_scale1``).
BACKBONES: Tuple[TransformersBackbone, ...] = (
    TRANSFORMERS_VIT, TRANSFORMERS_HYBRID, TRANSFORMERS_DINOV2, TRANSFORMERS_BEIT, TRANSFORMERS_SWINV2
)

# Buffers transformers computes (older versions saved some); official files' copies are dropped anyway.
_COMPUTED_BUFFERS = re.compile(r".*\.(relative_position_index|relative_coords_table)")


def is_transformers_dpt(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for a transformers DPT layout (``neck.*``, no MiDaS ``scratch.*``)."""
    return any(k.startswith("neck.") for k in state_dict) and not any(k.startswith("scratch.") for k in state_dict)


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
        # DepthAnythingForDepthEstimation's head: conv1, conv2, conv3 around the same activations
        (rf"head\.conv(?P<c>[123])\.{param}", lambda m: f"scratch.output_conv.{2 * (int(m.group('c')) - 1)}.{m.group('p')}"),
    ]


# ---------------------------------------------------------------------------------------------
# Families.
# ---------------------------------------------------------------------------------------------


def model_backbone(model: nn.Module) -> TransformersBackbone:
    """The transformers DPT family that fits ``model`` (its encoder config says), or ``CheckpointError``."""
    config = getattr(model, "config", None)
    encoder = getattr(config, "encoder", None)
    family = getattr(encoder, "transformers_backbone", lambda: None)()
    if family is None:
        names = [b.name for b in BACKBONES]
        kind = type(getattr(model, "pretrained", model)).__name__
        raise CheckpointError(
            f"transformers DPT checkpoints exist only for {', '.join(names[:-1])} and {names[-1]} models, not for {kind}"
        )
    return family


def checkpoint_backbone(state_dict: Mapping[str, torch.Tensor]) -> Optional[TransformersBackbone]:
    """The backbone family of a transformers DPT state dict, from its key names (None if unknown)."""
    keys = list(state_dict)
    return next((b for b in BACKBONES if b.matches(keys)), None)


# ---------------------------------------------------------------------------------------------
# Conversion.
# ---------------------------------------------------------------------------------------------


def _saved_names(state_dict: Mapping[str, torch.Tensor], renames: Tuple[Tuple[str, str], ...]) -> StateDict:
    """In-memory module names of newer transformers versions -> the names ``save_pretrained`` writes."""
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in renames:
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
    weight = model.state_dict().get(prefix + ".weight")
    if weight is None:
        return {}
    shape = tuple(weight.shape)
    return {
        prefix + ".weight": torch.ones(shape, dtype=like.dtype, device=like.device),
        prefix + ".bias": torch.zeros(shape, dtype=like.dtype, device=like.device),
    }


def convert_transformers_dpt(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """A transformers ``DPTForDepthEstimation`` state dict -> the official MiDaS layout for ``model``.

    ``model`` is the zoo model the weights are meant for; its encoder config names the backbone
    family. Raises ``CheckpointError`` for other families, for a checkpoint of another family, and
    for any tensor that has no place in MiDaS (e.g. a fusion batch norm or a head projection).
    """
    family = model_backbone(model)
    found = checkpoint_backbone(state_dict)
    if found is None:
        raise CheckpointError("not a transformers DPT depth checkpoint: no dpt.* or backbone.* tensors")
    if found is not family:
        raise CheckpointError(f"transformers DPT checkpoint has a {found.label} backbone; the model is {family.label}")
    if family.saved_names:
        state_dict = _saved_names(state_dict, family.saved_names)

    levels = len(model.config.decoder.in_channels)
    rules = list(family.rules) + _neck_and_head_rules(levels)
    qkv_pattern, qkv_prefix, bias_style = family.qkv

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
        new_key = apply_rules(key, rules)
        if new_key is None:
            unplaced.append(key)
        elif new_key in out:
            raise CheckpointError(f"two transformers DPT tensors map to {new_key}")
        else:
            out[new_key] = value
    if unplaced:
        raise CheckpointError(
            f"{len(unplaced)} transformers DPT tensors have no place in a MiDaS {family.label} model: "
            f"{show_keys(unplaced)}"
        )
    out.update(_fuse_qkv(qkv_parts, bias_style))
    if family.identity_norm and state_dict:
        norm = _identity_norm(family.identity_norm, model, next(iter(state_dict.values())))
        out.update({k: v for k, v in norm.items() if k not in out})
    return out
