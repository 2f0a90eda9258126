"""``create_model``: a zoo model by name, optionally with its weights."""

from __future__ import annotations

from typing import Optional

from torch import nn

from ._registry import get_model_spec
from .checkpoints import CheckpointLike, load_into


def create_model(name: str, checkpoint: Optional[CheckpointLike] = None, *, reduced: bool = False) -> nn.Module:
    """Build the zoo model ``name`` (random init) and strictly load ``checkpoint`` if given.

    ``checkpoint``: a path (``.pt``, ``.pth``, ``.safetensors``) or a state dict, in the official
    MiDaS layout or transformers' DPT layout. ``reduced=True`` builds a tiny model of the same
    family and structure (for tests and examples; no official weights fit it).

    The returned module's ``forward(x)`` takes a normalized ``(B,3,H,W)`` float tensor and returns
    relative inverse depth ``(B,H,W)``. It is in eval mode, on the CPU, in float32.
    """
    spec = get_model_spec(name)
    arch = spec.arch.reduced() if reduced else spec.arch
    model = spec.build(arch)
    model.model_name = spec.name
    if checkpoint is not None:
        load_into(model, checkpoint, model_name=spec.name if not reduced else "")
    return model.eval()
