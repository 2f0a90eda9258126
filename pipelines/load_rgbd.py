"""``load_rgbd_pipeline(...)``: the LDM3D text-to-RGBD pipeline, cached like ``load_pipeline``."""

from __future__ import annotations

import os
from typing import Optional, Union

import torch

from midas_diffusion.inference.devices import resolve_device

from .bases import check_base, load_error, local_only
from .compat import dtype_kwargs
from .model_cache import CacheArg, resolve_cache
from .pipeline_midas_ldm3d import MidasLDM3DPipeline

DEFAULT_RGBD_BASE = "Intel/ldm3d-4c"


def load_rgbd_pipeline(base: Optional[Union[str, os.PathLike]] = None, *, dtype: Optional[torch.dtype] = None,
                       device: Optional[Union[str, torch.device]] = None, local_files_only: Optional[bool] = None,
                       cache: CacheArg = True):
    """The LDM3D text-to-RGBD pipeline on ``base`` (``Intel/ldm3d-4c``, ``Intel/ldm3d``,
    ``Intel/ldm3d-pano`` or a local folder), cached like ``load_pipeline``."""
    base = os.path.expanduser(str(base or DEFAULT_RGBD_BASE))
    offline = local_only(local_files_only)
    device = None if device is None else resolve_device(device)  # a ValueError before anything loads
    check_base(base, offline)
    cache = resolve_cache(cache)
    if cache is None:
        return _load(base, dtype, device, offline)
    return cache.get("pipeline", ("rgbd", base, str(dtype), str(device)), lambda: _load(base, dtype, device, offline))


def _load(base: str, dtype, device, offline: bool):
    try:
        pipe = MidasLDM3DPipeline.from_pretrained(base, **dtype_kwargs(dtype), local_files_only=offline,
                                                  safety_checker=None, feature_extractor=None)
    except (OSError, EnvironmentError) as exc:
        raise load_error(base, "rgbd", exc) from None
    if device is not None:
        pipe.to(device)
    return pipe
