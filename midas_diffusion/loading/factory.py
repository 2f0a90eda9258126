"""``create_model`` and ``load_model``: a zoo model by name, optionally with its weights."""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from ..zoo.registry import get_model_spec
from ..zoo.backbones.base import can_compute_buffers
from .checkpoints import CheckpointLike, load_into
from ..zoo.config import ModelSpec


def _spec(spec_or_name: Union[ModelSpec, str]) -> ModelSpec:
    return spec_or_name if isinstance(spec_or_name, ModelSpec) else get_model_spec(spec_or_name)


def _build_without_weights(spec: ModelSpec, arch) -> nn.Module:
    """The model with its tensors on the ``meta`` device (no memory, no random init). Where a
    computed buffer could not be computed again after loading (timm older than its
    ``init_non_persistent_buffers``), a normal build instead; loading then copies."""
    with torch.device("meta"):
        model = spec.build(arch)
    return model if can_compute_buffers(model) else spec.build(arch)


def load_model(spec_or_name: Union[ModelSpec, str], checkpoint: CheckpointLike, reduced: bool = False) -> nn.Module:
    """The zoo model with ``checkpoint``'s weights, built without materializing random weights
    first: loading holds one copy of the weights (plus the largest converted tensor), not two.

    ``checkpoint``: a path (``.pt``, ``.pth``, ``.safetensors``) or a state dict (its tensors are
    copied), in the official MiDaS layout or transformers' DPT layout, keys in any order; a
    mismatch raises ``CheckpointError`` naming the keys. ``reduced=True``: the tiny model of the
    same family (tests). Returns the network in eval mode, on the CPU, in float32; its outputs are
    bit-identical to a randomly initialized model that the same weights were copied into.
    """
    spec = _spec(spec_or_name)
    model = _build_without_weights(spec, spec.arch.reduced() if reduced else spec.arch)
    model.model_name = spec.name
    load_into(model, checkpoint, model_name="" if reduced else spec.name)
    return model.eval()


def create_model(name: str, checkpoint: Optional[CheckpointLike] = None, *, reduced: bool = False) -> nn.Module:
    """Build the zoo model ``name`` (random init) and strictly load ``checkpoint`` if given.

    ``checkpoint``: a path (``.pt``, ``.pth``, ``.safetensors``) or a state dict, in the official
    MiDaS layout or transformers' DPT layout (see ``load_model``, which this uses then: no random
    weights are made). ``reduced=True`` builds a tiny model of the same family and structure (for
    tests and examples; no official weights fit it).

    The returned module's ``forward(x)`` takes a standardized (mean/std) ``(B,3,H,W)`` float tensor and returns
    relative inverse depth ``(B,H,W)``. It is in eval mode, on the CPU, in float32.
    """
    if checkpoint is not None:
        return load_model(name, checkpoint, reduced=reduced)
    spec = get_model_spec(name)
    model = spec.build(spec.arch.reduced() if reduced else spec.arch)
    model.model_name = spec.name
    return model.eval()
