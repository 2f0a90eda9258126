"""ControlNet depth for Stable Diffusion 1.5 (e.g. ``lllyasviel/control_v11f1p_sd15_depth``),
conditioned on MiDaS disparity from the zoo as a float control image (no 8-bit round trip)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionControlNetPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTokenizer

from .call_steps import prepare_control
from .components import MidasDepthEstimator
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
        num_images_per_prompt: int = 1, *, generator=None, output_type: str = "pil", return_dict: bool = True,
        **kwargs,
    ):
        """``image``: the photo whose depth conditions the result (or pass ``depth_map``, a disparity
        (B,1,H,W) in [0,1]). The MiDaS keyword arguments (``processing_resolution``, ``percentile``,
        ``gamma``, ``invert``, ``background_mask``, ``background_weight``, ``rgbd``, ``seed``,
        ``cancel``: see ``call_steps.MidasArguments``) shape the disparity and the run. Other keyword
        arguments go to ``StableDiffusionControlNetPipeline.__call__`` (``negative_prompt``,
        ``control_guidance_start``, ``callback_on_step_end``, ...). Results are at the photo's size."""
        call = prepare_control(self, "ControlNet", prompt, image, depth_map, kwargs, super().__call__,
                               num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                               num_images_per_prompt=num_images_per_prompt, generator=generator,
                               output_type=output_type)
        result = super().__call__(image=call.control, controlnet_conditioning_scale=controlnet_conditioning_scale,
                                  **call.parent_kwargs)
        return call.finish(self, result.images, return_dict, controlnet_conditioning_scale=controlnet_conditioning_scale)
