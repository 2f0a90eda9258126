"""The documented path ``midas_diffusion.cache``: a plain re-export of ``midas_diffusion.inference.cache``."""

from .inference.cache import (  # noqa: F401
    DEFAULT_LIMITS,
    ModelCache,
    default_cache,
    load_depth_model,
    release_memory,
    source_key,
    weights_key,
)

__all__ = [
    "DEFAULT_LIMITS",
    "ModelCache",
    "default_cache",
    "load_depth_model",
    "release_memory",
    "source_key",
    "weights_key",
]
