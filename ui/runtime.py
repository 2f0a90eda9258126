"""Host-free helpers the front ends share: loading depth models through the one model cache, and
frame-wise depth.

Every front end loads through ``load_estimator``, which keeps models in a
``midas_diffusion.inference.cache.ModelCache`` (default: the process-wide one, shared with ``pipeline()``):
a model is loaded once per (name or path, device, dtype, weights folder) and reused by every node
execution, preprocessor call and tab click, at most two depth models at a time.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import torch

from midas_diffusion import DepthEstimator
from midas_diffusion.inference.cache import ModelCache, default_cache, load_depth_model
from midas_diffusion.inference.devices import resolve_device
from midas_diffusion.inference.precision import parse_dtype

def host_device(device: Union[str, torch.device, None] = "auto") -> torch.device:
    """A device control's value: ``"auto"`` is the host's device (ComfyUI's inside ComfyUI, the
    ControlNet device inside A1111/Forge, else the CPU); any other name is checked by
    ``inference.devices.resolve_device``."""
    if device not in (None, "", "auto"):
        return resolve_device(device)
    try:
        import comfy.model_management as mm  # only present inside ComfyUI

        return torch.device(mm.get_torch_device())
    except ImportError:
        pass
    try:
        from modules import devices  # only present inside A1111/Forge

        return torch.device(devices.get_device_for("controlnet") if hasattr(devices, "get_device_for") else devices.device)
    except ImportError:
        return torch.device("cpu")


def pipeline_dtype(dtype: Union[str, torch.dtype, None], device: Union[str, torch.device]) -> Optional[torch.dtype]:
    """A dtype control's value for a diffusion pipeline: None (load in float32) or a half type;
    ``"auto"`` is float16 on CUDA and float32 elsewhere (diffusion in bf16/fp16 on a CPU is slow)."""
    resolved = parse_dtype(dtype)
    if resolved == "auto":
        resolved = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return None if resolved == torch.float32 else resolved


def load_estimator(
    name_or_path: str,
    device: Union[str, torch.device, None] = "auto",
    dtype: Union[str, torch.dtype, None] = "auto",
    weights_dir: Optional[Union[str, os.PathLike]] = None,
    cache: Optional[ModelCache] = None,
    **kwargs: Any,
) -> DepthEstimator:
    """A zoo name, checkpoint file or saved folder as a ``DepthEstimator`` on ``device``/``dtype``,
    loaded once and then served from ``cache`` (default: the process-wide cache). Other keyword
    arguments go to ``DepthEstimator.from_pretrained`` (``max_pixels``, ...)."""
    if not name_or_path:
        raise ValueError("no depth model given: pick a zoo model or give a checkpoint file or folder")
    weights = os.path.abspath(os.path.expanduser(str(weights_dir))) if weights_dir else None
    return load_depth_model(str(name_or_path), device=host_device(device), dtype=parse_dtype(dtype),
                            weights_dir=weights, cache=cache, **kwargs)


def cache_info(cache: Optional[ModelCache] = None) -> Dict[str, Any]:
    """``{"loads": real loads so far, "cached": depth models held now, ...}`` (the cache's counts)."""
    counts = (cache or default_cache()).counts()
    return dict(counts, cached=counts["depth"])


def clear_models(cache: Optional[ModelCache] = None) -> None:
    """Forget every cached depth model (their memory is freed once nothing else holds them)."""
    (cache or default_cache()).clear("depth")


def at_resolution(est: DepthEstimator, resolution: Optional[int]) -> DepthEstimator:
    """The same network at another processing resolution (shares the weights; nothing reloads)."""
    return est.at_resolution(resolution)


def disparity_map(est: DepthEstimator, image: Any, processing_resolution: Optional[int] = None, percentile=None,
                  gamma: float = 1.0, invert: bool = False):
    """One image's (H,W) float32 disparity as a numpy array; the settings are ``params.depth_settings``'."""
    return estimate(est, image, processing_resolution, percentile, gamma, invert).disparity[0, 0].numpy()


def estimate(est: DepthEstimator, image: Any, processing_resolution: Optional[int] = None, percentile=None,
             gamma: float = 1.0, invert: bool = False):
    """One image's ``DepthOutput`` (``.disparity``; ``.metres`` for a metric model)."""
    runner = at_resolution(est, processing_resolution)
    return runner(image, percentile=percentile, gamma=gamma, invert=invert)


def check_frames(frames: Any) -> None:
    """ValueError unless ``frames`` is a (B,H,W,C) tensor with C in 1, 3, 4 (ComfyUI's IMAGE)."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"image must be a (B,H,W,C) tensor with C in 1, 3, 4; got {shape}")


def disparity_frames(est: DepthEstimator, frames: torch.Tensor, processing_resolution: Optional[int] = None,
                     percentile=None, gamma: float = 1.0, invert: bool = False, progress: Any = None) -> torch.Tensor:
    """``frames`` (B,H,W,3) float in [0,1] (ComfyUI's IMAGE layout) -> disparity (B,H,W) float32
    in [0,1], near = 1 (0 with ``invert``), each frame estimated and normalized on its own.
    ``progress``: an object with ``check()`` (called before each frame; it may raise to stop) and
    ``set(done)`` (after each), e.g. a host's progress bar."""
    return _frames(est, frames, "disparity", processing_resolution, progress,
                   dict(percentile=percentile, gamma=gamma, invert=invert))


def metres_frames(est: DepthEstimator, frames: torch.Tensor, processing_resolution: Optional[int] = None,
                  progress: Any = None) -> torch.Tensor:
    """A metric model's depth of each frame in metres, (B,H,W) float32 (frames and ``progress`` as
    ``disparity_frames``); ``ValueError`` for a relative model."""
    if est.spec.predicts != "metres":
        raise ValueError(f"{est.spec.name} predicts relative disparity, not metres: give known depths to fit metres")
    return _frames(est, frames, "metres", processing_resolution, progress, {})


def _frames(est: DepthEstimator, frames: torch.Tensor, which: str, processing_resolution, progress, settings
            ) -> torch.Tensor:
    check_frames(frames)
    runner = at_resolution(est, processing_resolution)
    maps = []
    for i, frame in enumerate(frames):
        if progress is not None:
            progress.check()
        chw = frame[..., :3].permute(2, 0, 1).float().clamp(0, 1).cpu()
        if chw.shape[0] == 1:
            chw = chw.expand(3, -1, -1)
        out = runner(chw, **settings)
        maps.append(getattr(out, which)[0, 0])
        if progress is not None:
            progress.set(i + 1)
    return torch.stack(maps).float()
