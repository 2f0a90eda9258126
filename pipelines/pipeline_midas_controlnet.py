"""ControlNet depth for Stable Diffusion 1.5 (e.g. ``lllyasviel/control_v11f1p_sd15_depth``),
conditioned on MiDaS disparity from the zoo as a float control image (no 8-bit round trip)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionControlNetPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTokenizer

from .components import DepthSettings, MidasDepthEstimator
from .conditioning import control_image
from .depth_conditioning import check_call, generator_for, midas_output, prepare_depth, prompts_for_images
from .loading import RealignOnLoad


class MidasControlNetPipeline(RealignOnLoad, StableDiffusionControlNetPipeline):
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
        output_type: str = "pil", return_dict: bool = True, **kwargs,
    ):
        """``image``: the photo whose depth conditions the result (or pass ``depth_map``, a disparity
        (B,1,H,W) in [0,1]); the depth controls (``processing_resolution``, ``percentile``, ``gamma``,
        ``invert``, ``background_mask`` with ``background_weight``) shape that disparity. Other
        keyword arguments go to ``StableDiffusionControlNetPipeline.__call__`` (``negative_prompt``,
        ``control_guidance_start``, ``callback_on_step_end``, ...). Results are at the photo's size."""
        if "strength" in kwargs:
            raise ValueError("strength applies to depth2img only; ControlNet generates from noise")
        check_call(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   num_images_per_prompt=num_images_per_prompt, rgbd=rgbd)
        settings = DepthSettings(processing_resolution, percentile, gamma, invert)
        depth = prepare_depth(self.depth_estimator, image, depth_map, settings, background_mask, background_weight,
                              multiple=self.size_multiple(), keep_image=False)
        generator, seed = generator_for(seed, generator)
        control = control_image(depth.work_disparity)
        negative_prompt = kwargs.get("negative_prompt")  # as given, for the record
        prompts = prompts_for_images(prompt, control.shape[0], kwargs)
        height, width = depth.work_size
        result = super().__call__(
            prompt=prompts, image=control, height=height, width=width, num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale, controlnet_conditioning_scale=controlnet_conditioning_scale,
            num_images_per_prompt=num_images_per_prompt, generator=generator, output_type=output_type,
            return_dict=True, **kwargs,
        )
        record = dict(method=self.method_name, prompt=prompt, seed=seed, num_inference_steps=num_inference_steps,
                      guidance_scale=guidance_scale, controlnet_conditioning_scale=controlnet_conditioning_scale,
                      num_images_per_prompt=num_images_per_prompt, negative_prompt=negative_prompt)
        return midas_output(self, result.images, depth, settings, rgbd=rgbd, output_type=output_type,
                            return_dict=return_dict, record=record)
