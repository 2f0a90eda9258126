"""Write tiny diffusers SD 1.x components as one original-layout (LDM) single-file checkpoint.

A1111 and ComfyUI users keep bases as one ``.safetensors`` in the CompVis layout:
``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and
``cond_stage_model.transformer.*`` (CLIP text encoder). The tests build such a file from the tiny
random components, so ``load_pipeline(base=FILE, single_file_config=FOLDER)`` is exercised
offline on a real LDM key layout; diffusers' own converter then reads it back.

SDXL files (``sgm`` layout) keep the UNet and VAE the same way, the CLIP-L text encoder under
``conditioner.embedders.0.transformer.`` and the OpenCLIP bigG one under
``conditioner.embedders.1.model.`` with fused attention projections.

The renames are those of the original Stable Diffusion code, written out here per block:
general in ``layers_per_block`` and in the number of resolution levels.
"""

from __future__ import annotations

import re
from typing import Dict

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."
SDXL_TEXT_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."

# resnet parts: diffusers name -> LDM name (UNet)
_UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
# VAE attention parts: diffusers name -> LDM name (LDM keeps them as 1x1 convolutions)
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename_resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_UNET_RESNET.get(head, head)}.{tail}"


def unet_to_ldm(state: Dict[str, torch.Tensor], layers_per_block: int) -> Dict[str, torch.Tensor]:
    """A diffusers ``UNet2DConditionModel`` state dict in the LDM ``openaimodel`` layout."""
    per_level = layers_per_block + 1
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        ldm = None
        for name, target in _UNET_TOP.items():
            if key.startswith(name + "."):
                ldm = target + key[len(name):]
        if (m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key)):
            level, kind, layer, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            block = 1 + level * per_level + layer
            ldm = f"input_blocks.{block}.0.{_rename_resnet(rest)}" if kind == "resnets" else f"input_blocks.{block}.1.{rest}"
        elif (m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key)):
            ldm = f"input_blocks.{(int(m.group(1)) + 1) * per_level}.0.op.{m.group(2)}"
        elif (m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", key)):
            ldm = f"middle_block.{2 * int(m.group(1))}.{_rename_resnet(m.group(2))}"
        elif (m := re.match(r"mid_block\.attentions\.0\.(.+)", key)):
            ldm = f"middle_block.1.{m.group(1)}"
        elif (m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key)):
            level, kind, layer, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            block = level * per_level + layer
            ldm = f"output_blocks.{block}.0.{_rename_resnet(rest)}" if kind == "resnets" else f"output_blocks.{block}.1.{rest}"
        elif (m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key)):
            level = int(m.group(1))
            block = level * per_level + layers_per_block  # the level's last output block
            has_attention = any(k.startswith(f"up_blocks.{level}.attentions.") for k in state)
            ldm = f"output_blocks.{block}.{2 if has_attention else 1}.conv.{m.group(2)}"
        if ldm is None:
            raise KeyError(f"no LDM name for UNet key {key!r}")
        out[UNET_PREFIX + ldm] = value
    return out


def vae_to_ldm(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A diffusers ``AutoencoderKL`` state dict in the LDM ``autoencoder`` layout."""
    up_levels = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"decoder\.up_blocks\.(\d+)\.", k)))
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        ldm = key.replace("conv_shortcut", "nin_shortcut")
        ldm = re.sub(r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out.", ldm)
        ldm = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", ldm)
        ldm = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", ldm)
        ldm = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.",
                     lambda m: f"decoder.up.{up_levels - 1 - int(m.group(1))}.block.", ldm)
        ldm = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                     lambda m: f"decoder.up.{up_levels - 1 - int(m.group(1))}.upsample.", ldm)
        ldm = re.sub(r"^(encoder|decoder)\.mid_block\.resnets\.(\d+)\.",
                     lambda m: f"{m.group(1)}.mid.block_{int(m.group(2)) + 1}.", ldm)
        if (m := re.match(r"^(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)$", key)):
            ldm = f"{m.group(1)}.mid.attn_1.{_VAE_ATTENTION[m.group(2)]}.{m.group(3)}"
            if m.group(2) != "group_norm" and m.group(3) == "weight":
                value = value[:, :, None, None]  # linear -> 1x1 convolution
        out[VAE_PREFIX + ldm] = value
    return out


def text_encoder_to_ldm(state: Dict[str, torch.Tensor], prefix: str = TEXT_PREFIX) -> Dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModel`` state dict as SD 1.x / SDXL checkpoints hold it.

    Those were saved from transformers 4, whose keys start with ``text_model.``; transformers 5
    drops that level, so it is put back here.
    """
    return {prefix + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in state.items()}


_OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                    "self_attn.out_proj": "attn.out_proj"}


def open_clip_to_ldm(state: Dict[str, torch.Tensor], prefix: str = SDXL_OPEN_CLIP_PREFIX) -> Dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModelWithProjection`` state dict in OpenCLIP's layout.

    q, k and v are fused into ``attn.in_proj_*``; ``text_projection`` is a bare matrix, transposed.
    """
    state = {k.removeprefix("text_model."): v for k, v in state.items()}
    out = {"token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
           "positional_embedding": state.pop("embeddings.position_embedding.weight"),
           "ln_final.weight": state.pop("final_layer_norm.weight"),
           "ln_final.bias": state.pop("final_layer_norm.bias"),
           "text_projection": state.pop("text_projection.weight").T}
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k))})
    for i in layers:
        src, dst = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat([state.pop(src + f"self_attn.{p}_proj.{kind}") for p in "qkv"])
        for name, target in _OPEN_CLIP_LAYER.items():
            for kind in ("weight", "bias"):
                out[dst + f"{target}.{kind}"] = state.pop(src + f"{name}.{kind}")
    state.pop("embeddings.position_ids", None)
    if state:
        raise KeyError(f"no OpenCLIP names for {sorted(state)}")
    return {prefix + k: v for k, v in out.items()}


def save_ldm_checkpoint(path, unet, vae, text_encoder, text_encoder_2=None) -> None:
    """Write the components as one original-layout ``.safetensors`` file.

    With ``text_encoder_2`` the file is in the SDXL layout, else in the SD 1.x one.
    """
    from safetensors.torch import save_file

    state = {}
    state.update(unet_to_ldm(unet.state_dict(), unet.config.layers_per_block))
    state.update(vae_to_ldm(vae.state_dict()))
    if text_encoder_2 is None:
        state.update(text_encoder_to_ldm(text_encoder.state_dict()))
    else:
        state.update(text_encoder_to_ldm(text_encoder.state_dict(), SDXL_TEXT_PREFIX))
        state.update(open_clip_to_ldm(text_encoder_2.state_dict()))
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))


def save_config_folder(path, pipeline_class, components, **nulls):
    """A base's diffusers folder with its configs and tokenizers only (as ``single_file_config``
    needs it): ``pipeline_class(**components, **nulls)`` saved, then its weights deleted."""
    pipeline_class(**components, **nulls).save_pretrained(path)
    for weights in path.rglob("*.safetensors"):
        weights.unlink()
    return path
