"""Tiny random Stable Diffusion components, built offline (the CLIP tokenizer too)."""

from __future__ import annotations

import string

import torch

from reference import recipe_init_


def tiny_tokenizer():
    from transformers import CLIPTokenizer

    chars = list(string.ascii_lowercase + string.digits + ",.!?'-")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77, bos_token="<|startoftext|>",
                         eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>")


def tiny_text_encoder(vocab_size=100, projection=False, hidden=32):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    config = CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=hidden, intermediate_size=37,
                            layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2, vocab_size=vocab_size,
                            projection_dim=32)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                         latent_channels=4, norm_num_groups=16).eval()


def tiny_unet(in_channels=4, sdxl=False, cross_attention_dim=64):
    """``cross_attention_dim`` (SDXL only) is the sum of the two text encoders' widths."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    kwargs = dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=in_channels,
                  out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                  attention_head_dim=(2, 4), norm_num_groups=16, use_linear_projection=True)
    if sdxl:
        kwargs.update(addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
                      cross_attention_dim=cross_attention_dim, transformer_layers_per_block=(1, 1))
    return UNet2DConditionModel(**kwargs).eval()


def tiny_controlnet(sdxl=False):
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    kwargs = dict(block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), cross_attention_dim=32,
                  conditioning_embedding_out_channels=(16, 32), norm_num_groups=16, attention_head_dim=(2, 4),
                  use_linear_projection=True)
    if sdxl:
        kwargs.update(addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
                      cross_attention_dim=64, transformer_layers_per_block=(1, 1))
    return ControlNetModel(**kwargs).eval()


def tiny_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False)


def tiny_depth_estimator(model_name="midas_v21_small_256"):
    from midas_diffusion.pipelines.components import MidasDepthEstimator

    est = MidasDepthEstimator(model_name=model_name, reduced=True)
    recipe_init_(est.net)
    return est.eval()


def sd15_components(in_channels=4):
    return dict(vae=tiny_vae(), text_encoder=tiny_text_encoder(), tokenizer=tiny_tokenizer(),
                unet=tiny_unet(in_channels), scheduler=tiny_scheduler())
