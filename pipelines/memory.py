"""diffusers' memory savers, switched on once when a pipeline is loaded."""

from __future__ import annotations


def configure_memory(pipe, cpu_offload: bool = False, attention_slicing: bool = False, vae_tiling: bool = False):
    """Model CPU offload (needs accelerate and a GPU), attention slicing, VAE tiling; returns ``pipe``."""
    if cpu_offload:
        pipe.enable_model_cpu_offload()
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    return pipe
