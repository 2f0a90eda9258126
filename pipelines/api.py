"""The one-call API: ``pipeline(image, prompt)``, and the loaders it stands on.

``pipeline`` loads (through ``load.load_pipeline``, cached), runs and returns the typed output;
``load_pipeline``, ``load_rgbd_pipeline`` and ``clear_cache`` are importable from here as well.
"""

from __future__ import annotations

import os
import random
from typing import Any, Optional, Union

import torch

from .cancel import CancelToken
from .control_models import ControlModelArg
from .load import DepthModelArg, clear_cache, load_pipeline
from .load_rgbd import load_rgbd_pipeline
from .methods import DEFAULT_METHOD
from .model_cache import CacheArg
from .outputs import MidasPipelineOutput
from .schedulers import set_scheduler

__all__ = ["clear_cache", "load_pipeline", "load_rgbd_pipeline", "pipeline"]


def pipeline(
    image: Any,
    prompt: str,
    *,
    method: str = DEFAULT_METHOD,
    base: Optional[Union[str, os.PathLike]] = None,
    depth_model: Optional[DepthModelArg] = None,
    control_model: Optional[ControlModelArg] = None,
    seed: Optional[int] = None,
    dtype: Optional[torch.dtype] = None,
    device: Optional[Union[str, torch.device]] = None,
    single_file_config: Optional[Union[str, os.PathLike]] = None,
    scheduler: Optional[str] = None,
    cpu_offload: bool = False,
    attention_slicing: bool = False,
    vae_tiling: bool = False,
    cache: CacheArg = True,
    cancel: Optional[CancelToken] = None,
    **kwargs,
) -> MidasPipelineOutput:
    """Restyle ``image`` with ``prompt`` keeping its depth, in one call.

    Loads (and caches) what it needs, estimates depth (cached per image and settings), runs the
    method, and returns ``MidasPipelineOutput(images, disparity, settings)``. ``settings`` holds
    the seed (drawn at random when not given) and the other arguments, so that
    ``pipeline(image, **out.settings)`` reproduces the result; ``settings["depth_model"]`` names the
    depth model that ran (its zoo name, or the checkpoint / folder it was loaded from),
    ``control_model`` is the argument as given (None: the base's own, else the method's default). A ``background_mask`` is not recorded.
    ``cancel``: a ``midas_diffusion.pipelines.cancel.CancelToken``; ``token.cancel()`` from another
    thread stops the run at the next denoising step with ``Cancelled`` (no output).
    Keyword arguments go to the pipeline (``num_inference_steps``, ``guidance_scale``,
    ``negative_prompt``, ``strength``, ``processing_resolution``, ``percentile``, ``gamma``,
    ``invert``, ``background_mask``, ``callback_on_step_end``, ...).
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    pipe = load_pipeline(method, base, depth_model, control_model, dtype=dtype, device=device,
                         single_file_config=single_file_config, cpu_offload=cpu_offload,
                         attention_slicing=attention_slicing, vae_tiling=vae_tiling, cache=cache)
    set_scheduler(pipe, scheduler)
    if seed is None and kwargs.get("generator") is None:
        seed = random.SystemRandom().randrange(2**31)
    return pipe(prompt, image=image, seed=seed, cancel=cancel, **kwargs)
