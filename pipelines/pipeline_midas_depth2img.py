"""Depth-to-image on a 5-channel UNet (the Stable Diffusion 2 depth family), conditioned on MiDaS
disparity from the zoo instead of DPT-Hybrid.

The denoising loop is diffusers' ``StableDiffusionDepth2ImgPipeline``; this class adds the zoo
depth estimator as a registered component and feeds it the float disparity as ``depth_map``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from diffusers import AutoencoderKL, StableDiffusionDepth2ImgPipeline, UNet2DConditionModel
from diffusers.loaders import FromSingleFileMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTokenizer

from .call_steps import MidasArguments, check_call, generator_for, midas_output, prepare_depth, prompts_for_images
from .cancel import step_end_arguments
from .components import MidasDepthEstimator
from .disparity import depth2img_depth_map
from .loading import MidasLoading


class MidasDepth2ImgPipeline(MidasLoading, StableDiffusionDepth2ImgPipeline, FromSingleFileMixin):
    r"""Restyle ``image`` with ``prompt`` while keeping its MiDaS depth.

    Args:
        vae, text_encoder, tokenizer, unet (``in_channels=5``), scheduler: as in Stable Diffusion 2 depth.
        depth_estimator ([`MidasDepthEstimator`]): the zoo model that makes the disparity.

    Loads from diffusers folders (``from_pretrained``) and from original single-file checkpoints
    such as ``512-depth-ema.safetensors`` (``from_single_file`` with a local ``config=`` folder).
    """

    _optional_components = ["feature_extractor", "depth_estimator"]
    method_name = "depth2img"

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        depth_estimator: Optional[MidasDepthEstimator] = None,
        feature_extractor: Any = None,
    ):
        if unet is not None and unet.config.in_channels != 5:
            raise ValueError(f"depth-to-image needs a 5-channel UNet (latents + depth), got in_channels={unet.config.in_channels}")
        super().__init__(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
            depth_estimator=depth_estimator, feature_extractor=feature_extractor,
        )

    @torch.no_grad()
    def __call__(
        self, prompt=None, image=None, depth_map: Optional[torch.Tensor] = None, strength: float = 0.8,
        num_inference_steps: int = 50, guidance_scale: float = 7.5, negative_prompt=None, num_images_per_prompt: int = 1,
        *, generator=None, output_type: str = "pil", return_dict: bool = True, **kwargs,
    ):
        """``image``: the photo (PIL, numpy, tensor, path), denoised from at ``strength``; ``depth_map``:
        an optional precomputed disparity (B,1,H,W) in [0,1] at the photo's size, otherwise it is
        estimated (and cached). The MiDaS keyword arguments as in ``MidasControlNetPipeline``
        (``call_steps.MidasArguments``). Other keyword arguments go to diffusers' depth-to-image
        ``__call__`` (``callback_on_step_end``, ...)."""
        midas = MidasArguments.take(kwargs)
        check_call(num_inference_steps=num_inference_steps, strength=strength, guidance_scale=guidance_scale,
                   num_images_per_prompt=num_images_per_prompt, rgbd=midas.rgbd)
        depth = prepare_depth(self.depth_estimator, image, depth_map, midas.depth_settings, midas.background_mask,
                              midas.background_weight, multiple=int(self.vae_scale_factor), keep_image=True,
                              cancel=midas.cancel)
        generator, seed = generator_for(midas.seed, generator)
        parent_image, depth_mask = _one_per_prompt(prompt, depth.image, depth2img_depth_map(depth.work_disparity))
        kwargs = step_end_arguments(midas.cancel, dict(kwargs, negative_prompt=negative_prompt), super().__call__)
        prompts = prompts_for_images(prompt, depth_mask.shape[0], kwargs)
        result = super().__call__(
            prompt=prompts, image=parent_image, depth_map=depth_mask, strength=strength,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            num_images_per_prompt=num_images_per_prompt, generator=generator, output_type=output_type,
            return_dict=True, **kwargs,
        )
        arguments = dict(prompt=prompt, seed=seed, strength=strength, num_inference_steps=num_inference_steps,
                         guidance_scale=guidance_scale, num_images_per_prompt=num_images_per_prompt,
                         negative_prompt=negative_prompt)
        return midas_output(self, result.images, depth, midas, output_type=output_type, return_dict=return_dict,
                            arguments=arguments)


def _one_per_prompt(prompt: Any, image: Any, depth: torch.Tensor) -> Tuple[Any, torch.Tensor]:
    """One photo for several prompts: repeat it (and its depth) per prompt, as diffusers does
    itself, which it deprecates; images already one per prompt are left alone."""
    count = len(prompt) if isinstance(prompt, list) else 1
    if count == 1 or depth.shape[0] != 1:
        return image, depth
    if isinstance(image, torch.Tensor):
        image = image.expand(count, -1, -1, -1)
    elif isinstance(image, list):
        image = image * count
    else:
        image = [image] * count
    return image, depth.expand(count, -1, -1)
