"""``DepthModel``: an encoder (``pretrained``) and the MiDaS decoder (``scratch``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Tuple

import torch
from torch import nn

from .decoder import DecoderConfig, Scratch
from .state_dicts import Rule


@dataclass(frozen=True)
class DepthModelConfig:
    encoder: Any  # an EncoderConfig (see backbones/base.py)
    decoder: DecoderConfig
    # side lengths of the network input must be multiples of this
    input_multiple: int = 32
    # renames from an official layout whose module tree differs from ours (Depth Anything's
    # ``depth_head.*``) to this model's keys, applied by name before the encoder's filter
    checkpoint_rules: Tuple[Rule, ...] = ()

    def __post_init__(self):
        if tuple(self.encoder.out_channels) != tuple(self.decoder.in_channels):
            raise ValueError(
                f"encoder gives {self.encoder.out_channels} channels, decoder expects {self.decoder.in_channels}"
            )

    def reduced(self, factor: int = 8) -> "DepthModelConfig":
        """A tiny config of the same family and structure, for fast tests."""
        encoder = self.encoder.reduced()

        def shrink(widths):
            return tuple(max(c // factor, 4) for c in widths)

        dec = self.decoder
        decoder = replace(
            dec,
            in_channels=tuple(encoder.out_channels),
            scratch_channels=shrink(dec.scratch_channels),
            head_channels=shrink(dec.head_channels),
            stem_transpose=shrink(dec.stem_transpose) if dec.stem_transpose else None,
        )
        return replace(self, encoder=encoder, decoder=decoder)


class DepthModel(nn.Module):
    """``forward(x)``: normalized ``(B,3,H,W)`` float -> ``(B,H,W)``: relative inverse depth, or depth
    in metres for the metric models (their spec's ``predicts``).

    Module names follow the MiDaS checkpoints (``pretrained.*``, ``scratch.*``).
    """

    def __init__(self, config: DepthModelConfig):
        super().__init__()
        self.config = config
        self.pretrained = config.encoder.build()
        self.scratch = Scratch(config.decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected a (B,3,H,W) tensor, got {shape}")
        if not x.is_floating_point():
            raise ValueError(f"expected a float tensor (normalized image), got {x.dtype}")
        m = self.config.input_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"input height and width must be multiples of {m}, got {tuple(x.shape[-2:])}")
        return self.scratch(self.pretrained(x), x.shape[-2:]).squeeze(1)


def build_depth_model(config: DepthModelConfig) -> DepthModel:
    return DepthModel(config)
