"""Text to RGBD from one latent (LDM3D), our own maintained copy of the idea.

Supports the 4-channel VAE family (``Intel/ldm3d-4c``, ``Intel/ldm3d-pano``: RGB + one depth
channel) and the original 6-channel one (``Intel/ldm3d``: RGB + depth packed as G*256+B in an
8-bit RGB-like triple). Depth stays float (``np``/``pt``) or 16-bit (``pil``: mode ``I;16``); it
is never truncated to 8 bits. Denoising is diffusers' ``StableDiffusionPipeline`` run to latents;
decoding and the depth split are here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from transformers import CLIPTextModel, CLIPTokenizer

from .call_steps import generator_for
from .cancel import CancelToken, step_end_arguments
from .loading import MidasLoading

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def pack_depth_6c(depth16: np.ndarray) -> np.ndarray:
    """uint16 depth (..., H, W) -> the 6-channel VAE's RGB-like triple in [0,1]: (0, high byte, low byte)."""
    depth16 = np.asarray(depth16, dtype=np.uint16)
    high, low = depth16 >> 8, depth16 & 0xFF
    return np.stack([np.zeros_like(high), high, low], axis=-3).astype(np.float32) / 255.0


def unpack_depth_6c(triple: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) RGB-like in [0,1] -> (B,H,W) depth in [0,1] from 16 bits (G*256 + B); exact for packed input."""
    bytes_ = (triple.float().clamp(0, 1) * 255).round()
    return (bytes_[:, 1] * 256 + bytes_[:, 2]) / 65535.0


@dataclass
class RGBDPipelineOutput(BaseOutput):
    """``rgb``: images (PIL list, (B,H,W,3) numpy or (B,3,H,W) tensor in [0,1]; the latents for ``latent``).
    ``depth``: relative depth in [0,1] as LDM3D predicts it (PIL ``I;16`` list, (B,H,W) float numpy or
    (B,1,H,W) tensor; None for ``latent``). ``settings``: how it was made (seed included)."""

    rgb: Any
    depth: Any
    settings: Dict[str, Any] = field(default_factory=dict)


class MidasLDM3DPipeline(MidasLoading, StableDiffusionPipeline):
    """Text to RGB + depth with an LDM3D UNet/VAE (4 or 6 VAE output channels)."""

    _optional_components = ["safety_checker", "feature_extractor", "image_encoder"]

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        safety_checker: Any = None,
        feature_extractor: Any = None,
        image_encoder: Any = None,
        requires_safety_checker: bool = False,
    ):
        if vae is not None and vae.config.out_channels not in (4, 6):
            raise ValueError(f"an LDM3D VAE decodes 4 or 6 channels, this one {vae.config.out_channels}")
        super().__init__(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                         safety_checker=safety_checker, feature_extractor=feature_extractor,
                         image_encoder=image_encoder, requires_safety_checker=requires_safety_checker)

    @torch.no_grad()
    def decode_rgbd(self, latents: torch.Tensor):
        """Latents -> (rgb (B,3,H,W), depth (B,1,H,W)), both float in [0,1]."""
        image = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        image = (image.float() / 2 + 0.5).clamp(0, 1)
        rgb = image[:, :3]
        if image.shape[1] == 6:
            depth = unpack_depth_6c(image[:, 3:6])[:, None]
        else:
            depth = image[:, 3:4]
        return rgb, depth

    @torch.no_grad()
    def __call__(
        self,
        prompt=None,
        height: Optional[int] = None,
        width: Optional[int] = None,
        num_inference_steps: int = 49,
        guidance_scale: float = 5.0,
        *,
        seed: Optional[int] = None,
        generator=None,
        output_type: str = "pil",
        return_dict: bool = True,
        cancel: Optional[CancelToken] = None,
        **kwargs,
    ):
        """Text to RGB + depth; ``cancel``: a ``CancelToken`` that stops the run at the next step
        (``Cancelled``, see ``cancel.py``). Other keyword arguments go to
        ``StableDiffusionPipeline.__call__`` (``negative_prompt``, ``callback_on_step_end``, ...)."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}")
        generator, seed = generator_for(seed, generator)
        latents = super().__call__(
            prompt=prompt, height=height, width=width, num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale, generator=generator, output_type="latent", return_dict=False,
            **step_end_arguments(cancel, kwargs, super().__call__),
        )[0]
        settings = dict(method="ldm3d", prompt=prompt, seed=seed, num_inference_steps=num_inference_steps,
                        guidance_scale=guidance_scale, negative_prompt=kwargs.get("negative_prompt"),
                        vae_channels=self.vae.config.out_channels)
        if output_type == "latent":
            rgb, depth = latents, None
        else:
            rgb_t, depth_t = self.decode_rgbd(latents)
            rgb, depth = _convert(rgb_t, depth_t, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return rgb, depth
        return RGBDPipelineOutput(rgb=rgb, depth=depth, settings=settings)


def _convert(rgb: torch.Tensor, depth: torch.Tensor, output_type: str):
    if output_type == "pt":
        return rgb, depth
    rgb_np = rgb.permute(0, 2, 3, 1).cpu().numpy()
    depth_np = depth[:, 0].cpu().numpy()
    if output_type == "np":
        return rgb_np, depth_np
    images = [PIL.Image.fromarray((im * 255 + 0.5).astype(np.uint8)) for im in rgb_np]
    depths = [PIL.Image.fromarray(np.round(d * 65535).astype(np.uint16)) for d in depth_np]
    return images, depths
