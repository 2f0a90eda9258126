"""Pipelines on tiny random components, offline."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from tiny_sd import (
    sd15_components,
    tiny_controlnet,
    tiny_depth_estimator,
    tiny_scheduler,
    tiny_text_encoder,
    tiny_tokenizer,
    tiny_unet,
    tiny_vae,
)

diffusers = pytest.importorskip("diffusers")

from midas_diffusion.pipelines import (  # noqa: E402
    MidasControlNetPipeline,
    MidasControlNetUnionXLPipeline,
    MidasControlNetXLPipeline,
    MidasDepth2ImgPipeline,
    MidasT2IAdapterXLPipeline,
    clear_cache,
    load_pipeline,
    pipeline,
)

PROMPT = "a red brick house"


def _photo(h=48, w=80, seed=0):
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(ramp + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def _quiet(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def depth2img():
    comp = sd15_components(in_channels=5)
    return comp, _quiet(MidasDepth2ImgPipeline(**comp, depth_estimator=tiny_depth_estimator()))


@pytest.fixture(scope="module")
def controlnet():
    comp = sd15_components()
    cn = tiny_controlnet()
    return comp, cn, _quiet(MidasControlNetPipeline(**comp, controlnet=cn, depth_estimator=tiny_depth_estimator()))


# 1. same result as upstream ------------------------------------------------------------------

def test_depth2img_equals_upstream_non_square(depth2img):
    comp, ours = depth2img
    photo = Image.fromarray(_photo())
    out = ours(PROMPT, image=photo, num_inference_steps=2, seed=3, output_type="np")
    upstream = _quiet(diffusers.StableDiffusionDepth2ImgPipeline(**comp, depth_estimator=None, feature_extractor=None))
    ref = upstream(PROMPT, image=photo, depth_map=out.disparity[:, 0], num_inference_steps=2,
                   generator=torch.Generator().manual_seed(3), output_type="np")
    assert out.images.shape == (1, 48, 80, 3)
    np.testing.assert_allclose(out.images, ref.images, atol=1e-5)


def test_depth2img_numpy_non_square_is_not_transposed(depth2img):
    """Upstream derives (width, height) from a numpy image's shape[:-1], swapping them."""
    comp, ours = depth2img
    array = _photo()
    upstream = _quiet(diffusers.StableDiffusionDepth2ImgPipeline(**comp, depth_estimator=None, feature_extractor=None))
    disparity = ours.depth_estimator.estimate(array)[0]
    with pytest.raises(RuntimeError):  # the swapped depth size cannot be concatenated with the latents
        upstream(PROMPT, image=[array], depth_map=disparity[:, 0], num_inference_steps=2, output_type="np")
    out = ours(PROMPT, image=array, num_inference_steps=2, seed=3, output_type="np")
    ref = upstream(PROMPT, image=Image.fromarray(array), depth_map=disparity[:, 0], num_inference_steps=2,
                   generator=torch.Generator().manual_seed(3), output_type="np")
    np.testing.assert_allclose(out.images, ref.images, atol=1e-5)


def test_controlnet_equals_upstream_with_float_control_image(controlnet):
    comp, cn, ours = controlnet
    photo = _photo()
    out = ours(PROMPT, image=photo, num_inference_steps=2, seed=5, output_type="np")
    upstream = _quiet(diffusers.StableDiffusionControlNetPipeline(**comp, controlnet=cn, safety_checker=None,
                                                                  feature_extractor=None, requires_safety_checker=False))
    control = out.disparity.expand(-1, 3, -1, -1)
    ref = upstream(PROMPT, image=control, num_inference_steps=2, generator=torch.Generator().manual_seed(5), output_type="np")
    assert out.images.shape == ref.images.shape == (1, 48, 80, 3)
    np.testing.assert_allclose(out.images, ref.images, atol=1e-5)


# 2. save_pretrained / from_pretrained ----------------------------------------------------------

@pytest.mark.parametrize("which", ["depth2img", "controlnet"])
def test_save_and_load_give_identical_outputs(which, depth2img, controlnet, tmp_path):
    pipe = depth2img[1] if which == "depth2img" else controlnet[2]
    photo = _photo(40, 56)
    before = pipe(PROMPT, image=photo, num_inference_steps=2, seed=11, output_type="np")
    pipe.save_pretrained(tmp_path)
    again = _quiet(type(pipe).from_pretrained(tmp_path))
    assert again.depth_estimator.model_name == pipe.depth_estimator.model_name
    after = again(PROMPT, image=photo, num_inference_steps=2, seed=11, output_type="np")
    np.testing.assert_array_equal(before.images, after.images)
    assert torch.equal(before.disparity, after.disparity)


# 3. the depth cache -------------------------------------------------------------------------------

def test_repeated_prompts_run_the_depth_model_once(controlnet):
    _, _, pipe = controlnet
    pipe.depth_estimator.clear_cache()
    photo = _photo(seed=7)
    runs = pipe.depth_estimator.depth_runs
    for prompt in ("a castle", "a boat", "a forest"):
        pipe(prompt, image=photo, num_inference_steps=1, seed=0, output_type="np")
    assert pipe.depth_estimator.depth_runs == runs + 1
    pipe(PROMPT, image=photo, num_inference_steps=1, seed=0, output_type="np", gamma=0.5)  # new settings
    assert pipe.depth_estimator.depth_runs == runs + 2


# 4. bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(strength=1.5), "strength"),
        (dict(strength=-0.1), "strength"),
        (dict(strength=0.0), "strength=0.0 with num_inference_steps=2 leaves no denoising step"),
        (dict(strength=0.4), "strength=0.4 with num_inference_steps=2 leaves no denoising step"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(depth_map=torch.rand(1, 1, 10, 10)), "depth_map"),
        (dict(depth_map=torch.full((1, 1, 48, 80), 0.5)), "depth_map"),
        (dict(depth_map=torch.rand(2, 3, 48, 80)), "depth_map"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, argument, depth2img):
    _, pipe = depth2img
    with pytest.raises(ValueError, match=argument):
        pipe(PROMPT, image=_photo(), **{"num_inference_steps": 2, **kwargs})


def test_image_over_pixel_limit(depth2img):
    _, pipe = depth2img
    pipe.depth_estimator.register_to_config(max_pixels=1000)
    try:
        with pytest.raises(ValueError, match="over the limit"):
            pipe(PROMPT, image=_photo(), num_inference_steps=2)
    finally:
        pipe.depth_estimator.register_to_config(max_pixels=64_000_000)


def test_unknown_method_and_base():
    with pytest.raises(ValueError, match="unknown method 'depth3d'"):
        load_pipeline("depth3d")
    with pytest.raises(ValueError, match="base"):
        load_pipeline("controlnet", base="./no/such/folder", depth_model=tiny_depth_estimator(), control_model=tiny_controlnet())
    with pytest.raises(ValueError, match="prompt"):
        pipeline(_photo(), "  ", method="controlnet")


def test_a_bad_base_fails_before_any_model_loads(tmp_path, monkeypatch):
    """No depth weights exist here: a base error must come first, naming the base."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    (tmp_path / "not-a-pipeline").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    cases = {"nope": "unknown base 'nope'", "a/b/c": "unknown base 'a/b/c'",
             str(tmp_path / "not-a-pipeline"): "without model_index.json",
             str(tmp_path / "notes.txt"): "not a .safetensors/.ckpt checkpoint",
             "someone/some-model": "'someone/some-model' is not in the Hugging Face cache"}
    for base, message in cases.items():
        with pytest.raises(ValueError, match=message):
            pipeline(_photo(), PROMPT, method="controlnet", base=base)  # default depth model: no weights here
    with pytest.raises(ValueError, match="stable-diffusion-v1-5/stable-diffusion-v1-5' is not in the Hugging Face cache"):
        pipeline(_photo(), PROMPT)  # the default base, offline and not cached
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for device, message in (("cudaa", "unknown device 'cudaa'"), ("cuda", "device 'cuda' is not available here"),
                            ("mps", "device 'mps' is not available here")):
        with pytest.raises(ValueError, match=message):
            pipeline(_photo(), PROMPT, method="controlnet", base="nope", device=device)  # before the base, too


# 5. background mask -------------------------------------------------------------------------------

def test_background_mask_changes_conditioning_only_outside(controlnet):
    _, _, pipe = controlnet
    photo = _photo()
    mask = np.zeros((48, 80), np.float32)
    mask[10:40, 20:60] = 1
    full = pipe(PROMPT, image=photo, num_inference_steps=1, seed=0, output_type="np").disparity
    flat = pipe(PROMPT, image=photo, num_inference_steps=1, seed=0, output_type="np",
                background_mask=torch.from_numpy(mask)).disparity
    half = pipe(PROMPT, image=photo, num_inference_steps=1, seed=0, output_type="np",
                background_mask=torch.from_numpy(mask), background_weight=0.5).disparity
    inside = torch.from_numpy(mask).bool()[None, None]
    assert torch.equal(flat[inside], full[inside]) and torch.equal(half[inside], full[inside])
    assert (flat[~inside] == 0).all()
    torch.testing.assert_close(half[~inside], 0.5 * full[~inside])



def test_masks_per_image_and_in_every_form(controlnet):
    """A (B,H,W) mask gives each image its own mask; PIL and uint8 masks equal the float one; a mask
    of another aspect ratio is refused before the depth model runs."""
    _, _, pipe = controlnet
    photos = [_photo(seed=1), _photo(seed=2)]
    masks = torch.zeros(2, 48, 80)
    masks[0] = 1  # image 0: all subject; image 1: all background
    kwargs = dict(num_inference_steps=1, seed=0, output_type="np")
    full = pipe([PROMPT, PROMPT], image=photos, **kwargs).disparity
    out = pipe([PROMPT, PROMPT], image=photos, background_mask=masks, **kwargs).disparity
    assert torch.equal(out[0], full[0]) and (out[1] == 0).all()
    one = np.zeros((48, 80), np.uint8)
    one[10:40, 20:60] = 255
    as_float = pipe(PROMPT, image=photos[0], background_mask=torch.from_numpy(one / 255.0), **kwargs).disparity
    for form in (one, Image.fromarray(one), Image.fromarray(one).resize((160, 96), Image.NEAREST)):
        torch.testing.assert_close(pipe(PROMPT, image=photos[0], background_mask=form, **kwargs).disparity, as_float)
    runs = pipe.depth_estimator.depth_runs
    with pytest.raises(ValueError, match="background_mask is 48x48 but the image is 80x48"):
        pipe(PROMPT, image=_photo(seed=3), background_mask=np.ones((48, 48), bool), **kwargs)
    assert pipe.depth_estimator.depth_runs == runs


def test_depth_map_in_every_form_conditions_alike(controlnet):
    """uint8 arrays, 16-bit PNG images and float tensors of the same disparity give the same result."""
    _, _, pipe = controlnet
    levels = (np.linspace(0, 1, 80)[None, :] * np.ones((48, 1)) * 65535).astype(np.uint16)
    kwargs = dict(image=_photo(), num_inference_steps=1, seed=0, output_type="np")
    ref = pipe(PROMPT, depth_map=torch.from_numpy(levels / 65535.0).float(), **kwargs)
    for form in (Image.fromarray(levels), levels, torch.from_numpy(levels.astype(np.float32)) * 3):  # last: rescaled
        out = pipe(PROMPT, depth_map=form, **kwargs)
        torch.testing.assert_close(out.disparity, ref.disparity, atol=1e-6, rtol=0)
        np.testing.assert_allclose(out.images, ref.images, atol=1e-5)


# sizes, output types, entry point -----------------------------------------------------------------

def test_any_size_is_restored_and_output_types(depth2img):
    _, pipe = depth2img
    photo = _photo(45, 77)
    pil = pipe(PROMPT, image=photo, num_inference_steps=2, seed=0).images[0]
    assert pil.size == (77, 45)
    pt = pipe(PROMPT, image=photo, num_inference_steps=2, seed=0, output_type="pt")
    assert pt.images.shape == (1, 3, 45, 77) and pt.disparity.shape == (1, 1, 45, 77)
    assert pt.settings["seed"] == 0 and pt.settings["method"] == "depth2img"
    two = pipe(PROMPT, image=photo, num_inference_steps=2, seed=0, output_type="np", num_images_per_prompt=2)
    assert two.images.shape == (2, 45, 77, 3)
    with warnings.catch_warnings():  # one photo for two prompts: repeated by us, not by diffusers' deprecated path
        warnings.simplefilter("error", FutureWarning)
        pair = pipe([PROMPT, "a blue door"], image=photo, num_inference_steps=2, seed=0, output_type="np")
    assert pair.images.shape == (2, 45, 77, 3) and not np.allclose(pair.images[0], pair.images[1])


def test_callback_and_scheduler_choice(controlnet):
    _, _, pipe = controlnet
    steps = []

    def on_step(p, i, t, kw):
        steps.append(i)
        return kw

    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    try:
        pipe(PROMPT, image=_photo(), num_inference_steps=3, seed=0, output_type="np", callback_on_step_end=on_step)
    finally:
        pipe.scheduler = tiny_scheduler()
    assert steps == [0, 1, 2]


def test_pipeline_entry_point_loads_once_and_records_settings(controlnet, tmp_path):
    _, cn, pipe = controlnet
    pipe.save_pretrained(tmp_path / "base")
    clear_cache()
    kwargs = dict(method="controlnet", base=tmp_path / "base", depth_model=pipe.depth_estimator,
                  control_model=cn, num_inference_steps=1, output_type="np")
    a = pipeline(_photo(), PROMPT, seed=42, **kwargs)
    loaded = load_pipeline("controlnet", tmp_path / "base", pipe.depth_estimator, cn)
    b = pipeline(_photo(), PROMPT, seed=42, **kwargs)
    assert load_pipeline("controlnet", tmp_path / "base", pipe.depth_estimator, cn) is loaded
    np.testing.assert_array_equal(a.images, b.images)
    assert a.settings["seed"] == 42 and a.settings["depth_model"] == pipe.depth_estimator.model_name
    c = pipeline(_photo(), PROMPT, **kwargs)
    assert isinstance(c.settings["seed"], int)
    clear_cache()


@pytest.mark.parametrize("which", ["controlnet", "depth2img"])
def test_settings_reproduce_the_result(which, depth2img, controlnet, tmp_path):
    """``pipeline(image, **out.settings)`` gives the same images; the depth model that ran is named
    (the base folder's own, not the method's default), the base's own control model is recorded as
    such (None); a scheduler choice does not stick."""
    pipe = depth2img[1] if which == "depth2img" else controlnet[2]
    pipe.save_pretrained(tmp_path / "base")
    clear_cache()
    try:
        out = pipeline(_photo(), PROMPT, method=which, base=tmp_path / "base", num_inference_steps=2, output_type="np",
                       scheduler="euler", percentile=(2, 98), gamma=0.7, negative_prompt="blurry")
        settings = out.settings
        assert settings["depth_model"] == pipe.depth_estimator.model_name and settings["control_model"] is None
        assert settings["scheduler"] == "EulerDiscreteScheduler" and isinstance(settings["seed"], int)
        again = pipeline(_photo(), **settings, output_type="np")
        np.testing.assert_array_equal(again.images, out.images)
        default = pipeline(_photo(), PROMPT, method=which, base=tmp_path / "base", num_inference_steps=2,
                           output_type="np")
        assert default.settings["scheduler"] == "DDIMScheduler"  # the base's own again
        with pytest.raises(ValueError, match="unknown scheduler 'Nope'"):
            pipeline(_photo(), PROMPT, method=which, base=tmp_path / "base", scheduler="Nope")
    finally:
        clear_cache()


def test_one_prompt_for_a_batch_of_photos(controlnet, depth2img):
    """A list of photos with one prompt (and one negative prompt): each photo is restyled."""
    for pipe in (controlnet[2], depth2img[1]):
        photos = [_photo(seed=4), _photo(seed=5)]
        out = pipe(PROMPT, image=photos, negative_prompt="blurry", num_inference_steps=2, seed=0, output_type="np")
        assert out.images.shape == (2, 48, 80, 3) and out.disparity.shape == (2, 1, 48, 80)
        assert out.settings["prompt"] == PROMPT and out.settings["negative_prompt"] == "blurry"
        four = pipe(PROMPT, image=photos, num_inference_steps=2, seed=0, output_type="np", num_images_per_prompt=2)
        assert four.images.shape == (4, 48, 80, 3)


# SDXL methods --------------------------------------------------------------------------------------

def _sdxl_components():
    return dict(vae=tiny_vae(), text_encoder=tiny_text_encoder(), text_encoder_2=tiny_text_encoder(projection=True),
                tokenizer=tiny_tokenizer(), tokenizer_2=tiny_tokenizer(), unet=tiny_unet(sdxl=True),
                scheduler=tiny_scheduler())


def test_sdxl_controlnet_union_and_adapter_run_on_one_depth_path():
    comp = _sdxl_components()
    est = tiny_depth_estimator()
    photo = _photo(64, 96)
    cn = _quiet(MidasControlNetXLPipeline(**comp, controlnet=tiny_controlnet(sdxl=True), depth_estimator=est))
    out_cn = cn(PROMPT, image=photo, num_inference_steps=1, seed=0, output_type="np")
    torch.manual_seed(0)
    union_model = diffusers.ControlNetUnionModel(
        block_out_channels=(32, 64), layers_per_block=1, in_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=64, conditioning_embedding_out_channels=(16, 32), norm_num_groups=16, attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=80, transformer_layers_per_block=(1, 1), num_control_type=6,
        num_trans_channel=32, num_trans_head=2, num_trans_layer=1, num_proj_channel=32,
    ).eval()
    union = _quiet(MidasControlNetUnionXLPipeline(**comp, controlnet=union_model, depth_estimator=est))
    out_union = union(PROMPT, image=photo, num_inference_steps=1, seed=0, output_type="np")
    torch.manual_seed(0)
    adapter = diffusers.T2IAdapter(in_channels=3, channels=[32, 64], num_res_blocks=1, downscale_factor=4,
                                   adapter_type="full_adapter_xl").eval()
    t2i = _quiet(MidasT2IAdapterXLPipeline(**comp, adapter=adapter, depth_estimator=est))
    out_t2i = t2i(PROMPT, image=photo, num_inference_steps=1, seed=0, output_type="np")
    for out in (out_cn, out_union, out_t2i):
        assert out.images.shape == (1, 64, 96, 3) and np.isfinite(out.images).all()
    assert torch.equal(out_cn.disparity, out_union.disparity) and torch.equal(out_cn.disparity, out_t2i.disparity)
    assert est.depth_runs == 1  # one depth estimate served all three methods


def test_dtype_reaches_a_control_model_passed_as_a_module(tmp_path):
    """``dtype=`` casts a loaded ControlNet as well as the base; the depth model stays in float32."""
    comp, est = sd15_components(), tiny_depth_estimator()
    MidasControlNetPipeline(**comp, controlnet=tiny_controlnet(), depth_estimator=est).save_pretrained(tmp_path / "base")
    pipe = load_pipeline("controlnet", tmp_path / "base", est, tiny_controlnet(), dtype=torch.bfloat16, cache=False)
    assert {name: next(getattr(pipe, name).parameters()).dtype for name in ("unet", "vae", "controlnet")} == \
        dict.fromkeys(("unet", "vae", "controlnet"), torch.bfloat16)
    assert next(pipe.depth_estimator.parameters()).dtype == torch.float32
    out = _quiet(pipe)(PROMPT, image=_photo(), num_inference_steps=1, seed=0, output_type="np")
    assert np.isfinite(out.images).all()


@pytest.mark.parametrize("size", [(100, 70), (120, 120), (16, 16)])
def test_t2i_adapter_takes_any_size(size):
    """SDXL depth adapters downsample by 32 in all (pixel unshuffle by 16, then one more level), so
    the working size snaps to 32 there; sizes that are multiples of 8 only used to crash in torch."""
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(block_out_channels=[16, 16, 32, 32], down_block_types=["DownEncoderBlock2D"] * 4,
                                  up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, norm_num_groups=16).eval()
    comp = dict(_sdxl_components(), vae=vae)  # a VAE that downsamples by 8, as SDXL's does
    adapter = diffusers.T2IAdapter(in_channels=3, channels=[32, 64], num_res_blocks=1, downscale_factor=16,
                                   adapter_type="full_adapter_xl").eval()
    pipe = _quiet(MidasT2IAdapterXLPipeline(**comp, adapter=adapter, depth_estimator=tiny_depth_estimator()))
    assert pipe.size_multiple() == 32
    out = pipe(PROMPT, image=_photo(*size), num_inference_steps=1, seed=0, output_type="np")
    assert out.images.shape == (1, *size, 3) and np.isfinite(out.images).all()


def _sdxl_pipeline(kind, est):
    comp = _sdxl_components()
    torch.manual_seed(0)
    if kind == "controlnet-sdxl":
        return MidasControlNetXLPipeline(**comp, controlnet=tiny_controlnet(sdxl=True), depth_estimator=est)
    if kind == "controlnet-union":
        union = diffusers.ControlNetUnionModel(
            block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), cross_attention_dim=64,
            conditioning_embedding_out_channels=(16, 32), norm_num_groups=16, attention_head_dim=(2, 4),
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=80, transformer_layers_per_block=(1, 1), num_control_type=6,
            num_trans_channel=32, num_trans_head=2, num_trans_layer=1, num_proj_channel=32).eval()
        return MidasControlNetUnionXLPipeline(**comp, controlnet=union, depth_estimator=est)
    adapter = diffusers.T2IAdapter(in_channels=3, channels=[32, 64], num_res_blocks=1, downscale_factor=4,
                                   adapter_type="full_adapter_xl").eval()
    return MidasT2IAdapterXLPipeline(**comp, adapter=adapter, depth_estimator=est)


@pytest.mark.parametrize("kind, depth_model", [("controlnet-sdxl", "dpt_swin2_tiny_256"),
                                               ("controlnet-union", "dpt_hybrid_384"),
                                               ("t2i-adapter", "dpt_swin2_tiny_256")])
def test_sdxl_pipelines_round_trip_bit_exactly(kind, depth_model, tmp_path):
    """save_pretrained -> from_pretrained reproduces the images exactly, with depth models whose timm
    encoders compute buffers while built (SwinV2, ViT hybrid) and weights memory-mapped at any offset."""
    pipe = _quiet(_sdxl_pipeline(kind, tiny_depth_estimator(depth_model)))
    kwargs = dict(image=_photo(40, 56), num_inference_steps=2, seed=3, output_type="np", percentile=(2, 98), gamma=0.8)
    before = pipe(PROMPT, **kwargs)
    pipe.save_pretrained(tmp_path)
    again = _quiet(type(pipe).from_pretrained(tmp_path))
    assert again.depth_estimator.model_name == depth_model
    after = again(PROMPT, **kwargs)
    np.testing.assert_array_equal(before.images, after.images)
    assert torch.equal(before.disparity, after.disparity)


# the pipeline classes, conversion once, cancellation -----------------------------------------------

def test_every_method_has_its_imported_pipeline_class():
    from midas_diffusion.pipelines.load import PIPELINES
    from midas_diffusion.pipelines.methods import METHODS

    assert sorted(PIPELINES) == sorted(METHODS)
    assert all(cls.method_name == name for name, cls in PIPELINES.items())


@pytest.mark.parametrize("form", ["float tensor", "PIL"])
def test_pipeline_converts_an_image_once(form, controlnet, tmp_path, monkeypatch):
    """The compact tensor made where the image enters travels through the depth component to the
    estimator: one conversion (and one range scan of a float image) per image, not one per layer."""
    from midas_diffusion.io import images

    _, cn, pipe = controlnet
    pipe.save_pretrained(tmp_path / "base")
    photo = torch.rand(3, 48, 80) if form == "float tensor" else Image.fromarray(_photo(seed=9))
    conversions = []
    convert = images.to_compact_tensor

    def counting(item, *args, **kwargs):
        conversions.append(type(item).__name__)
        return convert(item, *args, **kwargs)

    monkeypatch.setattr(images, "to_compact_tensor", counting)
    pipe.depth_estimator.clear_cache()
    runs = pipe.depth_estimator.depth_runs
    out = pipeline(photo, PROMPT, method="controlnet", base=tmp_path / "base", depth_model=pipe.depth_estimator,
                   control_model=cn, num_inference_steps=1, seed=0, output_type="np", cache=None)
    assert pipe.depth_estimator.depth_runs == runs + 1  # the estimator did run on it
    assert len(conversions) == 1, conversions
    assert out.settings["depth_model"] == pipe.depth_estimator.model_name


def _unet_calls(pipe, cancel_at=None, token=None):
    """A forward pre-hook counting UNet calls (one per step: CFG runs both halves in one batch);
    at call ``cancel_at`` (1-based) it sets ``token``, as a Cancel button pressed during that step."""
    calls = []

    def hook(module, args):
        calls.append(1)
        if cancel_at is not None and len(calls) == cancel_at:
            token.cancel()

    return calls, pipe.unet.register_forward_pre_hook(hook)


def _decodes(pipe):
    decoded = []
    return decoded, pipe.vae.decoder.register_forward_pre_hook(lambda module, args: decoded.append(1))


@pytest.mark.parametrize("kind", ["controlnet", "depth2img", "controlnet-sdxl", "controlnet-union", "t2i-adapter"])
def test_a_cancelled_run_stops_within_one_step_and_the_next_run_works(kind, controlnet, depth2img):
    from midas_diffusion.pipelines import CancelToken, Cancelled

    if kind == "controlnet":
        pipe = controlnet[2]
    elif kind == "depth2img":
        pipe = depth2img[1]
    else:
        pipe = _quiet(_sdxl_pipeline(kind, tiny_depth_estimator()))
    kwargs = dict(image=_photo(64, 96), num_inference_steps=8, seed=0, output_type="np")
    if kind == "depth2img":
        kwargs["strength"] = 1.0  # all 8 steps
    token = CancelToken()
    calls, counting = _unet_calls(pipe, cancel_at=2, token=token)
    decoded, decoding = _decodes(pipe)
    try:
        with pytest.raises(Cancelled):
            pipe(PROMPT, cancel=token, **kwargs)
        assert token.cancelled and len(calls) == 2 and not decoded  # stopped at the end of step 1, nothing decoded
        calls.clear()
        after = pipe(PROMPT, cancel=CancelToken(), **kwargs)
        assert len(calls) == 8 and decoded
        plain = pipe(PROMPT, **kwargs)
    finally:
        counting.remove()
        decoding.remove()
    np.testing.assert_array_equal(after.images, plain.images)  # the cancelled run left nothing behind


def test_cancel_before_the_run_and_beside_a_callback(controlnet, tmp_path):
    """A token already set stops ``pipeline()`` before the depth model runs; a caller's own
    ``callback_on_step_end`` runs beside the token, its tensor inputs passed through."""
    from midas_diffusion.pipelines import CancelToken, Cancelled

    _, cn, pipe = controlnet
    pipe.save_pretrained(tmp_path / "base")
    pipe.depth_estimator.clear_cache()
    runs = pipe.depth_estimator.depth_runs
    token = CancelToken()
    token.cancel()
    kwargs = dict(method="controlnet", base=tmp_path / "base", depth_model=pipe.depth_estimator, control_model=cn,
                  num_inference_steps=3, seed=0, output_type="np", cache=None)
    with pytest.raises(Cancelled):
        pipeline(_photo(), PROMPT, cancel=token, **kwargs)
    assert pipe.depth_estimator.depth_runs == runs
    seen = []

    def on_step(p, i, t, kw):
        seen.append((i, sorted(kw)))
        return kw

    pipeline(_photo(), PROMPT, cancel=CancelToken(), callback_on_step_end=on_step,
             callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"], **kwargs)
    assert seen == [(i, ["latents", "prompt_embeds"]) for i in range(3)]
    token = CancelToken()
    with pytest.raises(Cancelled):  # token.callback alone, as a plain diffusers callback
        pipe(PROMPT, image=_photo(), num_inference_steps=3, seed=0, output_type="np",
             callback_on_step_end=lambda p, i, t, kw: (token.cancel(), token.callback(p, i, t, kw))[1])
    with pytest.raises(TypeError, match="CancelToken"):
        pipe(PROMPT, image=_photo(), num_inference_steps=1, cancel=True)


def test_settings_name_a_depth_model_loaded_from_a_folder(controlnet, tmp_path):
    """A depth model from a saved folder is recorded by that folder (its zoo name would load other
    weights), and the settings reproduce the run."""
    _, cn, pipe = controlnet
    pipe.save_pretrained(tmp_path / "base")
    pipe.depth_estimator.estimator.save_pretrained(tmp_path / "depth")
    clear_cache()
    try:
        out = pipeline(_photo(), PROMPT, method="controlnet", base=tmp_path / "base", depth_model=tmp_path / "depth",
                       num_inference_steps=1, output_type="np")
        assert out.settings["depth_model"] == str(tmp_path / "depth")
        again = pipeline(_photo(), **out.settings, output_type="np")
        np.testing.assert_array_equal(again.images, out.images)
    finally:
        clear_cache()
