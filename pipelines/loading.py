"""Loading that keeps results bit-identical to the pipeline that was saved.

safetensors files are memory-mapped, so a loaded CPU tensor can start at any 8-byte offset. CPU
matrix kernels (oneDNN, MKL) take other code paths for unaligned memory, and the same weights then
give results that differ in the last bits (about 1e-7 per layer): a reloaded pipeline would not
reproduce its own images exactly. ``realign_weights`` copies just the unaligned tensors into
freshly allocated (aligned) memory; GPU tensors and aligned ones are left as they are. The MiDaS
pipelines do this when they are loaded (``MidasLoading``).

``MidasLoading`` also takes the depth component's loading argument ``max_pixels``: given to a
pipeline's ``from_pretrained``, it wins over the value the saved folder stored.
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


UNSET = object()


class MidasLoading:
    """``from_pretrained`` / ``from_single_file`` return the pipeline with its unaligned CPU weights
    realigned (``realign_weights``), at load time: the pipeline that comes back reproduces the saved
    one's images bit for bit (tests/test_pipelines.py round trips). ``max_pixels=`` (None: no
    limit) sets the depth component's image limit, over the one its folder stored:

    >>> MidasControlNetPipeline.from_pretrained("saved", max_pixels=4_000_000)  # doctest: +SKIP
    """

    @classmethod
    def from_pretrained(cls, *args, max_pixels=UNSET, **kwargs):
        return _with_depth_arguments(realign_weights(super().from_pretrained(*args, **kwargs)), max_pixels)

    @classmethod
    def from_single_file(cls, *args, max_pixels=UNSET, **kwargs):
        return _with_depth_arguments(realign_weights(super().from_single_file(*args, **kwargs)), max_pixels)


def _with_depth_arguments(pipe, max_pixels):
    depth_estimator = getattr(pipe, "depth_estimator", None)
    if max_pixels is not UNSET:
        if depth_estimator is None:
            raise ValueError("max_pixels applies to the depth component, and this pipeline has none")
        depth_estimator.set_max_pixels(max_pixels)
    return pipe
