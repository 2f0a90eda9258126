"""ControlNet depth for SDXL (e.g. ``diffusers/controlnet-depth-sdxl-1.0``) and ControlNet-Union in
depth mode (``xinsir/controlnet-union-sdxl-1.0``, mode 1), conditioned on zoo disparity."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLControlNetUnionPipeline,
    UNet2DConditionModel,
)
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .components import DepthSettings, MidasDepthEstimator
from .conditioning import control_image
from .depth_conditioning import check_call, generator_for, midas_output, prepare_depth, prompts_for_images
from .loading import RealignOnLoad

UNION_DEPTH_MODE = 1  # xinsir ordering: openpose, depth, hed/pidi/scribble/ted, canny/lineart/mlsd, normal, segment


class MidasControlNetXLPipeline(RealignOnLoad, StableDiffusionXLControlNetPipeline):
    """SDXL + depth ControlNet; the photo's zoo disparity is the control image."""

    _optional_components = ["tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "feature_extractor",
                            "image_encoder", "depth_estimator"]
    method_name = "controlnet-sdxl"

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        controlnet: ControlNetModel,
        scheduler: KarrasDiffusionSchedulers,
        depth_estimator: Optional[MidasDepthEstimator] = None,
        force_zeros_for_empty_prompt: bool = True,
        add_watermarker: Optional[bool] = False,
        feature_extractor: Any = None,
        image_encoder: Any = None,
    ):
        super().__init__(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
            tokenizer_2=tokenizer_2, unet=unet, controlnet=controlnet, scheduler=scheduler,
            force_zeros_for_empty_prompt=force_zeros_for_empty_prompt, add_watermarker=add_watermarker,
            feature_extractor=feature_extractor, image_encoder=image_encoder,
        )
        self.register_modules(depth_estimator=depth_estimator)

    @torch.no_grad()
    def __call__(
        self, prompt=None, image=None, depth_map: Optional[torch.Tensor] = None, prompt_2=None,
        num_inference_steps: int = 50, guidance_scale: float = 5.0, controlnet_conditioning_scale: float = 1.0,
        *, num_images_per_prompt: int = 1, seed: Optional[int] = None, generator=None, rgbd: Optional[str] = None,
        processing_resolution: Optional[int] = None, percentile: Optional[Tuple[float, float]] = None,
        gamma: float = 1.0, invert: bool = False, background_mask=None, background_weight: float = 0.0,
        output_type: str = "pil", return_dict: bool = True, **kwargs,
    ):
        """``image``: the photo whose depth is the control image (or ``depth_map``, a disparity (B,1,H,W)
        in [0,1]); depth controls as in ``MidasControlNetPipeline``. Other keyword arguments go to
        ``StableDiffusionXLControlNetPipeline.__call__`` (``negative_prompt``, ``negative_prompt_2``,
        ``control_guidance_end``, ...). Results are at the photo's size."""
        if "strength" in kwargs:
            raise ValueError("strength applies to depth2img only; ControlNet generates from noise")
        check_call(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   num_images_per_prompt=num_images_per_prompt, rgbd=rgbd)
        settings = DepthSettings(processing_resolution, percentile, gamma, invert)
        depth = prepare_depth(self.depth_estimator, image, depth_map, settings, background_mask, background_weight,
                              multiple=int(self.vae_scale_factor), keep_image=False)
        generator, seed = generator_for(seed, generator)
        control = control_image(depth.work_disparity)
        negative_prompt = kwargs.get("negative_prompt")  # as given, for the record
        if prompt_2 is not None:
            kwargs["prompt_2"] = prompt_2
        prompts = prompts_for_images(prompt, control.shape[0], kwargs)
        height, width = depth.work_size
        result = super().__call__(
            prompt=prompts, image=control, height=height, width=width, num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale, controlnet_conditioning_scale=controlnet_conditioning_scale,
            num_images_per_prompt=num_images_per_prompt, generator=generator, output_type=output_type,
            return_dict=True, **kwargs,
        )
        record = dict(method=self.method_name, prompt=prompt, prompt_2=prompt_2, seed=seed,
                      num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                      controlnet_conditioning_scale=controlnet_conditioning_scale,
                      num_images_per_prompt=num_images_per_prompt, negative_prompt=negative_prompt)
        return midas_output(self, result.images, depth, settings, rgbd=rgbd, output_type=output_type,
                            return_dict=return_dict, record=record)


class MidasControlNetUnionXLPipeline(RealignOnLoad, StableDiffusionXLControlNetUnionPipeline):
    """SDXL + ControlNet-Union in depth mode; the photo's zoo disparity is the depth control image."""

    _optional_components = MidasControlNetXLPipeline._optional_components
    method_name = "controlnet-union"

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        controlnet: Any,
        scheduler: KarrasDiffusionSchedulers,
        depth_estimator: Optional[MidasDepthEstimator] = None,
        force_zeros_for_empty_prompt: bool = True,
        add_watermarker: Optional[bool] = False,
        feature_extractor: Any = None,
        image_encoder: Any = None,
    ):
        super().__init__(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
            tokenizer_2=tokenizer_2, unet=unet, controlnet=controlnet, scheduler=scheduler,
            force_zeros_for_empty_prompt=force_zeros_for_empty_prompt, add_watermarker=add_watermarker,
            feature_extractor=feature_extractor, image_encoder=image_encoder,
        )
        self.register_modules(depth_estimator=depth_estimator)

    @torch.no_grad()
    def __call__(
        self, prompt=None, image=None, depth_map: Optional[torch.Tensor] = None, num_inference_steps: int = 50,
        guidance_scale: float = 5.0, controlnet_conditioning_scale: float = 1.0, *, prompt_2=None,
        num_images_per_prompt: int = 1, seed: Optional[int] = None, generator=None, output_type: str = "pil",
        return_dict: bool = True, rgbd: Optional[str] = None, processing_resolution: Optional[int] = None,
        percentile: Optional[Tuple[float, float]] = None, gamma: float = 1.0, invert: bool = False,
        background_mask=None, background_weight: float = 0.0, **kwargs,
    ):
        """As ``MidasControlNetXLPipeline``; the disparity goes to the Union ControlNet as its depth
        control (``control_mode`` 1). Other keyword arguments go to
        ``StableDiffusionXLControlNetUnionPipeline.__call__``."""
        if "strength" in kwargs:
            raise ValueError("strength applies to depth2img only; ControlNet-Union generates from noise")
        check_call(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   num_images_per_prompt=num_images_per_prompt, rgbd=rgbd)
        settings = DepthSettings(processing_resolution, percentile, gamma, invert)
        depth = prepare_depth(self.depth_estimator, image, depth_map, settings, background_mask, background_weight,
                              multiple=int(self.vae_scale_factor), keep_image=False)
        generator, seed = generator_for(seed, generator)
        control = control_image(depth.work_disparity)
        negative_prompt = kwargs.get("negative_prompt")  # as given, for the record
        if prompt_2 is not None:
            kwargs["prompt_2"] = prompt_2
        prompts = prompts_for_images(prompt, control.shape[0], kwargs)
        height, width = depth.work_size
        result = super().__call__(
            prompt=prompts, control_image=[control], control_mode=[UNION_DEPTH_MODE], height=height, width=width,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            controlnet_conditioning_scale=controlnet_conditioning_scale, num_images_per_prompt=num_images_per_prompt,
            generator=generator, output_type=output_type, return_dict=True, **kwargs,
        )
        record = dict(method=self.method_name, prompt=prompt, prompt_2=prompt_2, seed=seed,
                      num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                      controlnet_conditioning_scale=controlnet_conditioning_scale,
                      num_images_per_prompt=num_images_per_prompt, negative_prompt=negative_prompt)
        return midas_output(self, result.images, depth, settings, rgbd=rgbd, output_type=output_type,
                            return_dict=return_dict, record=record)
