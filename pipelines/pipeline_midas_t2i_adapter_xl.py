"""T2I-Adapter depth for SDXL (e.g. ``TencentARC/t2i-adapter-depth-midas-sdxl-1.0``), conditioned on
zoo disparity as a float control image."""

from __future__ import annotations

import math
from typing import Any, Optional

from diffusers import AutoencoderKL, StableDiffusionXLAdapterPipeline, T2IAdapter, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .components import MidasDepthEstimator
from .depth_conditioning import MidasControlMixin


class MidasT2IAdapterXLPipeline(MidasControlMixin, StableDiffusionXLAdapterPipeline):
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
        return math.lcm(super().size_multiple(), adapter_factor)
