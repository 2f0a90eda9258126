"""``load_pipeline(...)``: a ready MiDaS pipeline for a method, a base and a depth model.

Loaded pipelines and depth models live in one bounded cache (``midas_diffusion.inference.cache.ModelCache``,
by default the process-wide one: 1 pipeline, 2 depth models, least recently used evicted first),
keyed by (method, base, depth model, control model, dtype, device, ...); ``cache=None`` loads a
fresh, uncached pipeline.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import torch

from midas_diffusion import DEFAULT_MODEL as DEFAULT_DEPTH_MODEL
from midas_diffusion import DepthEstimator
from midas_diffusion.inference.cache import ModelCache, default_cache, load_depth_model
from midas_diffusion.inference.devices import resolve_device

from .bases import check_base, folder_components, is_single_file, load_error, local_only, own_depth_model
from .compat import dtype_kwargs
from .components import MidasDepthEstimator
from .control_models import ControlModelArg, cast, load_control_model
from .memory import configure_memory
from .methods import DEFAULT_METHOD, MethodSpec, get_method
from .model_cache import CacheArg, pipeline_key, resolve_cache
from .pipeline_midas_controlnet import MidasControlNetPipeline
from .pipeline_midas_controlnet_sdxl import MidasControlNetUnionXLPipeline, MidasControlNetXLPipeline
from .pipeline_midas_depth2img import MidasDepth2ImgPipeline
from .pipeline_midas_t2i_adapter_xl import MidasT2IAdapterXLPipeline
from .single_file import from_single_file, single_file_config as resolve_single_file_config

# each class names its method (``method_name``); tests/test_pipelines.py checks these are METHODS
PIPELINES = {cls.method_name: cls for cls in (MidasControlNetPipeline, MidasDepth2ImgPipeline,
                                              MidasControlNetXLPipeline, MidasControlNetUnionXLPipeline,
                                              MidasT2IAdapterXLPipeline)}

DepthModelArg = Union[str, os.PathLike, DepthEstimator, MidasDepthEstimator]


def depth_component(depth_model: DepthModelArg, cache: Optional[ModelCache], weights_dir) -> MidasDepthEstimator:
    """The depth component for a zoo name / checkpoint / saved folder (loaded through ``cache`` and
    shared with every other user of that cache), a ``DepthEstimator`` (wrapped, not copied) or a
    ready component."""
    if isinstance(depth_model, MidasDepthEstimator):
        return depth_model
    if isinstance(depth_model, DepthEstimator):
        return MidasDepthEstimator.from_estimator(depth_model)
    if cache is None:
        return MidasDepthEstimator.from_zoo(str(depth_model), weights_dir=weights_dir)
    est = load_depth_model(str(depth_model), dtype=torch.float32, weights_dir=weights_dir, cache=cache)
    return MidasDepthEstimator.from_estimator(est)


def load_pipeline(
    method: str = DEFAULT_METHOD,
    base: Optional[Union[str, os.PathLike]] = None,
    depth_model: Optional[DepthModelArg] = None,
    control_model: Optional[ControlModelArg] = None,
    *,
    dtype: Optional[torch.dtype] = None,
    device: Optional[Union[str, torch.device]] = None,
    single_file_config: Optional[Union[str, os.PathLike]] = None,
    local_files_only: Optional[bool] = None,
    weights_dir: Optional[os.PathLike] = None,
    cpu_offload: bool = False,
    attention_slicing: bool = False,
    vae_tiling: bool = False,
    cache: CacheArg = True,
):
    """A ready pipeline for ``method`` on ``base`` with the zoo ``depth_model``.

    ``base``: a hub id, a local diffusers folder, or a single-file ``.safetensors``/``.ckpt``
    checkpoint as A1111 and ComfyUI keep them (then ``single_file_config`` names a local diffusers
    folder of that model family, whose configs describe the file; without it, the method's default
    base is looked up in the Hugging Face cache; nothing is fetched for it).
    ``depth_model``: a zoo name, checkpoint file or saved folder, a loaded ``DepthEstimator`` or a
    ``MidasDepthEstimator``; default: the base folder's own depth estimator if it has one, else
    ``dpt_beit_large_512``. A zoo name that the base folder's own depth estimator has is that
    estimator (what ``settings["depth_model"]`` of a run on that base reads).
    ``cache``: where the pipeline and its depth model are kept for the next call (default: the
    process-wide ``ModelCache``; ``None`` loads a fresh pipeline and keeps nothing).
    ``control_model``: the ControlNet / adapter (id, folder or loaded model); default: the base
    folder's own, else the method's default.
    ``device``: a device name (``"auto"``: CUDA, else MPS, else the CPU), checked before anything loads.
    ``cpu_offload`` / ``attention_slicing`` / ``vae_tiling``: diffusers' memory savers, applied once
    at load (they are part of the cache key); with ``cpu_offload`` the pipeline is not moved to
    ``device`` (offload moves each model to the GPU when it runs).
    """
    spec = get_method(method)
    device = None if device is None else resolve_device(device)  # a ValueError before anything loads
    base = os.path.expanduser(str(base)) if base is not None else spec.default_base
    if single_file_config is not None:
        single_file_config = os.path.expanduser(str(single_file_config))
    offline = local_only(local_files_only)
    cache = resolve_cache(cache)
    key = pipeline_key(method, base, depth_model, control_model, dtype, device, single_file_config, weights_dir,
                       cpu_offload, attention_slicing, vae_tiling)
    cached = cache.peek("pipeline", key) if cache is not None else None
    if cached is not None:  # a hit (counted as one); it cannot be lost to an eviction in between
        return cache.get("pipeline", key, lambda: cached)
    # the base is checked before any model is loaded or evicted, so a typo fails at once
    single_file = is_single_file(base)
    if single_file:
        single_file_config = resolve_single_file_config(base, method, single_file_config)
    else:
        check_base(base, offline)

    def load():
        pipe = _load_pipeline(spec, base, depth_model, control_model, dtype, None if cpu_offload else device,
                              single_file_config, single_file, offline, weights_dir, cache)
        return configure_memory(pipe, cpu_offload, attention_slicing, vae_tiling)

    return load() if cache is None else cache.get("pipeline", key, load)


def _load_pipeline(spec: MethodSpec, base: str, depth_model, control_model, dtype, device, single_file_config,
                   single_file: bool, offline: bool, weights_dir, cache: Optional[ModelCache]):
    cls = PIPELINES[spec.name]
    # a saved pipeline folder brings its own components; explicit arguments override them
    in_folder = folder_components(base)
    if isinstance(depth_model, str) and depth_model == own_depth_model(base):
        depth_model = None  # the folder's own estimator is that model
    extra: Dict[str, Any] = {}
    if depth_model is not None or "depth_estimator" not in in_folder:
        extra["depth_estimator"] = depth_component(depth_model or DEFAULT_DEPTH_MODEL, cache, weights_dir)
    if spec.control_kind:
        slot = "controlnet" if spec.control_kind != "adapter" else "adapter"
        if control_model is not None or slot not in in_folder:
            extra[slot] = load_control_model(spec.control_kind, control_model or spec.default_control, dtype, offline)
    try:
        if single_file:
            pipe = from_single_file(cls, base, spec.name, single_file_config, dtype, extra)
        else:
            pipe = cls.from_pretrained(base, local_files_only=offline, **dtype_kwargs(dtype), **extra)
    except (OSError, EnvironmentError) as exc:
        raise load_error(base, spec.name, exc) from None
    if dtype is not None:
        cast(pipe.depth_estimator, torch.float32)  # depth runs in fp32 unless the caller changes it
    if device is not None:
        pipe.to(device)
    # what run_settings records of the load; the depth model is read off the component, unless a
    # checkpoint file or saved folder names it better (its zoo name would load the release weights)
    pipe.loaded_with = dict(base=base, single_file_config=single_file_config,
                            control_model=str(control_model) if isinstance(control_model, (str, os.PathLike)) else None)
    if isinstance(depth_model, (str, os.PathLike)) and os.path.exists(depth_model):
        pipe.loaded_with["depth_model"] = str(depth_model)
    return pipe


def clear_cache() -> None:
    """Empty the process-wide cache: every pipeline and depth model it holds (their memory is freed
    once no one else holds them)."""
    default_cache().clear()
