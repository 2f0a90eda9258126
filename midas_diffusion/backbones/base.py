"""What every encoder shares: the config protocol and the timm factory call."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Protocol, Tuple

import timm
import torch
from torch import nn


class EncoderConfig(Protocol):
    """An encoder config is a frozen dataclass that can build its ``pretrained`` module.

    ``build()`` returns an ``nn.Module`` whose ``forward(x)`` gives the feature levels (NCHW,
    fine to coarse) that the decoder's ``layerN_rn`` convs take; ``out_channels`` are their
    widths. ``filter_checkpoint`` maps an official MiDaS state dict (keys relative to
    ``pretrained.``) to this module's keys, dropping only what ``droppable`` names.
    ``reduced()`` gives a tiny config of the same family for fast tests.
    """

    out_channels: Tuple[int, ...]

    def build(self) -> nn.Module: ...

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]: ...

    def reduced(self) -> "EncoderConfig": ...


def create_timm_model(name: str, overrides: Tuple[Tuple[str, Any], ...] = (), **kwargs) -> nn.Module:
    """Build a randomly initialized timm model (never downloads: ``pretrained=False``)."""
    return timm.create_model(name, pretrained=False, **dict(overrides), **kwargs)


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def add_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state_dict.items()}


def drop_keys(state_dict: Mapping[str, torch.Tensor], prefixes: Tuple[str, ...] = (), suffixes: Tuple[str, ...] = ()):
    """Remove classifier heads (by prefix) and computed buffers (by suffix)."""
    return {
        k: v
        for k, v in state_dict.items()
        if not any(k.startswith(p) for p in prefixes) and not any(k.endswith(s) for s in suffixes)
    }


def map_by_order(state_dict: Mapping[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]:
    """Rename checkpoint keys to ``module``'s keys by position, checking every shape.

    Used where timm renamed a whole model (LeViT's flat ``blocks`` became ``stages``; the
    Next-ViT repository's ``features`` became timm's ``stages``) but kept the tensor order.
    """
    target = module.state_dict()
    if len(target) != len(state_dict):
        raise KeyError(
            f"checkpoint has {len(state_dict)} backbone tensors where the model has {len(target)}"
        )
    out = {}
    for (src_key, value), (dst_key, ref) in zip(state_dict.items(), target.items()):
        if tuple(value.shape) != tuple(ref.shape):
            raise KeyError(f"checkpoint tensor {src_key} {tuple(value.shape)} does not fit {dst_key} {tuple(ref.shape)}")
        out[dst_key] = value
    return out


def tokens_to_grid(tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """(B, N, C) -> (B, C, h, w)."""
    b, n, c = tokens.shape
    if n != grid[0] * grid[1]:
        raise ValueError(f"{n} tokens do not form a {grid[0]}x{grid[1]} grid")
    return tokens.transpose(1, 2).reshape(b, c, grid[0], grid[1])


FeatureList = List[torch.Tensor]
