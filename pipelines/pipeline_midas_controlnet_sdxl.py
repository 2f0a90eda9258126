"""ControlNet depth for SDXL (e.g. ``diffusers/controlnet-depth-sdxl-1.0``) and ControlNet-Union in
depth mode (``xinsir/controlnet-union-sdxl-1.0``, mode 1), conditioned on zoo disparity.

Both pipelines take the same components (``SDXLControlComponents``) and the same call steps; they
differ in how the control image reaches the diffusers parent.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    ControlNetUnionModel,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLControlNetUnionPipeline,
    UNet2DConditionModel,
)
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .call_steps import prepare_control
from .components import MidasDepthEstimator
from .loading import MidasLoading

UNION_DEPTH_MODE = 1  # xinsir ordering: openpose, depth, hed/pidi/scribble/ted, canny/lineart/mlsd, normal, segment


class SDXLControlComponents:
    """The components of the SDXL control pipelines: SDXL's, the ControlNet (plain or Union) and the
    zoo depth estimator."""

    _optional_components = ["tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "feature_extractor",
                            "image_encoder", "depth_estimator"]

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        controlnet: Union[ControlNetModel, ControlNetUnionModel],
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

    def size_multiple(self) -> int:
        """What the working size must be a multiple of: the VAE's downscaling factor."""
        return int(self.vae_scale_factor)


class MidasControlNetXLPipeline(MidasLoading, SDXLControlComponents, StableDiffusionXLControlNetPipeline):
    """SDXL + depth ControlNet; the photo's zoo disparity is the control image."""

    method_name = "controlnet-sdxl"

    @torch.no_grad()
    def __call__(
        self, prompt=None, image=None, depth_map: Optional[torch.Tensor] = None, prompt_2=None,
        num_inference_steps: int = 50, guidance_scale: float = 5.0, controlnet_conditioning_scale: float = 1.0,
        *, num_images_per_prompt: int = 1, generator=None, output_type: str = "pil", return_dict: bool = True,
        **kwargs,
    ):
        """``image``: the photo whose depth is the control image (or ``depth_map``, a disparity (B,1,H,W)
        in [0,1]); the MiDaS keyword arguments as in ``MidasControlNetPipeline``. Other keyword
        arguments go to ``StableDiffusionXLControlNetPipeline.__call__`` (``negative_prompt``,
        ``negative_prompt_2``, ``control_guidance_end``, ...). Results are at the photo's size."""
        call = prepare_control(self, "ControlNet", prompt, image, depth_map, dict(kwargs, prompt_2=prompt_2),
                               super().__call__, num_inference_steps=num_inference_steps,
                               guidance_scale=guidance_scale, num_images_per_prompt=num_images_per_prompt,
                               generator=generator, output_type=output_type)
        result = super().__call__(image=call.control, controlnet_conditioning_scale=controlnet_conditioning_scale,
                                  **call.parent_kwargs)
        return call.finish(self, result.images, return_dict, controlnet_conditioning_scale=controlnet_conditioning_scale)


class MidasControlNetUnionXLPipeline(MidasLoading, SDXLControlComponents, StableDiffusionXLControlNetUnionPipeline):
    """SDXL + ControlNet-Union in depth mode; the photo's zoo disparity is the depth control image."""

    method_name = "controlnet-union"

    @torch.no_grad()
    def __call__(
        self, prompt=None, image=None, depth_map: Optional[torch.Tensor] = None, num_inference_steps: int = 50,
        guidance_scale: float = 5.0, controlnet_conditioning_scale: float = 1.0, *, prompt_2=None,
        num_images_per_prompt: int = 1, generator=None, output_type: str = "pil", return_dict: bool = True, **kwargs,
    ):
        """As ``MidasControlNetXLPipeline``; the disparity goes to the Union ControlNet as its depth
        control (``control_mode`` 1). Other keyword arguments go to
        ``StableDiffusionXLControlNetUnionPipeline.__call__``."""
        call = prepare_control(self, "ControlNet-Union", prompt, image, depth_map, dict(kwargs, prompt_2=prompt_2),
                               super().__call__, num_inference_steps=num_inference_steps,
                               guidance_scale=guidance_scale, num_images_per_prompt=num_images_per_prompt,
                               generator=generator, output_type=output_type)
        result = super().__call__(control_image=[call.control], control_mode=[UNION_DEPTH_MODE],
                                  controlnet_conditioning_scale=controlnet_conditioning_scale, **call.parent_kwargs)
        return call.finish(self, result.images, return_dict, controlnet_conditioning_scale=controlnet_conditioning_scale)
