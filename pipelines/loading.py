"""Loading that keeps results bit-identical to the pipeline that was saved.

safetensors files are memory-mapped, so a loaded CPU tensor can start at any 8-byte offset. CPU
matrix kernels (oneDNN, MKL) take other code paths for unaligned memory, and the same weights then
give results that differ in the last bits (about 1e-7 per layer): a reloaded pipeline would not
reproduce its own images exactly. ``realign_weights`` copies just the unaligned tensors into
freshly allocated (aligned) memory; GPU tensors and aligned ones are left as they are. The MiDaS
pipelines do this when they are loaded (``RealignOnLoad``).
"""

from __future__ import annotations

import torch

ALIGNMENT = 64  # bytes; what PyTorch's CPU allocator guarantees


@torch.no_grad()
def realign_weights(pipe):
    """Copy every unaligned CPU parameter and buffer of ``pipe``'s modules; returns ``pipe``."""
    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for tensor in list(component.parameters()) + list(component.buffers()):
            if tensor.device.type == "cpu" and tensor.numel() and tensor.data_ptr() % ALIGNMENT:
                tensor.data = tensor.data.clone()
    return pipe


class RealignOnLoad:
    """``from_pretrained`` / ``from_single_file`` return the pipeline with its unaligned CPU weights
    realigned (``realign_weights``), at load time: the pipeline that comes back reproduces the saved
    one's images bit for bit (tests/test_pipelines.py round trips). Supplies nothing else."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        return realign_weights(super().from_pretrained(*args, **kwargs))

    @classmethod
    def from_single_file(cls, *args, **kwargs):
        return realign_weights(super().from_single_file(*args, **kwargs))
