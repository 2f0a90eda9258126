"""The MiDaS decoder ("scratch"): projection convs, fusion blocks and the depth head.

Module names are part of the checkpoint format (``scratch.layerN_rn``,
``scratch.refinenetN.{resConfUnit1,resConfUnit2,out_conv}``, ``scratch.output_conv.{0,2,4}``,
``scratch.stem_transpose``), so official weights load without renaming.

Depth Anything's ``DPTHead`` is this decoder too: its ``projects``/``resize_layers`` are the ViT
family's reassembly (``backbones/vit.py`` ``Reassemble``, which its checkpoints are renamed into),
its fusion blocks are these, and its head is ``output_conv`` resized to the network input
(``head_size="input"``), ending in a ReLU or a sigmoid scaled to the maximum depth
(``head_activation``, ``output_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DecoderConfig:
    """Shape of the decoder.

    ``in_channels``: encoder channels per level (3 or 4 levels), ``scratch_channels``:
    channels after ``layerN_rn``. ``fusion_out_conv``: DPT-style fusion blocks end with a 1x1
    conv mapping to the previous level's channels (MiDaS v2.1-large has none).
    ``rcu_skip_after_relu``: v2.1-large's residual units use an in-place ReLU, so their skip
    carries ``relu(x)``. ``head_channels``: (in, mid, last) of ``output_conv``.
    ``fusion_align_corners``/``head_align_corners``: the bilinear upsampling flags.
    ``stem_transpose``: LeViT's two ConvTranspose+BN+Hardswish stages after ``refinenet1``.
    ``head_size``: the head's upsampling, ``"double"`` (MiDaS: x2) or ``"input"`` (Depth Anything:
    exactly the network input's size, 14x the patch grid). ``head_activation``: the last layer,
    ``"relu"`` (disparity) or ``"sigmoid"`` (metric models), whose output is multiplied by
    ``output_scale`` (the metric models' maximum depth in metres; 1 otherwise).
    """

    in_channels: Tuple[int, ...]
    scratch_channels: Tuple[int, ...]
    head_channels: Tuple[int, int, int] = (256, 128, 32)
    fusion_out_conv: bool = True
    rcu_skip_after_relu: bool = False
    fusion_align_corners: bool = True
    head_align_corners: bool = True
    stem_transpose: Optional[Tuple[int, int, int]] = None  # (in, mid, out) channels
    head_size: str = "double"
    head_activation: str = "relu"
    output_scale: float = 1.0

    def __post_init__(self):
        if len(self.in_channels) not in (3, 4) or len(self.in_channels) != len(self.scratch_channels):
            raise ValueError("the decoder takes 3 or 4 levels, with one scratch width per level")
        if self.head_size not in HEAD_SIZES:
            raise ValueError(f"head_size must be one of {HEAD_SIZES}, got {self.head_size!r}")
        if self.head_activation not in HEAD_ACTIVATIONS:
            raise ValueError(f"head_activation must be one of {tuple(HEAD_ACTIVATIONS)}, got {self.head_activation!r}")


HEAD_SIZES = ("double", "input")
HEAD_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class Interpolate(nn.Module):
    """Parameter-free bilinear x2, or to a given ``size`` (keeps the index layout of ``output_conv``)."""

    def __init__(self, scale_factor: float, align_corners: bool):
        super().__init__()
        self.scale_factor = scale_factor
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor, size: Optional[Sequence[int]] = None) -> torch.Tensor:
        if size is not None:
            return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=self.align_corners)
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=self.align_corners)


class ResidualConvUnit(nn.Module):
    """ReLU-conv-ReLU-conv with a skip (MiDaS ``ResidualConvUnit[_custom]``, no batch norm)."""

    def __init__(self, channels: int, skip_after_relu: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True)
        self.skip_after_relu = skip_after_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(x)
        out = self.conv2(F.relu(self.conv1(activated)))
        return out + (activated if self.skip_after_relu else x)


class FusionBlock(nn.Module):
    """Merge a coarser path with a skip feature, refine, upsample, project."""

    def __init__(
        self,
        channels: int,
        out_channels: Optional[int],
        align_corners: bool = True,
        skip_after_relu: bool = False,
    ):
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(channels, skip_after_relu)
        self.resConfUnit2 = ResidualConvUnit(channels, skip_after_relu)
        self.out_conv = nn.Conv2d(channels, out_channels, kernel_size=1, bias=True) if out_channels else None
        self.align_corners = align_corners

    def forward(
        self, path: torch.Tensor, skip: Optional[torch.Tensor] = None, size: Optional[Sequence[int]] = None
    ) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if size is None:
            size = (path.shape[-2] * 2, path.shape[-1] * 2)
        path = F.interpolate(path, size=tuple(size), mode="bilinear", align_corners=self.align_corners)
        if self.out_conv is not None:
            path = self.out_conv(path)
        return path


class ConvTransposeNorm(nn.Sequential):
    """LeViT's ``ConvTransposeNorm``: k3 s2 p1 with output_padding=1 (an exact x2), then BN."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.add_module(
            "c",
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=False),
        )
        self.add_module("bn", nn.BatchNorm2d(out_channels))


class Scratch(nn.Module):
    """The decoder. ``forward(features)`` maps encoder levels (fine to coarse) to (B,1,H,W).

    Memory layout: on the CPU the decoder runs channels-last (measured with fp32 and bf16: its
    convolutions and bilinear upsampling are 6-27% faster so, LeViT unchanged); elsewhere it takes
    contiguous NCHW tensors, the layout the original hands it (timm 1.x Swin stages are
    channels-last views, which slowed cuDNN and the upsampling kernels on a GPU).
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        levels = len(config.in_channels)
        self.num_levels = levels
        for i, (cin, cout) in enumerate(zip(config.in_channels, config.scratch_channels), start=1):
            self.add_module(f"layer{i}_rn", nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False))
        for i in range(1, levels + 1):
            width = config.scratch_channels[i - 1]
            out = None
            if config.fusion_out_conv:
                out = config.scratch_channels[max(i - 2, 0)]
            self.add_module(
                f"refinenet{i}",
                FusionBlock(width, out, config.fusion_align_corners, config.rcu_skip_after_relu),
            )
        if config.stem_transpose is not None:
            cin, cmid, cout = config.stem_transpose
            self.stem_transpose = nn.Sequential(
                ConvTransposeNorm(cin, cmid), nn.Hardswish(), ConvTransposeNorm(cmid, cout), nn.Hardswish()
            )
        else:
            self.stem_transpose = None
        c_in, c_mid, c_last = config.head_channels
        self.output_conv = nn.Sequential(
            nn.Conv2d(c_in, c_mid, kernel_size=3, padding=1),
            Interpolate(2, config.head_align_corners),
            nn.Conv2d(c_mid, c_last, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c_last, 1, kernel_size=1),
            HEAD_ACTIVATIONS[config.head_activation](),
        )

    def forward(self, features: List[torch.Tensor], input_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        """``features``: the encoder levels; ``input_size``: the network input's ``(H, W)``, which a
        ``head_size="input"`` head resizes to (required there, unused otherwise)."""
        if len(features) != self.num_levels:
            raise ValueError(f"decoder expects {self.num_levels} feature levels, got {len(features)}")
        layout = torch.channels_last if features[0].device.type == "cpu" else torch.contiguous_format
        projected = [getattr(self, f"layer{i}_rn")(f.contiguous(memory_format=layout))
                     for i, f in enumerate(features, start=1)]
        path = None
        for i in range(self.num_levels, 0, -1):
            block: FusionBlock = getattr(self, f"refinenet{i}")
            size = projected[i - 2].shape[-2:] if i > 1 else None
            if path is None:
                path = block(projected[i - 1], size=size)
            else:
                path = block(path, projected[i - 1], size=size)
        if self.stem_transpose is not None:
            path = self.stem_transpose(path)
        head = self.output_conv
        if self.config.head_size == "input":
            if input_size is None:
                raise ValueError("this decoder's head resizes to the network input: pass its size")
            out = head[2:](head[1](head[0](path), input_size))
        else:
            out = head(path)
        if self.config.output_scale != 1:
            out = out * self.config.output_scale
        return out
