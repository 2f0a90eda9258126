"""Which ``ModelCache`` keeps loaded pipelines, and the key a loaded pipeline is kept under."""

from __future__ import annotations

import os
from typing import Optional, Union

from midas_diffusion.inference.cache import ModelCache, default_cache

CacheArg = Union[ModelCache, bool, None]


def resolve_cache(cache: CacheArg) -> Optional[ModelCache]:
    """``True`` (the default): the process-wide cache; ``None``/``False``: no cache; or a ``ModelCache``."""
    if cache is True:
        return default_cache()
    if cache is None or cache is False:
        return None
    if not isinstance(cache, ModelCache):
        raise TypeError(f"cache must be a midas_diffusion.inference.cache.ModelCache, True or None, got {type(cache).__name__}")
    return cache


def _argument_key(value) -> object:
    """A name or path by its text; a loaded model by identity (the cached pipeline holds it, so
    its id stays its own for as long as the entry lives)."""
    return str(value) if value is None or isinstance(value, (str, os.PathLike)) else id(value)


def pipeline_key(method: str, base: str, depth_model, control_model, dtype, device, single_file_config, weights_dir,
                 cpu_offload: bool, attention_slicing: bool, vae_tiling: bool) -> tuple:
    """Everything that makes one loaded pipeline differ from another."""
    return (method, base, _argument_key(depth_model), _argument_key(control_model), str(dtype), str(device), str(single_file_config),
            str(weights_dir), cpu_offload, attention_slicing, vae_tiling)
