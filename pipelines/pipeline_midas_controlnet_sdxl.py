"""ControlNet depth for SDXL (e.g. ``diffusers/controlnet-depth-sdxl-1.0``) and ControlNet-Union in
depth mode (``xinsir/controlnet-union-sdxl-1.0``, mode 1), conditioned on zoo disparity."""

from __future__ import annotations

from typing import Any, Dict, Optional

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

from .components import MidasDepthEstimator
from .depth_conditioning import MidasControlMixin

UNION_DEPTH_MODE = 1  # xinsir ordering: openpose, depth, hed/pidi/scribble/ted, canny/lineart/mlsd, normal, segment


class MidasControlNetXLPipeline(MidasControlMixin, StableDiffusionXLControlNetPipeline):
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


class MidasControlNetUnionXLPipeline(MidasControlMixin, StableDiffusionXLControlNetUnionPipeline):
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

    def control_kwargs(self, control: torch.Tensor) -> Dict[str, Any]:
        return {"control_image": [control], "control_mode": [UNION_DEPTH_MODE]}
