"""Reading checkpoints and loading them strictly into zoo models.

Official MiDaS files hold the module's ``state_dict`` (old training files wrap it as
``{"model": ..., "optimizer": ...}``). Each encoder family converts the 0.6-era timm layout with
its own named filter; computed buffers and unused classifier heads are dropped by explicit rules.
Everything else must match exactly, or the error names the keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch
from torch import nn

from .backbones.base import add_prefix, strip_prefix

StateDict = Dict[str, torch.Tensor]
CheckpointLike = Union[str, os.PathLike, Mapping[str, torch.Tensor]]

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model it was given to."""


def read_state_dict(source: CheckpointLike) -> StateDict:
    """A flat ``{name: tensor}`` dict from a path (``.pt``/``.pth``/``.safetensors``) or a mapping."""
    if isinstance(source, Mapping):
        state_dict = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        if path.suffix == ".safetensors":
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                state_dict = load_file(str(path))
            except (SafetensorError, OSError, ValueError) as exc:
                raise CheckpointError(f"cannot read {path}: not a valid safetensors file ({exc})") from None
        elif path.suffix in PICKLE_SUFFIXES:
            try:
                state_dict = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception as exc:  # torch raises several types for corrupt/unsafe pickles
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise CheckpointError(f"cannot read {path}: {first_line}") from None
        else:
            raise CheckpointError(
                f"unsupported checkpoint format {path.suffix!r} for {path} (use .pt, .pth or .safetensors)"
            )
    for wrapper in ("model", "state_dict"):
        inner = state_dict.get(wrapper) if isinstance(state_dict, Mapping) else None
        if isinstance(inner, Mapping) and ("optimizer" in state_dict or len(state_dict) <= 3):
            state_dict = dict(inner)
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError("checkpoint is not a state dict of tensors")
    return dict(state_dict)


def is_transformers_dpt(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("neck.") for k in state_dict) and not any(k.startswith("scratch.") for k in state_dict)


def convert_official(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> StateDict:
    """Official MiDaS layout -> this model's layout (the encoder family's filter)."""
    encoder_part = strip_prefix(state_dict, "pretrained.")
    rest = {k: v for k, v in state_dict.items() if not k.startswith("pretrained.")}
    encoder_part = model.config.encoder.filter_checkpoint(encoder_part, model.pretrained)
    return {**add_prefix(encoder_part, "pretrained."), **rest}


def check_fit(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[str]:
    """None if ``state_dict`` fills exactly ``model``'s state; else a message naming the keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or wrong):
        return None

    def show(keys):
        return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {show(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {show(unexpected)}")
    if wrong:
        parts.append(f"{len(wrong)} with other shapes: {show(wrong)}")
    return "; ".join(parts)


def to_model_layout(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> StateDict:
    """Convert any supported checkpoint layout (official MiDaS, transformers DPT) to ``model``'s keys."""
    if is_transformers_dpt(state_dict):
        from .convert_transformers import convert_transformers_dpt

        state_dict = convert_transformers_dpt(state_dict, model)
    try:
        return convert_official(state_dict, model)
    except KeyError as exc:  # an order-mapped family whose tensors do not line up
        raise CheckpointError(str(exc.args[0]) if exc.args else str(exc)) from None


def identify_checkpoint(state_dict: Mapping[str, torch.Tensor], exclude: str = "") -> Optional[str]:
    """The zoo model whose layout ``state_dict`` fits, built cheaply on the meta device."""
    from ._registry import get_model_spec, list_models

    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    for name in list_models():
        if name == exclude:
            continue
        spec = get_model_spec(name)
        with torch.device("meta"):
            candidate = spec.build(spec.arch)
        meta_sd = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
        try:
            converted = to_model_layout(meta_sd, candidate)
        except (CheckpointError, KeyError, ValueError, RuntimeError):
            continue
        if check_fit(converted, candidate) is None:
            return name
    return None


def load_into(model: nn.Module, source: CheckpointLike, model_name: str = "") -> nn.Module:
    """Strictly load ``source`` into ``model``; a mismatch raises ``CheckpointError`` naming keys.

    When the checkpoint belongs to another zoo model, the error names both models.
    """
    state_dict = read_state_dict(source)
    where = f" ({source})" if isinstance(source, (str, os.PathLike)) else ""
    try:
        converted = to_model_layout(state_dict, model)
        problem = check_fit(converted, model)
    except CheckpointError as exc:
        converted, problem = None, str(exc)
    if problem is not None:
        other = identify_checkpoint(state_dict, exclude=model_name) if model_name else None
        if other:
            raise CheckpointError(
                f"checkpoint{where} is for {other!r}, not for {model_name!r}; "
                f"use create_model({other!r}, checkpoint=...) or pick the {model_name!r} weights"
            )
        target = f" for {model_name!r}" if model_name else ""
        raise CheckpointError(f"checkpoint{where} does not fit the model{target}: {problem}")
    on_meta = any(p.is_meta for p in model.parameters())
    model.load_state_dict(converted, strict=True, assign=on_meta)
    return model
