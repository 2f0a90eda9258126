import pytest

import midas_diffusion as md

MIDAS = [
    "dpt_beit_large_512", "dpt_beit_large_384", "dpt_beit_base_384", "dpt_swin2_large_384",
    "dpt_swin2_base_384", "dpt_swin2_tiny_256", "dpt_swin_large_384", "dpt_next_vit_large_384",
    "dpt_levit_224", "dpt_large_384", "dpt_hybrid_384", "midas_v21_384", "midas_v21_small_256",
]
DEPTH_ANYTHING = [
    "depth_anything_v2_vitl", "depth_anything_v2_vitb", "depth_anything_v2_vits",
    "depth_anything_v2_metric_hypersim_vitl", "depth_anything_v2_metric_hypersim_vitb",
    "depth_anything_v2_metric_hypersim_vits", "depth_anything_v2_metric_vkitti_vitl",
    "depth_anything_v2_metric_vkitti_vitb", "depth_anything_v2_metric_vkitti_vits",
]
ZOO = MIDAS + DEPTH_ANYTHING


def test_list_models_is_the_whole_zoo():
    assert md.list_models() == ZOO


@pytest.mark.parametrize("alias,name", [("DPT_BEiT_L_512", "dpt_beit_large_512"), ("MiDaS_small", "midas_v21_small_256"),
                                        ("DPT_SwinV2_T_256", "dpt_swin2_tiny_256"), ("DPT_BEIT_L_384", "dpt_beit_large_384")])
def test_aliases_resolve_to_one_canonical_name(alias, name):
    assert md.get_model_spec(alias).name == name


@pytest.mark.parametrize("name", ZOO)
def test_each_model_says_what_it_predicts_and_its_licence(name):
    spec = md.get_model_spec(name)
    assert spec.predicts == ("metres" if "_metric_" in name else "disparity")
    assert (spec.max_depth is not None) == (spec.predicts == "metres")
    assert spec.license in ("MIT", "Apache-2.0", "CC-BY-NC-4.0")
    assert spec.license == "MIT" or name in DEPTH_ANYTHING


def test_unknown_name_suggests_close_names():
    with pytest.raises(ValueError, match="unknown model 'dpt_swin2_tiny'.*dpt_swin2_tiny_256"):
        md.get_model_spec("dpt_swin2_tiny")


@pytest.mark.parametrize("name", MIDAS)
def test_each_model_has_preprocessing_and_weight_sources(name):
    spec = md.get_model_spec(name)
    assert spec.preprocess.net_size[0] in (224, 256, 384, 512)
    assert spec.official_weights.url.startswith("https://github.com/isl-org/MiDaS/releases/download/")
    assert spec.official_weights.filename == f"{name}.pt"
    assert spec.preprocess.fixed_size == any(k in name for k in ("swin", "levit"))


def test_swinv2_attention_with_cached_bias_equals_timms():
    """Our SwinV2 attention (bias cached, fused attention) is timm's function: same output as timm's
    own forward through the same weights, with and without the shift mask; the bias is reused."""
    import torch

    from midas_diffusion import create_model
    from midas_diffusion.zoo.backbones.swin import CachedBiasWindowAttention
    from reference import recipe_init_

    model = create_model("dpt_swin2_tiny_256", reduced=True)
    recipe_init_(model)
    attns = [m for m in model.modules() if isinstance(m, CachedBiasWindowAttention)]
    assert attns and all(type(m.attn) is CachedBiasWindowAttention for m in model.modules() if hasattr(m, "attn"))
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1  # two images share the shift masks
    with torch.inference_mode():
        fast = model(x)
        for attn in attns:
            attn.training = True  # timm's own forward (dropout is 0)
        reference = model(x)
        for attn in attns:
            attn.training = False
        assert attns[0]._bias_cache[1] is attns[0].position_bias()  # reused, not recomputed
    assert float(reference.max() - reference.min()) > 0
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5 * float(reference.abs().max()))


def test_swinv2_attention_in_bf16_on_the_cpu_equals_timms():
    """In bf16 on the CPU our SwinV2 attention takes two batched matmuls instead of the fused kernel:
    still timm's function, to bf16 precision, with and without the shift mask."""
    import torch

    from midas_diffusion import create_model
    from midas_diffusion.zoo.backbones.swin import CachedBiasWindowAttention
    from reference import recipe_init_

    model = create_model("dpt_swin2_tiny_256", reduced=True)
    recipe_init_(model)
    attns = [m for m in model.modules() if isinstance(m, CachedBiasWindowAttention)]
    torch.manual_seed(0)
    for attn in attns:
        x = torch.randn(4, attn.window_size[0] * attn.window_size[1], attn.dim)
        n = x.shape[1]
        mask = torch.zeros(2, n, n).masked_fill_(torch.rand(2, n, n) > 0.7, -100.0)
        with torch.inference_mode():
            for m in (None, mask):
                expected = attn.double()(x.double(), None if m is None else m.double()).float()
                ours = attn.bfloat16()(x.bfloat16(), None if m is None else m.bfloat16()).float()
                attn.training = True  # timm's own forward, in bf16
                timm_bf16 = attn(x.bfloat16(), None if m is None else m.bfloat16()).float()
                attn.training = False
                attn.float()
                # as close to the float64 result as timm's own bf16 forward is (bf16: ~3 significant digits)
                err, timm_err = (ours - expected).abs().max(), (timm_bf16 - expected).abs().max()
                assert err <= 2 * timm_err + 1e-3 * expected.abs().max(), (err, timm_err)


def test_swin_v1_runs_timms_fused_attention_with_the_same_result():
    import torch
    from timm.models.swin_transformer import WindowAttention

    from midas_diffusion import create_model
    from reference import recipe_init_

    model = create_model("dpt_swin_large_384", reduced=True)
    recipe_init_(model)
    attns = [m for m in model.modules() if isinstance(m, WindowAttention)]
    assert attns and all(a.fused_attn for a in attns)
    x = torch.rand(1, 3, 384, 384, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        fused = model(x)
        for a in attns:
            a.fused_attn = False  # timm's default for Swin v1
        reference = model(x)
    assert float(reference.max() - reference.min()) > 0
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5 * float(reference.abs().max()))


def test_swinv2_built_under_inference_mode_runs():
    """A host may load models under inference_mode (ComfyUI does): the weights are then inference
    tensors, without a version counter, and the cached bias must not need one."""
    import torch

    from midas_diffusion import create_model

    with torch.inference_mode():
        model = create_model("dpt_swin2_tiny_256", reduced=True)
        out = model(torch.rand(1, 3, 256, 256))
    assert out.shape == (1, 256, 256) and torch.isfinite(out).all()
