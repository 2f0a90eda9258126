"""The steps every MiDaS pipeline's ``__call__`` takes around its diffusers parent, as plain functions.

The MiDaS keyword arguments (depth settings, background mask, ``rgbd``, ``seed``, ``cancel``) are
defined once, in ``MidasArguments``. Each pipeline file then reads top to bottom:

1. ``check_call`` (and ``check_no_strength`` for the methods that generate from noise) -- the
   arguments, before anything runs;
2. ``prepare_depth`` -- the photo's disparity (estimated by the ``depth_estimator`` component,
   cached, or the user's ``depth_map``), the background mask, the working size (a multiple the VAE
   and the control model accept) and the photo at that size;
3. ``generator_for`` / ``prompts_for_images`` -- the seed and one prompt per photo;
4. ``step_end_arguments`` (``cancel.py``) -- the ``cancel`` token checked at every step end, beside
   the caller's ``callback_on_step_end``;
5. the diffusers parent's ``__call__``;
6. ``midas_output`` -- the images back at the photo's size, the RGBD disparity, the typed output
   with the settings that reproduce the call (``outputs.run_settings``).

depth2img calls them one by one; the ControlNet and adapter pipelines, whose control image is the
disparity itself, take steps 1-4 in one ``prepare_control`` and step 6 in ``ControlCall.finish``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, Optional, Tuple

import PIL.Image
import torch
import torch.nn.functional as F

from midas_diffusion.io.images import to_compact_tensors, to_float_rgb

from .cancel import CancelToken, check_cancelled, step_end_arguments
from .components import DepthSettings
from .disparity import apply_background, check_background, check_disparity, control_image
from .outputs import MidasPipelineOutput, run_settings

RGBD_MODES = (None, "conditioning", "reestimate")


@dataclass(frozen=True)
class MidasArguments:
    """The keyword arguments every MiDaS pipeline's ``__call__`` takes beside its diffusers parent's:
    their one definition, defaults included.

    ``processing_resolution``, ``percentile``, ``gamma``, ``invert``: how the disparity is made
    (``DepthSettings``); ``background_mask`` (1 = subject, any size of the photo's aspect ratio)
    with ``background_weight`` (0 flattens the background's depth, 0.5 halves it); ``rgbd``: None,
    ``"conditioning"`` or ``"reestimate"`` (see ``MidasPipelineOutput.output_disparity``);
    ``seed``: the seed of a CPU generator (a given ``generator`` wins); ``cancel``: a
    ``CancelToken`` that stops the run at the next step (``Cancelled``, see ``cancel.py``).
    """

    processing_resolution: Optional[int] = None
    percentile: Optional[Tuple[float, float]] = None
    gamma: float = 1.0
    invert: bool = False
    background_mask: Any = None
    background_weight: float = 0.0
    rgbd: Optional[str] = None
    seed: Optional[int] = None
    cancel: Optional[CancelToken] = None

    @classmethod
    def take(cls, kwargs: Dict[str, Any]) -> "MidasArguments":
        """Those given in ``kwargs``, removed from it (the rest is for the diffusers parent)."""
        return cls(**{f.name: kwargs.pop(f.name) for f in fields(cls) if f.name in kwargs})

    @property
    def depth_settings(self) -> DepthSettings:
        return DepthSettings(self.processing_resolution, self.percentile, self.gamma, self.invert)


@dataclass
class PreparedDepth:
    image: Any  # what the diffusers parent gets as its photo (None for pure ControlNet/adapter)
    disparity: torch.Tensor  # (B,1,H,W) at the original size
    work_disparity: torch.Tensor  # (B,1,h,w) at the working size
    size: Tuple[int, int]  # original (H, W)
    work_size: Tuple[int, int]  # multiple of the VAE factor
    metres: Optional[torch.Tensor] = None  # (B,1,H,W) a metric depth model's metres (None: relative or depth_map)


def check_call(*, num_inference_steps=None, strength=None, guidance_scale=None, num_images_per_prompt=None,
               rgbd=None) -> None:
    """One ``ValueError`` naming the argument, before any model runs."""
    if num_inference_steps is not None and (not isinstance(num_inference_steps, int) or num_inference_steps < 1):
        raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}")
    if strength is not None and not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength!r}")
    if strength is not None and num_inference_steps is not None and int(num_inference_steps * strength) < 1:
        raise ValueError(
            f"strength={strength!r} with num_inference_steps={num_inference_steps} leaves no denoising step "
            "(diffusers runs int(steps * strength)): raise strength or num_inference_steps"
        )
    if guidance_scale is not None and guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale!r}")
    if num_images_per_prompt is not None and num_images_per_prompt < 1:
        raise ValueError(f"num_images_per_prompt must be >= 1, got {num_images_per_prompt!r}")
    if rgbd not in RGBD_MODES:
        raise ValueError(f"rgbd must be None, 'conditioning' or 'reestimate', got {rgbd!r}")


def check_no_strength(kwargs: Dict[str, Any], what: str) -> None:
    """``strength`` belongs to depth2img; ``what`` (e.g. "ControlNet") generates from noise."""
    if "strength" in kwargs:
        raise ValueError(f"strength applies to depth2img only; {what} generates from noise")


def working_size(height: int, width: int, multiple: int = 8) -> Tuple[int, int]:
    """Nearest multiple of ``multiple`` (at least one multiple) for each side."""
    def snap(x):
        return max(multiple, int(round(x / multiple)) * multiple)

    return snap(height), snap(width)


def prepare_depth(
    depth_estimator: Any,
    image: Any,
    depth_map: Any,
    settings: DepthSettings,
    background_mask: Any = None,
    background_weight: float = 0.0,
    *,
    multiple: int = 8,
    keep_image: bool = True,
    cancel: Optional[CancelToken] = None,
) -> PreparedDepth:
    """The disparity that conditions the call, and the photo at the working size.

    ``depth_map`` (the user's disparity) wins over estimating; the mask is checked before any depth
    is estimated. The working size is the nearest multiple of ``multiple`` per side. A set
    ``cancel`` token stops the call before the depth model runs.
    """
    if image is None and depth_map is None:
        raise ValueError("image is required (or pass depth_map for the conditioning)")
    check_cancelled(cancel)
    max_pixels = getattr(depth_estimator.config, "max_pixels", None) if depth_estimator is not None else None
    # converted once, here, and kept compact (uint8 stays uint8): the same tensors travel through the
    # depth component to the estimator (a CompactImages is not converted again), which widens them
    # on its own device; only depth2img needs the photo as float
    rgb = to_compact_tensors(image, max_pixels) if image is not None else None
    if rgb is not None and len({tuple(t.shape[-2:]) for t in rgb}) > 1:
        raise ValueError("all images of one call must have the same size")
    if depth_map is not None:
        size = tuple(rgb[0].shape[-2:]) if rgb is not None else None
        disparity = check_disparity(depth_map, *(size or (None, None)))
        size, batch = tuple(disparity.shape[-2:]), disparity.shape[0]
    else:
        if depth_estimator is None:
            raise ValueError("this pipeline has no depth_estimator: pass depth_map=")
        size, batch = tuple(rgb[0].shape[-2:]), len(rgb)
    if background_mask is not None:  # checked before any depth is estimated
        background_mask = check_background(background_mask, background_weight, *size, batch=batch)
    metres = None
    if depth_map is None:
        disparity = torch.cat(depth_estimator.estimate(rgb, settings))
        spec = getattr(getattr(depth_estimator, "estimator", None), "spec", None)
        if spec is not None and spec.predicts == "metres":  # from the same cache: no second pass
            metres = torch.cat(depth_estimator.estimate_metres(rgb, settings))
    disparity = apply_background(disparity, background_mask, background_weight)
    height, width = disparity.shape[-2:]
    work = working_size(height, width, multiple=multiple)
    work_disparity = disparity
    if work != (height, width):
        work_disparity = F.interpolate(disparity, size=work, mode="bilinear", align_corners=False)
    parent_image = None
    if keep_image and rgb is not None:
        batch = torch.stack([to_float_rgb(t) for t in rgb])
        if work != tuple(batch.shape[-2:]):
            batch = F.interpolate(batch, size=work, mode="bicubic", align_corners=False).clamp(0, 1)
        parent_image = _as_parent_image(image, batch, unchanged=work == (height, width))
    return PreparedDepth(parent_image, disparity, work_disparity, (int(height), int(width)), work, metres)


def _as_parent_image(original: Any, batch: torch.Tensor, unchanged: bool) -> Any:
    """Keep PIL input as PIL when its size already fits (so results equal the upstream pipeline's);
    otherwise hand over the resized (B,3,h,w) tensor in [0,1]. numpy never goes to the parent as
    numpy (upstream depth2img swaps height and width for non-square arrays)."""
    if unchanged and isinstance(original, PIL.Image.Image):
        return original
    if unchanged and isinstance(original, list) and all(isinstance(i, PIL.Image.Image) for i in original):
        return original
    return batch


PROMPT_ARGUMENTS = ("negative_prompt", "prompt_2", "negative_prompt_2")


def prompts_for_images(prompt: Any, count: int, kwargs: Dict[str, Any]) -> Any:
    """One prompt for a batch of ``count`` photos becomes the prompt of each, as diffusers wants;
    string ``negative_prompt`` / ``prompt_2`` / ``negative_prompt_2`` in ``kwargs`` follow (in place)."""
    if not isinstance(prompt, str) or count < 2:
        return prompt
    for name in PROMPT_ARGUMENTS:
        if isinstance(kwargs.get(name), str):
            kwargs[name] = [kwargs[name]] * count
    return [prompt] * count


@dataclass
class ControlCall:
    """What a ControlNet / adapter pipeline hands its diffusers parent (from ``prepare_control``)."""

    depth: PreparedDepth
    control: torch.Tensor  # (B,3,h,w) in [0,1] at the working size
    midas: MidasArguments
    parent_kwargs: Dict[str, Any]  # for the parent: prompts, size, steps, generator, ..., the step-end check
    arguments: Dict[str, Any]  # the call's arguments shared by these methods, for the run's settings

    def finish(self, pipe: Any, images: Any, return_dict: bool, **arguments: Any):
        """``midas_output`` of the parent's ``images``; ``arguments``: the method's own, recorded."""
        return midas_output(pipe, images, self.depth, self.midas, output_type=self.parent_kwargs["output_type"],
                            return_dict=return_dict, arguments=dict(self.arguments, **arguments))


def prepare_control(
    pipe: Any,
    what: str,
    prompt: Any,
    image: Any,
    depth_map: Any,
    kwargs: Dict[str, Any],
    parent_call: Any,
    *,
    num_inference_steps: int,
    guidance_scale: float,
    num_images_per_prompt: int,
    generator: Any,
    output_type: str,
) -> ControlCall:
    """Steps 1-4 for the methods whose control image is the disparity (``what`` names the method
    in errors): the arguments checked, the depth at the working size (a multiple of
    ``pipe.size_multiple()``), the control image, the seed, one prompt per photo (``kwargs``' string
    negative prompts and ``prompt_2`` follow), and the ``cancel`` check at every step end of
    ``parent_call`` (the diffusers parent's ``__call__``, which the pipeline then calls with
    ``parent_kwargs``). ``kwargs`` (the call's other keyword arguments) is not changed."""
    kwargs = dict(kwargs)
    midas = MidasArguments.take(kwargs)
    check_no_strength(kwargs, what)
    check_call(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
               num_images_per_prompt=num_images_per_prompt, rgbd=midas.rgbd)
    arguments = dict(prompt=prompt, **({"prompt_2": kwargs["prompt_2"]} if "prompt_2" in kwargs else {}),
                     num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                     num_images_per_prompt=num_images_per_prompt, negative_prompt=kwargs.get("negative_prompt"))
    depth = prepare_depth(pipe.depth_estimator, image, depth_map, midas.depth_settings, midas.background_mask,
                          midas.background_weight, multiple=pipe.size_multiple(), keep_image=False, cancel=midas.cancel)
    generator, arguments["seed"] = generator_for(midas.seed, generator)
    control = control_image(depth.work_disparity)
    kwargs = step_end_arguments(midas.cancel, kwargs, parent_call)
    prompts = prompts_for_images(prompt, control.shape[0], kwargs)
    height, width = depth.work_size
    parent_kwargs = dict(kwargs, prompt=prompts, height=height, width=width, num_inference_steps=num_inference_steps,
                         guidance_scale=guidance_scale, num_images_per_prompt=num_images_per_prompt,
                         generator=generator, output_type=output_type, return_dict=True)
    return ControlCall(depth, control, midas, parent_kwargs, arguments)


def generator_for(seed: Optional[int], generator: Any) -> Tuple[Any, Optional[int]]:
    """``seed`` -> a CPU generator (reproducible on any device); a given ``generator`` wins."""
    if generator is not None:
        return generator, seed
    if seed is None:
        return None, None
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return torch.Generator("cpu").manual_seed(seed), seed


def restore_size(images: Any, size: Tuple[int, int], output_type: str) -> Any:
    """Resize generated images back to the input's (H, W)."""
    height, width = size
    if output_type == "latent" or images is None:
        return images
    if output_type == "pil":
        return [im if im.size == (width, height) else im.resize((width, height), PIL.Image.LANCZOS) for im in images]
    if output_type == "np":
        if images.shape[1:3] == (height, width):
            return images
        t = torch.from_numpy(images).permute(0, 3, 1, 2)
        t = F.interpolate(t, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
        return t.permute(0, 2, 3, 1).numpy()
    if output_type == "pt":
        if tuple(images.shape[-2:]) == size:
            return images
        return F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    return images


def rgbd_disparity(depth_estimator: Any, images: Any, prepared: PreparedDepth, mode: Optional[str], output_type: str,
                   settings: DepthSettings) -> Optional[torch.Tensor]:
    """Disparity aligned with each output image, for RGBD results (see ``MidasPipelineOutput``)."""
    if mode is None:
        return None
    if output_type == "latent":
        raise ValueError("rgbd needs decoded images: use output_type 'pil', 'np' or 'pt'")
    count = len(images)
    if mode == "conditioning":
        repeat = max(1, count // prepared.disparity.shape[0])
        return prepared.disparity.repeat_interleave(repeat, dim=0)[:count]
    if depth_estimator is None:
        raise ValueError("rgbd='reestimate' needs a depth_estimator")
    if output_type == "pt":
        images = [im.float().clamp(0, 1).cpu() for im in images]
    return torch.cat(depth_estimator.estimate(list(images), settings))


def rgbd_metres(depth_estimator: Any, images: Any, prepared: PreparedDepth, mode: Optional[str],
                settings: DepthSettings) -> Optional[torch.Tensor]:
    """A metric depth model's metres aligned with each output image (as ``rgbd_disparity``), for
    RGBD exports in metres; None for a relative model, a given ``depth_map`` or no ``rgbd``."""
    if mode is None or prepared.metres is None:
        return None
    count = len(images)
    if mode == "conditioning":
        repeat = max(1, count // prepared.metres.shape[0])
        return prepared.metres.repeat_interleave(repeat, dim=0)[:count]
    if isinstance(images, torch.Tensor) or (isinstance(images, list) and images and isinstance(images[0], torch.Tensor)):
        images = [im.float().clamp(0, 1).cpu() for im in images]
    return torch.cat(depth_estimator.estimate_metres(list(images), settings))  # cached by rgbd_disparity's run


def midas_output(pipe: Any, images: Any, prepared: PreparedDepth, midas: MidasArguments, *, output_type: str,
                 return_dict: bool, arguments: Dict[str, Any]):
    """Restore the photo's size, add the RGBD disparity, and build the typed output with the run's
    settings (``outputs.run_settings`` of the call's ``arguments``), or the tuple
    ``(images, disparity)`` with ``return_dict=False``."""
    settings = midas.depth_settings
    images = restore_size(images, prepared.size, output_type)
    output_disparity = rgbd_disparity(pipe.depth_estimator, images, prepared, midas.rgbd, output_type, settings)
    disparity = prepared.disparity.float().cpu()  # results are CPU tensors, wherever the depth ran
    output_disparity = None if output_disparity is None else output_disparity.float().cpu()
    output_metres = rgbd_metres(pipe.depth_estimator, images, prepared, midas.rgbd, settings)
    output_metres = None if output_metres is None else output_metres.float().cpu()
    if not return_dict:
        return images, disparity
    return MidasPipelineOutput(images=images, disparity=disparity, settings=run_settings(pipe, arguments, settings),
                               output_disparity=output_disparity, output_metres=output_metres)
