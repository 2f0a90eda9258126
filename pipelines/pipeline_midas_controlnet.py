"""ControlNet depth for Stable Diffusion 1.5 (e.g. ``lllyasviel/control_v11f1p_sd15_depth``),
conditioned on MiDaS disparity from the zoo as a float control image (no 8-bit round trip)."""

from __future__ import annotations

from typing import Any, Optional

from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionControlNetPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTokenizer

from .components import MidasDepthEstimator
from .depth_conditioning import MidasControlMixin


class MidasControlNetPipeline(MidasControlMixin, StableDiffusionControlNetPipeline):
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
