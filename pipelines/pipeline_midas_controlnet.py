"""ControlNet depth for Stable Diffusion 1.5 (e.g. ``lllyasviel/control_v11f1p_sd15_depth``),
conditioned on MiDaS disparity from the zoo as a float control image (no 8-bit round trip)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionControlNetPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTokenizer

from .call_steps import check_call, check_no_strength, midas_output, prepare_control
from .cancel import CancelToken
from .components import DepthSettings, MidasDepthEstimator
from .loading import MidasLoading


class MidasControlNetPipeline(MidasLoading, StableDiffusionControlNetPipeline):
    r"""Generate from ``prompt`` with the depth of ``image`` through a depth ControlNet.

    Args:
        vae, text_encoder, tokenizer, unet, controlnet, scheduler: as in diffusers.
        depth_estimator ([`MidasDepthEstimator`]): the zoo model that makes the disparity.
    """

    _optional_components = ["safety_checker", "feature_extractor", "image_encoder", "depth_estimator"]
    method_name = "controlnet"

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        controlnet: ControlNetModel,
        scheduler: KarrasDiffusionSchedulers,
        depth_estimator: Optional[MidasDepthEstimator] = None,
        safety_checker: Any = None,
        feature_extractor: Any = None,
        image_encoder: Any = None,
        requires_safety_checker: bool = False,
    ):
        super().__init__(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, controlnet=controlnet,
            scheduler=scheduler, safety_checker=safety_checker, feature_extractor=feature_extractor,
            image_encoder=image_encoder, requires_safety_checker=requires_safety_checker,
        )
        self.register_modules(depth_estimator=depth_estimator)

    def size_multiple(self) -> int:
        """What the working size must be a multiple of: the VAE's downscaling factor."""
        return int(self.vae_scale_factor)

    @torch.no_grad()
    def __call__(
        self, prompt=None, image=None, depth_map: Optional[torch.Tensor] = None,
        num_inference_steps: int = 50, guidance_scale: float = 7.5, controlnet_conditioning_scale: float = 1.0,
        num_images_per_prompt: int = 1, *, seed: Optional[int] = None, generator=None,
        processing_resolution: Optional[int] = None, percentile: Optional[Tuple[float, float]] = None, gamma: float = 1.0,
        invert: bool = False, background_mask=None, background_weight: float = 0.0, rgbd: Optional[str] = None,
        output_type: str = "pil", return_dict: bool = True, cancel: Optional[CancelToken] = None, **kwargs,
    ):
        """``image``: the photo whose depth conditions the result (or pass ``depth_map``, a disparity
        (B,1,H,W) in [0,1]); the depth controls (``processing_resolution``, ``percentile``, ``gamma``,
        ``invert``, ``background_mask`` with ``background_weight``) shape that disparity. ``cancel``:
        a ``CancelToken`` that stops the run at the next step (``Cancelled``, see ``cancel.py``). Other
        keyword arguments go to ``StableDiffusionControlNetPipeline.__call__`` (``negative_prompt``,
        ``control_guidance_start``, ``callback_on_step_end``, ...). Results are at the photo's size."""
        check_no_strength(kwargs, "ControlNet")
        check_call(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   num_images_per_prompt=num_images_per_prompt, rgbd=rgbd)
        settings = DepthSettings(processing_resolution, percentile, gamma, invert)
        call = prepare_control(self, prompt, image, depth_map, settings, background_mask, background_weight, kwargs,
                               super().__call__, multiple=self.size_multiple(), seed=seed, generator=generator,
                               cancel=cancel)
        result = super().__call__(
            prompt=call.prompts, image=call.control, height=call.height, width=call.width,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            controlnet_conditioning_scale=controlnet_conditioning_scale, num_images_per_prompt=num_images_per_prompt,
            generator=call.generator, output_type=output_type, return_dict=True, **call.kwargs,
        )
        arguments = dict(prompt=prompt, seed=call.seed, num_inference_steps=num_inference_steps,
                         guidance_scale=guidance_scale, controlnet_conditioning_scale=controlnet_conditioning_scale,
                         num_images_per_prompt=num_images_per_prompt, negative_prompt=kwargs.get("negative_prompt"))
        return midas_output(self, result.images, call.depth, settings, rgbd=rgbd, output_type=output_type,
                            return_dict=return_dict, arguments=arguments)
