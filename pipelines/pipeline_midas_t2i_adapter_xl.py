"""T2I-Adapter depth for SDXL (e.g. ``TencentARC/t2i-adapter-depth-midas-sdxl-1.0``), conditioned on
zoo disparity as a float control image."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from diffusers import AutoencoderKL, StableDiffusionXLAdapterPipeline, T2IAdapter, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .call_steps import prepare_control
from .components import MidasDepthEstimator
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
        *, prompt_2=None, num_images_per_prompt: int = 1, generator=None, output_type: str = "pil",
        return_dict: bool = True, **kwargs,
    ):
        """``image``: the photo whose depth feeds the adapter (or ``depth_map``, a disparity (B,1,H,W)
        in [0,1]); the MiDaS keyword arguments as in ``MidasControlNetPipeline``; the working size is
        a multiple of ``size_multiple()``. Other keyword arguments go to
        ``StableDiffusionXLAdapterPipeline.__call__`` (its loop has no ``callback_on_step_end``: it
        takes ``callback``; ``cancel`` works all the same)."""
        call = prepare_control(self, "the T2I-Adapter", prompt, image, depth_map, dict(kwargs, prompt_2=prompt_2),
                               super().__call__, num_inference_steps=num_inference_steps,
                               guidance_scale=guidance_scale, num_images_per_prompt=num_images_per_prompt,
                               generator=generator, output_type=output_type)
        result = super().__call__(image=call.control, adapter_conditioning_scale=adapter_conditioning_scale,
                                  adapter_conditioning_factor=adapter_conditioning_factor, **call.parent_kwargs)
        return call.finish(self, result.images, return_dict, adapter_conditioning_scale=adapter_conditioning_scale,
                           adapter_conditioning_factor=adapter_conditioning_factor)
