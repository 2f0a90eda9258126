"""Depth Anything V2 in the zoo: the original's function on its fixtures, every checkpoint layout, its
preprocessing, the transformers ``-hf`` layout, and the metric models' metres.

The reference data (``reference_data/depth_anything``) was computed by the original code
(DepthAnything/Depth-Anything-V2 a561b84) from the recipe's weights; see its README. The ViT-L
models (335M parameters; ~20 s each in float32 + float64 on one core) run with
``MIDAS_DIFFUSION_TEST_LARGE=1``; ViT-S and ViT-B always.
"""

import gc
import os
import random

import numpy as np
import pytest
import torch

import midas_diffusion as md
from midas_diffusion.inference.transforms import network_input_size, prepare, resize_prediction, with_resolution
from midas_diffusion.loading.checkpoints import CheckpointError

from reference import depth_anything_checkpoint, depth_anything_fixture, depth_anything_manifest, depth_anything_preprocessing

LARGE_ENV = "MIDAS_DIFFUSION_TEST_LARGE"
FLOAT64_TOLERANCE = 1e-8  # of the output's range
FLOAT32_TOLERANCE = 1e-4

SIZES = ("vits", "vitb", "vitl")
RELATIVE = [f"depth_anything_v2_{s}" for s in SIZES]
METRIC = [f"depth_anything_v2_metric_{d}_{s}" for d in ("hypersim", "vkitti") for s in SIZES]
NINE = RELATIVE + METRIC


def _gated(names):
    skip = pytest.mark.skipif(os.environ.get(LARGE_ENV) != "1", reason=f"ViT-L: set {LARGE_ENV}=1")
    return [pytest.param(n, marks=skip if n.endswith("_vitl") else ()) for n in names]


def _relative_error(y: torch.Tensor, expected: np.ndarray) -> float:
    expected = torch.from_numpy(expected)
    assert y.shape == expected.shape
    span = (expected.max() - expected.min()).item()
    assert span > 0, "degenerate reference output"
    return (y.to(expected.dtype) - expected).abs().max().item() / span


def _shuffled(state: dict, seed: int = 0) -> dict:
    keys = list(state)
    random.Random(seed).shuffle(keys)
    return {k: state[k] for k in keys}


# ---------------------------------------------------------------------------------------------
# The registry.
# ---------------------------------------------------------------------------------------------


def test_the_nine_models_are_registered_with_their_licences_and_weights():
    assert set(NINE) <= set(md.list_models())
    for name in NINE:
        spec = md.get_model_spec(name)
        size = name.rsplit("_", 1)[1]
        assert spec.license == ("Apache-2.0" if size == "vits" else "CC-BY-NC-4.0"), name
        assert spec.official_weights.filename == f"{name}.pth"
        assert spec.official_weights.url.startswith("https://huggingface.co/depth-anything/Depth-Anything-V2-")
        assert spec.official_weights.url.endswith(f"/resolve/main/{name}.pth")
        assert spec.hf_hub_id.startswith("depth-anything/Depth-Anything-V2-") and spec.hf_hub_id.endswith("-hf")
        assert spec.preprocess.ensure_multiple_of == 14 and spec.arch.input_multiple == 14
    assert md.get_model_spec("depth_anything_v2_vits").hf_hub_id == "depth-anything/Depth-Anything-V2-Small-hf"
    assert (md.get_model_spec("depth_anything_v2_metric_vkitti_vitb").hf_hub_id
            == "depth-anything/Depth-Anything-V2-Metric-Outdoor-Base-hf")
    assert md.get_model_spec("Depth-Anything-V2-Large").name == "depth_anything_v2_vitl"
    assert md.get_model_spec("Depth-Anything-V2-Metric-Indoor-Small").name == "depth_anything_v2_metric_hypersim_vits"


@pytest.mark.parametrize("name", NINE)
def test_spec_says_what_the_model_predicts(name):
    spec = md.get_model_spec(name)
    manifest = depth_anything_manifest(name)
    assert spec.max_depth == manifest["max_depth"]
    assert spec.predicts == ("disparity" if manifest["max_depth"] is None else "metres")
    assert spec.arch.decoder.scratch_channels == (manifest["features"],) * 4
    assert spec.arch.encoder.out_channels == tuple(manifest["out_channels"])
    assert md.get_model_spec("dpt_beit_large_512").predicts == "disparity"


def test_a_spec_must_say_disparity_or_metres():
    from dataclasses import replace

    with pytest.raises(ValueError, match="predicts must be one of"):
        replace(md.get_model_spec("depth_anything_v2_vits"), predicts="depth")


# ---------------------------------------------------------------------------------------------
# The original's function: recipe weights in the official layout, every format and key order.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _gated(NINE))
def test_reference_output_from_every_format_in_any_key_order(name, tmp_path):
    from safetensors.torch import save_file

    ref = depth_anything_fixture(name)
    official = depth_anything_checkpoint(name, seed=ref["seed"])
    model = md.create_model(name, checkpoint=_shuffled(official))
    state = model.state_dict()
    torch.save(_shuffled(official, seed=1), tmp_path / f"{name}.pth")
    save_file({k: v.contiguous() for k, v in official.items()}, str(tmp_path / f"{name}.safetensors"))
    del official
    for path in (tmp_path / f"{name}.pth", tmp_path / f"{name}.safetensors"):
        again = md.create_model(name, checkpoint=path).state_dict()
        assert again.keys() == state.keys() and all(torch.equal(again[k], v) for k, v in state.items()), path.suffix
        del again
        path.unlink()

    x = torch.from_numpy(ref["x"])
    with torch.inference_mode():
        y32 = model(x)
    assert y32.shape == (1, ref["h"], ref["w"]) and y32.dtype == torch.float32
    err32 = _relative_error(y32, ref["y"])
    assert err32 < FLOAT32_TOLERANCE, f"{name}: float32 error {err32:.2e} of the range"
    model.double()
    with torch.inference_mode():
        y64 = model(x.double())
    err64 = _relative_error(y64, ref["y64"])
    assert err64 < FLOAT64_TOLERANCE, f"{name}: float64 error {err64:.2e} of the range"
    spec = md.get_model_spec(name)
    if spec.predicts == "metres":
        assert 0 < float(y64.min()) and float(y64.max()) < spec.max_depth
    del model
    gc.collect()


def test_a_checkpoint_without_a_head_tensor_is_an_error_naming_it():
    official = depth_anything_checkpoint("depth_anything_v2_vits")
    del official["depth_head.scratch.output_conv2.2.bias"]
    with pytest.raises(CheckpointError, match=r"missing: scratch\.output_conv\.4\.bias"):
        md.create_model("depth_anything_v2_vits", checkpoint=official)


def test_a_midas_checkpoint_is_not_taken_for_depth_anything():
    from reference import official_key_shapes

    with pytest.raises(CheckpointError, match="does not fit|is for"):
        md.create_model("depth_anything_v2_vits", checkpoint=official_key_shapes("dpt_large_384"))


def test_position_embeddings_are_resampled_as_dinov2_does():
    """Bicubic by the scale factors (n + 0.1) / sqrt(N), in float32: not timm's own resampling, and
    not resampling to the size (transformers'); the training grid, square, is used as it is."""
    import torch.nn.functional as F
    from timm.layers import resample_abs_pos_embed

    from midas_diffusion.zoo.backbones.dinov2 import resample_pos_embed_dinov2

    g = torch.Generator().manual_seed(0)
    table = torch.randn(1, 1 + 37 * 37, 8, generator=g)
    assert torch.equal(resample_pos_embed_dinov2(table, (37, 37), torch.float32), table)
    ours = resample_pos_embed_dinov2(table, (28, 37), torch.float32)
    assert ours.shape == (1, 1 + 28 * 37, 8) and torch.equal(ours[:, :1], table[:, :1])
    grid = table[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    by_size = F.interpolate(grid, size=(28, 37), mode="bicubic", align_corners=False)
    by_size = by_size.permute(0, 2, 3, 1).reshape(1, -1, 8)
    timm_own = resample_abs_pos_embed(table, (28, 37), num_prefix_tokens=1)[:, 1:]
    for other in (by_size, timm_own):
        assert other.shape == ours[:, 1:].shape
        assert (ours[:, 1:] - other).abs().max() > 1e-3
    # float64 models resample in float32, as the original's ``pos_embed.float()``
    assert torch.equal(resample_pos_embed_dinov2(table.double(), (28, 37), torch.float64), ours.double())


# ---------------------------------------------------------------------------------------------
# Preprocessing (the original's image2tensor) and the way back to the image.
# ---------------------------------------------------------------------------------------------


def test_network_input_sizes_match_image2tensor():
    ref = depth_anything_preprocessing()
    spec = md.get_model_spec("depth_anything_v2_vits")
    config = spec.preprocess
    assert tuple(config.mean) == tuple(ref["mean"]) and tuple(config.std) == tuple(ref["std"])
    assert config.resize_method == ref["resize_method"] and config.ensure_multiple_of == ref["ensure_multiple_of"]
    assert config.net_size == (ref["input_size_default"],) * 2
    for key, expected in ref["sizes_hw"].items():
        hw, resolution = key.split("@")
        h, w = map(int, hw.split("x"))
        got = network_input_size(h, w, with_resolution(config, int(resolution)))
        assert list(got) == expected, key


def test_normalized_synthetic_image_matches_image2tensor():
    ref = depth_anything_preprocessing()["synthetic_61x93"]
    y, x = np.mgrid[0:61, 0:93]
    rgb = np.stack([(7 * y + 3 * x) % 256, (5 * x * y) % 256, 255 - (11 * x) % 256], axis=-1).astype(np.uint8)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).unsqueeze(0)
    net = prepare(image, md.get_model_spec("depth_anything_v2_vitb").preprocess)[0]
    assert list(net.shape[-2:]) == ref["shape"]
    # torch bicubic vs OpenCV bicubic: same size, values differ slightly
    np.testing.assert_allclose(net.mean(dim=(1, 2)).numpy(), ref["mean"], atol=0.02)
    np.testing.assert_allclose(net.std(dim=(1, 2)).numpy(), ref["std"], atol=0.02)


def test_prediction_goes_back_bilinearly_with_aligned_corners():
    import torch.nn.functional as F

    prediction = torch.rand(1, 1, 28, 42, generator=torch.Generator().manual_seed(0))
    config = md.get_model_spec("depth_anything_v2_vits").preprocess
    back = resize_prediction(prediction, (61, 93), config)
    assert torch.equal(back, F.interpolate(prediction, size=(61, 93), mode="bilinear", align_corners=True))
    midas = resize_prediction(prediction, (61, 93), md.get_model_spec("dpt_hybrid_384").preprocess)
    assert not torch.allclose(midas, back)


def test_estimator_runs_a_reduced_depth_anything_model():
    from reference import recipe_init_

    torch.manual_seed(0)
    est = md.DepthEstimator.from_pretrained("depth_anything_v2_metric_hypersim_vits", reduced=True, dtype=torch.float32)
    recipe_init_(est.model)
    image = torch.rand(1, 3, 61, 93, generator=torch.Generator().manual_seed(1))
    out = est(image)
    assert out.disparity.shape[-2:] == (61, 93) and torch.isfinite(out.disparity).all()
    assert out.raw.shape[-2:] == (61, 93)
    # the sigmoid head: metres between 0 and the maximum depth
    assert 0 <= float(out.raw.min()) and float(out.raw.max()) <= 20.0
    assert out.metres is not None and out.metres.shape == out.raw.shape
    assert float(out.metres.max()) <= 20.0 and float(out.metres.min()) > 0
    relative = md.DepthEstimator.from_pretrained("depth_anything_v2_vits", reduced=True, dtype=torch.float32)
    assert relative(image).metres is None


def test_input_sides_must_be_multiples_of_14():
    model = md.create_model("depth_anything_v2_vits", reduced=True)
    with pytest.raises(ValueError, match="multiples of 14"):
        model(torch.zeros(1, 3, 70, 72))
    assert model(torch.zeros(1, 3, 70, 98)).shape == (1, 70, 98)


# ---------------------------------------------------------------------------------------------
# The transformers layout (``depth-anything/*-hf``: DepthAnythingForDepthEstimation).
# ---------------------------------------------------------------------------------------------


def _transformers_model(max_depth=None):
    """A reduced ``DepthAnythingForDepthEstimation`` shaped as our reduced ViT-S model, with
    informative random weights (positive head biases keep the last activation open)."""
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=70, patch_size=14,
        out_indices=[1, 2, 3, 4], apply_layernorm=True, reshape_hidden_states=False, layerscale_value=1.0,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=8, head_hidden_size=4, patch_size=14,
        depth_estimation_type="relative" if max_depth is None else "metric", max_depth=int(max_depth or 1),
    )
    model = transformers.DepthAnythingForDepthEstimation(config).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, tensor in sorted(model.state_dict().items()):
            if tensor.ndim >= 2:
                tensor.copy_(torch.randn(tensor.shape, generator=g) / np.sqrt(np.prod(tensor.shape[1:])))
            elif key.startswith("head.") and key.endswith("bias") and max_depth is None:
                tensor.copy_(0.5 + 0.02 * torch.randn(tensor.shape, generator=g))
            elif key.endswith(("norm1.weight", "norm2.weight", "layernorm.weight", "lambda1")):
                tensor.copy_(1 + 0.1 * torch.randn(tensor.shape, generator=g))
            else:
                tensor.copy_(0.02 * torch.randn(tensor.shape, generator=g))
    return model


@pytest.mark.parametrize("name,max_depth", [("depth_anything_v2_vits", None),
                                            ("depth_anything_v2_metric_vkitti_vits", 80.0)])
def test_transformers_layout_converts_and_matches_transformers(name, max_depth, tmp_path):
    theirs = _transformers_model(max_depth)
    theirs.save_pretrained(tmp_path)
    ours = md.create_model(name, checkpoint=tmp_path / "model.safetensors", reduced=True)
    # the training grid (5x5 here), square: neither resamples the position embeddings (at other
    # sizes transformers resamples to the size, the original and we by DINOv2's scale factors)
    x = torch.rand(2, 3, 70, 70, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.inference_mode():
        expected = theirs(pixel_values=x).predicted_depth
        got = ours(x)
    assert got.shape == expected.shape == (2, 70, 70)
    span = float(expected.max() - expected.min())
    assert span > 0
    assert float((got - expected).abs().max()) < 1e-5 * span


def test_transformers_layout_of_another_family_is_refused(tmp_path):
    theirs = _transformers_model()
    theirs.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="DINOv2"):
        md.create_model("dpt_beit_base_384", checkpoint=tmp_path / "model.safetensors", reduced=True)
