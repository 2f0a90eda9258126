"""T2I-Adapter depth for SDXL (e.g. ``TencentARC/t2i-adapter-depth-midas-sdxl-1.0``), conditioned on
zoo disparity as a float control image."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
from diffusers import AutoencoderKL, StableDiffusionXLAdapterPipeline, T2IAdapter, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .call_steps import check_call, check_no_strength, midas_output, prepare_control
from .cancel import CancelToken
from .components import DepthSettings, MidasDepthEstimator
from .loading import MidasLoading


class MidasT2IAdapterXLPipeline(MidasLoading, StableDiffusionXLAdapterPipeline):
    """SDXL + depth T2I-Adapter; the photo's zoo disparity is the adapter's input."""

    _optional_components = ["tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "feature_extractor",
                            "image_encoder", "depth_estimator"]
    method_name = "t2i-adapter"

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        adapter: T2IAdapter,
        scheduler: KarrasDiffusionSchedulers,
        depth_estimator: Optional[MidasDepthEstimator] = None,
        force_zeros_for_empty_prompt: bool = True,
        feature_extractor: Any = None,
        image_encoder: Any = None,
    ):
        super().__init__(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
            tokenizer_2=tokenizer_2, unet=unet, adapter=adapter, scheduler=scheduler,
            force_zeros_for_empty_prompt=force_zeros_for_empty_prompt, feature_extractor=feature_extractor,
            image_encoder=image_encoder,
        )
        self.register_modules(depth_estimator=depth_estimator)

    def size_multiple(self) -> int:
        """The adapter downsamples its input by ``total_downscale_factor`` (32 for the SDXL depth
        adapters) and its features must meet the UNet's: sizes snap to that and the VAE's factor."""
        adapter_factor = int(getattr(self.adapter, "total_downscale_factor", 1))
        return math.lcm(int(self.vae_scale_factor), adapter_factor)

    @torch.no_grad()
    def __call__(
        self, prompt=None, image=None, depth_map: Optional[torch.Tensor] = None,
        num_inference_steps: int = 50, guidance_scale: float = 5.0,
        adapter_conditioning_scale: float = 1.0, adapter_conditioning_factor: float = 1.0,
        *, prompt_2=None, num_images_per_prompt: int = 1, seed: Optional[int] = None, generator=None,
        processing_resolution: Optional[int] = None, percentile: Optional[Tuple[float, float]] = None,
        gamma: float = 1.0, invert: bool = False, background_mask=None, background_weight: float = 0.0,
        rgbd: Optional[str] = None, output_type: str = "pil", return_dict: bool = True,
        cancel: Optional[CancelToken] = None, **kwargs,
    ):
        """``image``: the photo whose depth feeds the adapter (or ``depth_map``, a disparity (B,1,H,W)
        in [0,1]); depth controls and ``cancel`` as in ``MidasControlNetPipeline``; the working size
        is a multiple of ``size_multiple()``. Other keyword arguments go to
        ``StableDiffusionXLAdapterPipeline.__call__``."""
        check_no_strength(kwargs, "the T2I-Adapter")
        check_call(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   num_images_per_prompt=num_images_per_prompt, rgbd=rgbd)
        settings = DepthSettings(processing_resolution, percentile, gamma, invert)
        call = prepare_control(self, prompt, image, depth_map, settings, background_mask, background_weight,
                               dict(kwargs, prompt_2=prompt_2), super().__call__, multiple=self.size_multiple(),
                               seed=seed, generator=generator, cancel=cancel)
        result = super().__call__(
            prompt=call.prompts, image=call.control, height=call.height, width=call.width,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            adapter_conditioning_scale=adapter_conditioning_scale,
            adapter_conditioning_factor=adapter_conditioning_factor, num_images_per_prompt=num_images_per_prompt,
            generator=call.generator, output_type=output_type, return_dict=True, **call.kwargs,
        )
        arguments = dict(prompt=prompt, prompt_2=prompt_2, seed=call.seed, num_inference_steps=num_inference_steps,
                         guidance_scale=guidance_scale, adapter_conditioning_scale=adapter_conditioning_scale,
                         adapter_conditioning_factor=adapter_conditioning_factor,
                         num_images_per_prompt=num_images_per_prompt, negative_prompt=kwargs.get("negative_prompt"))
        return midas_output(self, result.images, call.depth, settings, rgbd=rgbd, output_type=output_type,
                            return_dict=return_dict, arguments=arguments)
