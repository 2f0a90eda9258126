"""Single-file bases, as A1111 and ComfyUI users keep them: an original-layout (LDM) checkpoint
plus a local diffusers config folder; nothing is fetched."""

import json

import numpy as np
import pytest
import torch

from ldm_checkpoint import save_config_folder, save_ldm_checkpoint
from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator

diffusers = pytest.importorskip("diffusers")

from midas_diffusion.pipelines import MidasControlNetPipeline, MidasDepth2ImgPipeline, clear_cache, load_pipeline, pipeline  # noqa: E402

PROMPT = "a red brick house"


def _photo(h=48, w=80):
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(ramp + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def _base_file(path, comp, fmt):
    if fmt == "safetensors":
        save_ldm_checkpoint(path, comp["unet"], comp["vae"], comp["text_encoder"])
    else:  # .ckpt: a pickled {"state_dict": ...}, as the original training code wrote them
        from safetensors.torch import load_file

        save_ldm_checkpoint(path.with_suffix(".tmp"), comp["unet"], comp["vae"], comp["text_encoder"])
        torch.save({"state_dict": load_file(str(path.with_suffix(".tmp")))}, path)
    return path


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sd15")
    comp = sd15_components()
    config = save_config_folder(tmp / "sd15-config", diffusers.StableDiffusionPipeline, comp, safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False)
    return comp, config, tmp


@pytest.mark.parametrize("fmt", ["safetensors", "ckpt"])
def test_controlnet_on_a_single_file_base_equals_the_same_components(sd15, fmt):
    comp, config, tmp = sd15
    base = _base_file(tmp / f"my_sd15.{fmt}", comp, fmt)
    est, cn = tiny_depth_estimator(), tiny_controlnet()
    clear_cache()
    try:
        out = pipeline(_photo(), PROMPT, method="controlnet", base=base, single_file_config=config, depth_model=est,
                       control_model=cn, seed=5, num_inference_steps=2, output_type="np")
        loaded = load_pipeline("controlnet", base, est, cn, single_file_config=config)
    finally:
        clear_cache()
    assert isinstance(loaded, MidasControlNetPipeline)
    for name in ("unet", "vae", "text_encoder"):  # every weight came from the file, unchanged
        ours, theirs = getattr(loaded, name).state_dict(), comp[name].state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    direct = MidasControlNetPipeline(**comp, controlnet=cn, depth_estimator=est)
    direct.set_progress_bar_config(disable=True)
    ref = direct(PROMPT, image=_photo(), seed=5, num_inference_steps=2, output_type="np")
    assert out.images.shape == (1, 48, 80, 3)
    np.testing.assert_allclose(out.images, ref.images, atol=1e-6)
    assert out.settings["base"] == str(base)


def test_depth2img_on_a_single_file_base(tmp_path):
    comp = sd15_components(in_channels=5)
    config = save_config_folder(tmp_path / "sd2-depth-config", diffusers.StableDiffusionDepth2ImgPipeline, comp,
                            depth_estimator=None, feature_extractor=None)
    base = _base_file(tmp_path / "512-depth-ema.safetensors", comp, "safetensors")
    est = tiny_depth_estimator()
    pipe = load_pipeline("depth2img", base, est, single_file_config=config, cache=False)
    assert isinstance(pipe, MidasDepth2ImgPipeline) and pipe.unet.config.in_channels == 5
    pipe.set_progress_bar_config(disable=True)
    out = pipe(PROMPT, image=_photo(), seed=2, num_inference_steps=2, output_type="np")
    direct = MidasDepth2ImgPipeline(**comp, depth_estimator=est)
    direct.set_progress_bar_config(disable=True)
    ref = direct(PROMPT, image=_photo(), seed=2, num_inference_steps=2, output_type="np")
    np.testing.assert_allclose(out.images, ref.images, atol=1e-6)


def test_single_file_errors_name_the_file_or_folder(sd15, tmp_path, monkeypatch):
    comp, config, tmp = sd15
    base = _base_file(tmp_path / "sd15.safetensors", comp, "safetensors")
    kwargs = dict(depth_model=tiny_depth_estimator(), control_model=tiny_controlnet(), cache=False)
    with pytest.raises(ValueError, match=r"single_file_config '.*nowhere' is not a local diffusers folder"):
        load_pipeline("controlnet", base, single_file_config=tmp_path / "nowhere", **kwargs)
    monkeypatch.setenv("HOME", str(tmp_path))  # "~" is expanded: the file is found, the config is checked
    with pytest.raises(ValueError, match=rf"single_file_config '{tmp_path}/nowhere' is not a local diffusers"):
        load_pipeline("controlnet", "~/sd15.safetensors", single_file_config="~/nowhere", **kwargs)
    from safetensors.torch import save_file

    save_file({"lora_unet_down.alpha": torch.ones(1)}, str(tmp_path / "a_lora.safetensors"))
    with pytest.raises(ValueError, match=r"cannot load single-file base '.*a_lora.safetensors' for controlnet"):
        load_pipeline("controlnet", tmp_path / "a_lora.safetensors", single_file_config=config, **kwargs)
    # an SD 1.5 file read with an SD 2 depth config: the 4-channel UNet does not fit
    depth_config = tmp_path / "depth-config"
    depth_comp = sd15_components(in_channels=5)
    save_config_folder(depth_config, diffusers.StableDiffusionDepth2ImgPipeline, depth_comp, depth_estimator=None,
                   feature_extractor=None)
    with pytest.raises(ValueError, match=r"cannot load single-file base '.*sd15.safetensors' for depth2img"):
        load_pipeline("depth2img", base, depth_model=kwargs["depth_model"], single_file_config=depth_config,
                      cache=False)
    assert json.loads((config / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"


def test_sdxl_adapter_on_a_single_file_base(tmp_path):
    """An SDXL file: CLIP-L and OpenCLIP bigG (fused q/k/v) text encoders, ``label_emb`` in the UNet.

    The two text encoders differ in width, as in SDXL, which is how diffusers tells them apart.
    """
    from tiny_sd import tiny_scheduler, tiny_text_encoder, tiny_tokenizer, tiny_unet, tiny_vae

    from midas_diffusion.pipelines import MidasT2IAdapterXLPipeline

    comp = dict(vae=tiny_vae(), text_encoder=tiny_text_encoder(), text_encoder_2=tiny_text_encoder(projection=True, hidden=48),
                tokenizer=tiny_tokenizer(), tokenizer_2=tiny_tokenizer(), unet=tiny_unet(sdxl=True, cross_attention_dim=80),
                scheduler=tiny_scheduler())
    config = save_config_folder(tmp_path / "sdxl-config", diffusers.StableDiffusionXLPipeline, comp)
    base = tmp_path / "sdxl_finetune.safetensors"
    save_ldm_checkpoint(base, comp["unet"], comp["vae"], comp["text_encoder"], comp["text_encoder_2"])
    torch.manual_seed(0)
    adapter = diffusers.T2IAdapter(in_channels=3, channels=[32, 64], num_res_blocks=1, downscale_factor=4,
                                   adapter_type="full_adapter_xl").eval()
    est = tiny_depth_estimator()
    pipe = load_pipeline("t2i-adapter", base, est, adapter, single_file_config=config, cache=False)
    assert isinstance(pipe, MidasT2IAdapterXLPipeline)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        ours, theirs = getattr(pipe, name).state_dict(), comp[name].state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    pipe.set_progress_bar_config(disable=True)
    out = pipe(PROMPT, image=_photo(64, 64), seed=4, num_inference_steps=2, output_type="np")
    direct = MidasT2IAdapterXLPipeline(**comp, adapter=adapter, depth_estimator=est)
    direct.set_progress_bar_config(disable=True)
    ref = direct(PROMPT, image=_photo(64, 64), seed=4, num_inference_steps=2, output_type="np")
    np.testing.assert_allclose(out.images, ref.images, atol=1e-6)


def _hf_cache_with(cache, repo_id, folder):
    """``folder`` as the cached snapshot of ``repo_id`` in a Hugging Face hub cache at ``cache``."""
    import shutil

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copytree(folder, repo / "snapshots" / ("0" * 40))


def test_without_a_config_the_cached_default_base_describes_the_file(sd15, tmp_path, monkeypatch):
    import huggingface_hub.constants

    comp, config, tmp = sd15
    base = _base_file(tmp_path / "sd15.safetensors", comp, "safetensors")
    kwargs = dict(depth_model=tiny_depth_estimator(), control_model=tiny_controlnet(), cache=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ValueError, match=r"single-file checkpoint: pass single_file_config=.*"
                                         r"hf download stable-diffusion-v1-5/stable-diffusion-v1-5"):
        load_pipeline("controlnet", base, **kwargs)
    _hf_cache_with(tmp_path / "cache", "stable-diffusion-v1-5/stable-diffusion-v1-5", config)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    pipe = load_pipeline("controlnet", base, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(pipe.unet.state_dict().values(), comp["unet"].state_dict().values()))
