"""Host-free helpers the front ends share: a cache of loaded depth models and frame-wise depth.

A model is loaded once per (name or path, device, dtype, weights folder) and reused by every node
execution, preprocessor call and tab click; ``cache_info()["loads"]`` counts real loads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch

from midas_diffusion import DepthEstimator

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

_MODELS: Dict[tuple, DepthEstimator] = {}
_LOCK = threading.Lock()
_STATS = {"loads": 0}


def resolve_device(device: Union[str, torch.device, None] = "auto") -> torch.device:
    """``"auto"``: ComfyUI's device when running inside ComfyUI, else the CPU."""
    if device in (None, "", "auto"):
        try:
            import comfy.model_management as mm  # only present inside ComfyUI

            return torch.device(mm.get_torch_device())
        except ImportError:
            return torch.device("cpu")
    return torch.device(device)


def resolve_dtype(dtype: Union[str, torch.dtype, None]) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def _source_key(name_or_path: str) -> Tuple[str, float]:
    """A path is keyed by its absolute form and modification time (a rewritten file reloads)."""
    if os.path.exists(name_or_path):
        path = Path(name_or_path).resolve()
        target = path / "model.safetensors" if path.is_dir() else path
        return str(path), target.stat().st_mtime if target.exists() else 0.0
    return name_or_path, 0.0


def load_estimator(
    name_or_path: str,
    device: Union[str, torch.device, None] = "auto",
    dtype: Union[str, torch.dtype, None] = "float32",
    weights_dir: Optional[Union[str, os.PathLike]] = None,
) -> DepthEstimator:
    """A zoo name, checkpoint file or saved folder as a ``DepthEstimator`` on ``device``/``dtype``,
    loaded once and then served from the cache."""
    if not name_or_path:
        raise ValueError("no depth model given: pick a zoo model or give a checkpoint file or folder")
    device_t, dtype_t = resolve_device(device), resolve_dtype(dtype)
    weights = str(Path(weights_dir).expanduser().resolve()) if weights_dir else os.environ.get("MIDAS_DIFFUSION_WEIGHTS", "")
    key = (*_source_key(str(name_or_path)), str(device_t), str(dtype_t), weights)
    with _LOCK:
        est = _MODELS.get(key)
        if est is None:
            est = DepthEstimator.from_pretrained(str(name_or_path), weights_dir=weights_dir or None)
            est.to(device_t, dtype_t)
            _MODELS[key] = est
            _STATS["loads"] += 1
        return est


def cache_info() -> Dict[str, Any]:
    """``{"loads": real loads so far, "cached": models held now}``."""
    return {"loads": _STATS["loads"], "cached": len(_MODELS)}


def clear_models() -> None:
    """Forget every cached model (their memory is freed once nothing else holds them)."""
    with _LOCK:
        _MODELS.clear()


def at_resolution(est: DepthEstimator, resolution: Optional[int]) -> DepthEstimator:
    """The same network at another processing resolution (shares the weights; nothing reloads)."""
    return est.at_resolution(resolution)


def disparity_frames(est: DepthEstimator, frames: torch.Tensor, processing_resolution: Optional[int] = None,
                     percentile=None, gamma: float = 1.0, invert: bool = False) -> torch.Tensor:
    """``frames`` (B,H,W,3) float in [0,1] (ComfyUI's IMAGE layout) -> disparity (B,H,W) float32
    in [0,1], near = 1 (0 with ``invert``), each frame estimated and normalized on its own."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"image must be a (B,H,W,C) tensor with C in 1, 3, 4; got {shape}")
    runner = at_resolution(est, processing_resolution)
    maps = []
    for frame in frames:
        chw = frame[..., :3].permute(2, 0, 1).float().clamp(0, 1).cpu()
        if chw.shape[0] == 1:
            chw = chw.expand(3, -1, -1)
        out = runner(chw, percentile=percentile, gamma=gamma, invert=invert)
        maps.append(out.disparity[0, 0])
    return torch.stack(maps).float()
