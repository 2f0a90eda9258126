"""transformers ``DPTForDepthEstimation`` checkpoints load into the zoo models and give the same depth.

Each test builds a tiny transformers DPT whose architecture equals a reduced zoo model, fills it
with seeded random weights, saves it with ``save_pretrained`` and loads the saved safetensors
through ``load_into``. transformers' depth head always has 32 channels before its last conv, so
the zoo side uses the reduced config with ``head_channels=(32, 16, 32)``.
"""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from midas_diffusion.zoo.registry import get_model_spec  # noqa: E402
from midas_diffusion.loading.checkpoints import (  # noqa: E402
    CheckpointError,
    check_fit,
    load_into,
    read_state_dict,
    to_model_layout,
)
from midas_diffusion.loading.convert_transformers import convert_transformers_dpt  # noqa: E402
from midas_diffusion.loading.factory import create_model  # noqa: E402
from midas_diffusion.zoo.model import DepthModel  # noqa: E402

HF_HEAD = (32, 16, 32)  # transformers: fusion -> fusion/2 -> 32 -> 1
TINY_VIT = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128, layer_norm_eps=1e-6)
STAGES = ["stage1", "stage2", "stage3", "stage4"]


# ---------------------------------------------------------------------------------------------
# Tiny transformers configs matching the reduced zoo models.
# ---------------------------------------------------------------------------------------------


def vit_config():
    return transformers.DPTConfig(
        **TINY_VIT,
        image_size=384,
        patch_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=32,
    )


def hybrid_config():
    # transformers' hybrid embeddings only accept ``image_size`` inputs, so both sides use 64x64.
    return transformers.DPTConfig(
        **TINY_VIT,
        is_hybrid=True,
        image_size=64,
        patch_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[256, 512, 32, 32],
        reassemble_factors=[1, 1, 1, 0.5],
        fusion_hidden_size=32,
        backbone_featmap_shape=[1, 1024, 4, 4],
    )


def backbone_dpt(config_class, neck_hidden_sizes, fusion_hidden_size=256, **backbone):
    """A transformers DPT config on a ``config_class`` backbone (BEiT, SwinV2); its four stages feed the
    neck unless ``out_features`` says otherwise."""
    backbone.setdefault("out_features", STAGES)
    return transformers.DPTConfig(backbone_config=config_class(**backbone), neck_hidden_sizes=neck_hidden_sizes,
                                  fusion_hidden_size=fusion_hidden_size)


def beit_config():
    return backbone_dpt(transformers.BeitConfig, [8, 16, 32, 32], 32, **TINY_VIT, image_size=384, patch_size=16,
                        use_relative_position_bias=True, use_absolute_position_embeddings=False,
                        use_mean_pooling=True, layer_scale_init_value=0.1, reshape_hidden_states=False)


def swinv2_config():
    return backbone_dpt(transformers.Swinv2Config, [16, 32, 64, 128], 32, image_size=256, patch_size=4, embed_dim=16,
                        depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4], window_size=16,
                        pretrained_window_sizes=[0, 0, 0, 0])


# zoo name, transformers config, extra timm overrides for the zoo encoder, test input (H, W).
# transformers' ViT DPT reshapes tokens to a square grid, its hybrid takes only ``image_size``
# and SwinV2 runs at its training size, so only BEiT is compared on a non-square input.
CASES = {
    "vit": ("dpt_large_384", vit_config, (), (64, 64)),
    "hybrid": ("dpt_hybrid_384", hybrid_config, (("img_size", 64),), (64, 64)),
    "beit": ("dpt_beit_base_384", beit_config, (), (64, 96)),
    "swinv2": ("dpt_swin2_tiny_256", swinv2_config, (), (256, 256)),
}


def zoo_model(name: str, timm_overrides=()) -> DepthModel:
    """The reduced zoo model with transformers' head widths (and any extra timm overrides)."""
    arch = get_model_spec(name).arch.reduced()
    encoder = replace(arch.encoder, timm_overrides=tuple(arch.encoder.timm_overrides) + tuple(timm_overrides))
    arch = replace(arch, encoder=encoder, decoder=replace(arch.decoder, head_channels=HF_HEAD))
    return DepthModel(arch).eval()


def randomize_(model: torch.nn.Module, seed: int = 0) -> None:
    """Seeded weights that keep activations O(1) and the final ReLU mostly open."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = tuple(p.shape)
            if name.endswith("logit_scale"):
                value = math.log(10.0) + 0.1 * torch.randn(shape, generator=g)
            elif name.startswith("head.head.4.") and name.endswith("bias"):
                value = torch.full(shape, 0.5)
            elif p.ndim >= 2 and not name.endswith(("cls_token", "position_embeddings", "bias_table")):
                value = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
            elif name.endswith(("cls_token", "position_embeddings", "bias_table")):
                value = 0.5 * torch.randn(shape, generator=g)
            elif name.endswith(("weight", "lambda_1", "lambda_2")):
                value = 1 + 0.1 * torch.randn(shape, generator=g)
            else:
                value = 0.05 * torch.randn(shape, generator=g)
            p.copy_(value)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: intra-op threads only add overhead (a lot on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """family -> (transformers model, path of its saved model.safetensors); built once per family."""
    cache = {}

    def get(family: str):
        if family not in cache:
            _, make_config, _, _ = CASES[family]
            torch.manual_seed(0)
            hf = transformers.DPTForDepthEstimation(make_config()).eval()
            randomize_(hf)
            folder = tmp_path_factory.mktemp(f"hf_{family}")
            hf.save_pretrained(folder)
            cache[family] = (hf, folder / "model.safetensors")
        return cache[family]

    return get


# ---------------------------------------------------------------------------------------------
# Parity.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(CASES))
def test_transformers_checkpoint_gives_transformers_depth(family, saved):
    name, _, overrides, (h, w) = CASES[family]
    hf, path = saved(family)
    ours = load_into(zoo_model(name, overrides), path)

    x = (torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)) - 0.5) / 0.5
    with torch.no_grad():
        expected = hf(pixel_values=x).predicted_depth
        got = ours(x)

    assert got.shape == expected.shape == (1, h, w)
    spread = float(expected.max() - expected.min())
    assert spread > 1e-3, "degenerate test output: the final ReLU closed everywhere"
    err = float((got - expected).abs().max())
    assert err <= 1e-4 * spread, f"{family}: max error {err:.3g} for output range {spread:.3g}"


def test_in_memory_beit_names_convert_like_saved_names(saved):
    """transformers 5 names BEiT modules differently in memory than in saved files."""
    hf, path = saved("beit")
    model = zoo_model("dpt_beit_base_384")
    from_file = convert_transformers_dpt(read_state_dict(path), model)
    from_memory = convert_transformers_dpt(hf.state_dict(), model)
    assert from_file.keys() == from_memory.keys()
    assert all(torch.equal(from_file[k], from_memory[k]) for k in from_file)


def hub_config(name: str):
    """The transformers configs of the Intel hub checkpoints (from transformers' conversion scripts)."""
    if name == "dpt_large_384":
        return transformers.DPTConfig(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            backbone_out_indices=[5, 11, 17, 23],
            neck_hidden_sizes=[256, 512, 1024, 1024],
        )
    if name == "dpt_hybrid_384":
        return transformers.DPTConfig(
            is_hybrid=True,
            backbone_out_indices=[0, 1, 8, 11],
            reassemble_factors=[1, 1, 1, 0.5],
            neck_hidden_sizes=[256, 512, 768, 768],
        )
    if name == "dpt_beit_large_512":
        return backbone_dpt(transformers.BeitConfig, [256, 512, 1024, 1024], image_size=512, hidden_size=1024,
                            num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                            use_relative_position_bias=True, reshape_hidden_states=False,
                            out_features=["stage6", "stage12", "stage18", "stage24"])
    if name == "dpt_swin2_large_384":
        return backbone_dpt(transformers.Swinv2Config, [192, 384, 768, 1536], image_size=384, embed_dim=192,
                            depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=24,
                            pretrained_window_sizes=[12, 12, 12, 6])
    raise KeyError(name)


@pytest.mark.parametrize("name", ["dpt_large_384", "dpt_hybrid_384", "dpt_beit_large_512", "dpt_swin2_large_384"])
def test_full_size_hub_layout_fits_the_zoo_model(name):
    """Every tensor of a full-size hub-config model has exactly one place (shapes only, on meta)."""
    spec = get_model_spec(name)
    with torch.device("meta"):
        hf = transformers.DPTForDepthEstimation(hub_config(name))
        model = spec.build(spec.arch)
    assert check_fit(to_model_layout(hf.state_dict(), model), model) is None


# ---------------------------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------------------------


def test_unplaceable_tensor_is_named(saved):
    _, path = saved("vit")
    state = read_state_dict(path)
    state["neck.fusion_stage.layers.0.residual_layer1.batch_norm1.weight"] = torch.ones(32)
    with pytest.raises(CheckpointError, match=r"no place .*batch_norm1\.weight"):
        load_into(zoo_model("dpt_large_384"), state)


def test_missing_attention_projection_is_an_error(saved):
    _, path = saved("vit")
    state = read_state_dict(path)
    del state["dpt.encoder.layer.2.attention.attention.key.weight"]
    with pytest.raises(CheckpointError, match=r"blocks\.2\.attn\.qkv"):
        load_into(zoo_model("dpt_large_384"), state)


def test_checkpoint_of_another_family_is_an_error(saved):
    _, path = saved("beit")
    with pytest.raises(CheckpointError, match="BEiT"):
        convert_transformers_dpt(read_state_dict(path), zoo_model("dpt_large_384"))


def test_family_without_transformers_checkpoints_is_an_error(saved):
    _, path = saved("vit")
    with pytest.raises(CheckpointError, match="only for ViT, ViT-hybrid, DINOv2, BEiT and SwinV2"):
        convert_transformers_dpt(read_state_dict(path), create_model("dpt_levit_224", reduced=True))


def test_garbled_state_dict_is_an_error():
    garbled = {"neck.something.weight": torch.zeros(2), "head.head.0.weight": torch.zeros(2)}
    with pytest.raises(CheckpointError):
        load_into(zoo_model("dpt_large_384"), garbled)


def test_converter_does_not_import_transformers():
    """The converter only renames tensors: ``import midas_diffusion`` must not need transformers."""
    import midas_diffusion.loading.convert_transformers as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.split(".")[0] == "transformers"]


@pytest.mark.parametrize("name", ["dpt_large_384", "dpt_hybrid_384", "dpt_beit_base_384", "dpt_swin2_tiny_256"])
def test_each_family_brings_its_own_rules(name):
    """The driver holds no family switch: a model's encoder config names its rules, which live in
    that family's file, and a checkpoint of the family is recognized by them alone."""
    from midas_diffusion.loading.convert_transformers import BACKBONES, checkpoint_backbone, model_backbone

    model = zoo_model(name)
    family = model_backbone(model)
    assert family in BACKBONES
    assert family is model.config.encoder.transformers_backbone()
    family_file = sys.modules[type(model.config.encoder).__module__]
    assert family in vars(family_file).values(), "the rules live next to the family's code"
    hf_keys = {"vit": "dpt.encoder.layer.0.output.dense.weight", "hybrid": "dpt.embeddings.backbone.bit.embedder.convolution.weight",
               "beit": "backbone.encoder.layer.0.lambda_1", "swinv2": "backbone.encoder.layers.0.blocks.0.attention.self.logit_scale"}
    family_of = {"dpt_large_384": "vit", "dpt_hybrid_384": "hybrid", "dpt_beit_base_384": "beit", "dpt_swin2_tiny_256": "swinv2"}
    assert checkpoint_backbone({hf_keys[family_of[name]]: torch.zeros(1)}) is family


@pytest.mark.parametrize("name", ["dpt_swin_large_384", "dpt_levit_224", "dpt_next_vit_large_384", "midas_v21_small_256"])
def test_families_without_transformers_checkpoints_say_so(name):
    from midas_diffusion.loading.convert_transformers import model_backbone

    with pytest.raises(CheckpointError, match="only for ViT, ViT-hybrid, DINOv2, BEiT and SwinV2"):
        model_backbone(create_model(name, reduced=True))
