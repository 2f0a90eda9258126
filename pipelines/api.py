"""``pipeline(image, prompt)`` and ``load_pipeline(...)``: one call for the main job.

Loaded pipelines and depth models live in one bounded cache (``midas_diffusion.inference.cache.ModelCache``,
by default the process-wide one: 1 pipeline, 2 depth models, least recently used evicted first),
keyed by (method, base, depth model, control model, dtype, device); the depth component caches the
depth of each image as well. ``cache=None`` loads a fresh, uncached pipeline.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict, Optional, Type, Union

import torch

from midas_diffusion import DepthEstimator
from midas_diffusion.inference.cache import ModelCache, default_cache, load_depth_model

from midas_diffusion import DEFAULT_MODEL as DEFAULT_DEPTH_MODEL

from .components import MidasDepthEstimator
from .depth_conditioning import MidasPipelineOutput
from .methods import DEFAULT_METHOD, METHODS, MethodSpec, get_method  # noqa: F401  (METHODS re-exported)


CacheArg = Union[ModelCache, bool, None]


def _cache(cache: CacheArg) -> Optional[ModelCache]:
    """``True`` (the default): the process-wide cache; ``None``/``False``: no cache; or a ``ModelCache``."""
    if cache is True:
        return default_cache()
    if cache is None or cache is False:
        return None
    if not isinstance(cache, ModelCache):
        raise TypeError(f"cache must be a midas_diffusion.inference.cache.ModelCache, True or None, got {type(cache).__name__}")
    return cache

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "lms": "LMSDiscreteScheduler",
}


def set_scheduler(pipe, name: Optional[str]):
    """Swap the pipeline's scheduler for ``name``, keeping its config; ``None`` restores the one the
    pipeline was loaded with. ``name``: a key of ``SCHEDULERS`` or a diffusers scheduler class name
    (as ``settings["scheduler"]`` records it)."""
    if name is None:
        if getattr(pipe, "_loaded_scheduler", None) is not None:
            pipe.scheduler = pipe._loaded_scheduler
        return pipe
    import diffusers

    class_name = SCHEDULERS.get(name, name)
    cls = getattr(diffusers, class_name, None) if class_name.endswith("Scheduler") else None
    if cls is None or not issubclass(cls, diffusers.SchedulerMixin):
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)} "
                         "or a diffusers scheduler class name")
    if getattr(pipe, "_loaded_scheduler", None) is None:
        pipe._loaded_scheduler = pipe.scheduler
    if type(pipe.scheduler) is not cls:
        pipe.scheduler = cls.from_config(pipe._loaded_scheduler.config)
    return pipe


def configure_memory(pipe, cpu_offload: bool = False, attention_slicing: bool = False, vae_tiling: bool = False):
    """diffusers' memory savers: model CPU offload (needs accelerate and a GPU), attention slicing, VAE tiling."""
    if cpu_offload:
        pipe.enable_model_cpu_offload()
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    return pipe


def dtype_kwargs(dtype: Optional[torch.dtype]) -> Dict[str, Any]:
    """The dtype argument of diffusers' loaders: ``dtype`` where diffusers takes it (it warns on
    ``torch_dtype`` since mid-2026), ``torch_dtype`` on older releases."""
    if dtype is None:
        return {}
    from diffusers.utils import deprecation_utils

    return {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": dtype}


def check_device(device: Optional[Union[str, torch.device]]) -> None:
    """A ``ValueError`` for a device that is misspelled or not present, before anything is loaded."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index is not None and dev.index >= count):
            raise ValueError(f"device {str(device)!r} is not available here ({count} CUDA device(s) found); use 'cpu'")
    if dev.type == "mps" and not mps_available():
        raise ValueError(f"device {str(device)!r} is not available here; use 'cpu'")


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def _local_only(local_files_only: Optional[bool]) -> bool:
    return local_files_only if local_files_only is not None else os.environ.get("HF_HUB_OFFLINE") == "1"


def _check_base(base: str, local_only: bool = False) -> None:
    """A base must be a diffusers folder, or a hub id (``owner/name``), cached when nothing may be fetched."""
    path = Path(base)
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ValueError(f"base {base!r} is a folder without model_index.json: not a diffusers pipeline folder")
        return
    if path.exists():
        raise ValueError(f"base {base!r} is a file but not a .safetensors/.ckpt checkpoint")
    if "/" not in base or base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise ValueError(f"unknown base {base!r}: not a local folder, file or hub id")
    if local_only and _cached_folder(base) is None:
        raise ValueError(
            f"base {base!r} is not in the Hugging Face cache and nothing may be fetched "
            "(HF_HUB_OFFLINE=1 or local_files_only=True): download it once, or pass a local folder"
        )


def _cached_folder(repo_id: str) -> Optional[str]:
    """The cached snapshot folder of the pipeline ``repo_id`` (its ``model_index.json``), or None;
    only the Hugging Face cache is read."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "model_index.json")
    return os.path.dirname(found) if isinstance(found, str) else None


def _single_file_config(base: str, method: str, config: Optional[Union[str, os.PathLike]]) -> str:
    """The local diffusers folder describing the single-file ``base``: ``config``, else the
    method's default base from the Hugging Face cache; a ``ValueError`` when there is none."""
    config = config if config is not None else cached_base_config(method)
    if config is None:
        default = get_method(method).default_base
        raise ValueError(
            f"base {base!r} is a single-file checkpoint: pass single_file_config= (a local diffusers "
            f"folder of the same model family, e.g. a saved pipeline), since nothing can be fetched; "
            f"or put the configs of {default} in the Hugging Face cache once: "
            f"hf download {default} --include '*.json' '*.txt'"
        )
    if not (Path(config) / "model_index.json").is_file():
        raise ValueError(
            f"single_file_config {str(config)!r} is not a local diffusers folder (no model_index.json in it); "
            "point it at a saved pipeline or a downloaded base of the same family as the checkpoint"
        )
    return str(config)


def _from_single_file(cls: Type, base: str, method: str, config: str, dtype, extra: Dict[str, Any]):
    """``cls.from_single_file`` on an original-layout checkpoint described by the folder ``config``.

    The depth estimator and the control model are always passed in (``extra``): the file holds
    the base only. Nothing is fetched; every failure becomes one ``ValueError`` naming the file.
    """
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    try:
        return cls.from_single_file(base, config=str(config), local_files_only=True, **dtype_kwargs(dtype), **extra)
    except (SingleFileComponentError, KeyError, RuntimeError, ValueError) as exc:
        # missing components, or shapes that do not fit the config (another model family)
        raise ValueError(
            f"cannot load single-file base {base!r} for {method} with the config folder {str(config)!r}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from None


def cached_base_config(method: str) -> Optional[str]:
    """The folder of ``method``'s default base in the Hugging Face cache, if its configs are there.

    It describes single-file checkpoints of that family when no ``single_file_config`` is given;
    only the cache is read, nothing is fetched.
    """
    return _cached_folder(get_method(method).default_base)


def _load_error(base: str, what: str, exc: Exception) -> ValueError:
    return ValueError(f"cannot load base {base!r} for {what}: {str(exc).splitlines()[0]}")


def _cast(module: torch.nn.Module, dtype: Optional[torch.dtype]) -> torch.nn.Module:
    """``module`` in ``dtype``; untouched when it already is (diffusers warns on every ``.to(dtype)``)."""
    if dtype is not None and any(p.dtype != dtype for p in module.parameters()):
        module.to(dtype=dtype)
    return module


def _control_model(kind: str, source: Union[str, os.PathLike, torch.nn.Module], dtype, local_only: bool):
    if isinstance(source, torch.nn.Module):  # a loaded model joins the pipeline in the pipeline's dtype
        return _cast(source, dtype)
    import diffusers

    cls = {"controlnet": diffusers.ControlNetModel, "controlnet_union": diffusers.ControlNetUnionModel,
           "adapter": diffusers.T2IAdapter}[kind]
    try:
        return cls.from_pretrained(str(source), local_files_only=local_only, **dtype_kwargs(dtype))
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ValueError(f"cannot load the {kind} {source!r}: {str(exc).splitlines()[0]}") from None


DepthModelArg = Union[str, os.PathLike, DepthEstimator, MidasDepthEstimator]


def _depth_component(depth_model: DepthModelArg, cache: Optional[ModelCache], weights_dir) -> MidasDepthEstimator:
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
    control_model: Optional[Union[str, os.PathLike, torch.nn.Module]] = None,
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
    ``dpt_beit_large_512``.
    ``cache``: where the pipeline and its depth model are kept for the next call (default: the
    process-wide ``ModelCache``; ``None`` loads a fresh pipeline and keeps nothing).
    ``control_model``: the ControlNet / adapter (id, folder or loaded model); default: the base
    folder's own, else the method's default.
    ``cpu_offload`` / ``attention_slicing`` / ``vae_tiling``: diffusers' memory savers, applied once
    at load (they are part of the cache key); with ``cpu_offload`` the pipeline is not moved to
    ``device`` (offload moves each model to the GPU when it runs).
    """
    spec = get_method(method)
    check_device(device)
    base = os.path.expanduser(str(base)) if base is not None else spec.default_base
    if single_file_config is not None:
        single_file_config = os.path.expanduser(str(single_file_config))
    local_only = _local_only(local_files_only)
    cache = _cache(cache)
    key = (method, base,
           str(depth_model) if isinstance(depth_model, (str, os.PathLike, type(None))) else id(depth_model),
           str(control_model) if not isinstance(control_model, torch.nn.Module) else id(control_model),
           str(dtype), str(device), str(single_file_config), str(weights_dir), cpu_offload, attention_slicing,
           vae_tiling)
    cached = cache.peek("pipeline", key) if cache is not None else None
    if cached is not None:  # a hit (counted as one); it cannot be lost to an eviction in between
        return cache.get("pipeline", key, lambda: cached)
    # the base is checked before any model is loaded or evicted, so a typo fails at once
    single_file = Path(base).suffix in (".safetensors", ".ckpt") and Path(base).is_file()
    if single_file:
        single_file_config = _single_file_config(base, method, single_file_config)
    else:
        _check_base(base, local_only)

    def load():
        pipe = _load_pipeline(spec, base, depth_model, control_model, dtype, None if cpu_offload else device,
                              single_file_config, single_file, local_only, weights_dir, cache)
        return configure_memory(pipe, cpu_offload, attention_slicing, vae_tiling)

    return load() if cache is None else cache.get("pipeline", key, load)


def _load_pipeline(spec: MethodSpec, base: str, depth_model, control_model, dtype, device, single_file_config,
                   single_file: bool, local_only: bool, weights_dir, cache: Optional[ModelCache]):
    method = spec.name
    import midas_diffusion.pipelines as package

    cls: Type = getattr(package, spec.pipeline_class)
    path = Path(base)
    # a saved pipeline folder brings its own components; explicit arguments override them
    in_folder = {p.name for p in path.iterdir() if p.is_dir()} if path.is_dir() else set()
    extra: Dict[str, Any] = {}
    if depth_model is not None or "depth_estimator" not in in_folder:
        extra["depth_estimator"] = _depth_component(depth_model or DEFAULT_DEPTH_MODEL, cache, weights_dir)
    if spec.control_kind:
        slot = "controlnet" if spec.control_kind != "adapter" else "adapter"
        if control_model is not None or slot not in in_folder:
            extra[slot] = _control_model(spec.control_kind, control_model or spec.default_control, dtype, local_only)
    try:
        if single_file:
            pipe = _from_single_file(cls, base, method, single_file_config, dtype, extra)
        else:
            pipe = cls.from_pretrained(base, local_files_only=local_only, **dtype_kwargs(dtype), **extra)
    except (OSError, EnvironmentError) as exc:
        raise _load_error(base, method, exc) from None
    if dtype is not None:
        _cast(pipe.depth_estimator, torch.float32)  # depth runs in fp32 unless the caller changes it
    if device is not None:
        pipe.to(device)
    return pipe


def clear_cache() -> None:
    """Empty the process-wide cache: every pipeline and depth model it holds (their memory is freed
    once no one else holds them)."""
    default_cache().clear()


# keys of ``MidasPipelineOutput.settings`` that describe a run but are not arguments
RECORD_ONLY = ("depth_model_name",)


def pipeline(
    image: Any,
    prompt: str,
    *,
    method: str = DEFAULT_METHOD,
    base: Optional[Union[str, os.PathLike]] = None,
    depth_model: Optional[DepthModelArg] = None,
    control_model: Optional[Union[str, os.PathLike, torch.nn.Module]] = None,
    seed: Optional[int] = None,
    dtype: Optional[torch.dtype] = None,
    device: Optional[Union[str, torch.device]] = None,
    single_file_config: Optional[Union[str, os.PathLike]] = None,
    scheduler: Optional[str] = None,
    cpu_offload: bool = False,
    attention_slicing: bool = False,
    vae_tiling: bool = False,
    cache: CacheArg = True,
    **kwargs,
) -> MidasPipelineOutput:
    """Restyle ``image`` with ``prompt`` keeping its depth, in one call.

    Loads (and caches) what it needs, estimates depth (cached per image and settings), runs the
    method, and returns ``MidasPipelineOutput(images, disparity, settings)``. ``settings`` holds
    the seed (drawn at random when not given) and the other arguments, so that
    ``pipeline(image, **out.settings)`` reproduces the result: ``depth_model`` / ``control_model``
    are the arguments as given (None: the base's own, else the method's default), and
    ``depth_model_name`` names the model that made the depth. A ``background_mask`` is not recorded.
    Keyword arguments go to the pipeline (``num_inference_steps``, ``guidance_scale``,
    ``negative_prompt``, ``strength``, ``processing_resolution``, ``percentile``, ``gamma``,
    ``invert``, ``background_mask``, ...).
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    pipe = load_pipeline(method, base, depth_model, control_model, dtype=dtype, device=device,
                         single_file_config=single_file_config, cpu_offload=cpu_offload,
                         attention_slicing=attention_slicing, vae_tiling=vae_tiling, cache=cache)
    set_scheduler(pipe, scheduler)
    if seed is None and kwargs.get("generator") is None:
        seed = random.SystemRandom().randrange(2**31)
    for informational in RECORD_ONLY:  # settings of an earlier result may be passed back whole
        kwargs.pop(informational, None)
    out = pipe(prompt, image=image, seed=seed, **kwargs)
    out.settings.update(
        method=method, base=str(base or get_method(method).default_base),
        single_file_config=None if single_file_config is None else str(single_file_config),
        depth_model=depth_model if depth_model is None or isinstance(depth_model, (str, os.PathLike)) else depth_model.model_name,
        depth_model_name=pipe.depth_estimator.model_name,
        control_model=str(control_model) if isinstance(control_model, (str, os.PathLike)) else None,
    )
    return out


DEFAULT_RGBD_BASE = "Intel/ldm3d-4c"


def load_rgbd_pipeline(base: Optional[Union[str, os.PathLike]] = None, *, dtype: Optional[torch.dtype] = None,
                       device: Optional[Union[str, torch.device]] = None, local_files_only: Optional[bool] = None,
                       cache: CacheArg = True):
    """The LDM3D text-to-RGBD pipeline on ``base`` (``Intel/ldm3d-4c``, ``Intel/ldm3d``,
    ``Intel/ldm3d-pano`` or a local folder), cached like ``load_pipeline``."""
    base = os.path.expanduser(str(base or DEFAULT_RGBD_BASE))
    local_only = _local_only(local_files_only)
    check_device(device)
    _check_base(base, local_only)
    cache = _cache(cache)
    if cache is None:
        return _load_rgbd_pipeline(base, dtype, device, local_only)
    return cache.get("pipeline", ("rgbd", base, str(dtype), str(device)),
                     lambda: _load_rgbd_pipeline(base, dtype, device, local_only))


def _load_rgbd_pipeline(base: str, dtype, device, local_only: bool):
    from .pipeline_midas_ldm3d import MidasLDM3DPipeline

    try:
        pipe = MidasLDM3DPipeline.from_pretrained(base, **dtype_kwargs(dtype), local_files_only=local_only,
                                                  safety_checker=None, feature_extractor=None)
    except (OSError, EnvironmentError) as exc:
        raise _load_error(base, "rgbd", exc) from None
    if device is not None:
        pipe.to(device)
    return pipe
