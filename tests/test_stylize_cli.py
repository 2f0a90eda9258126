import json

import numpy as np
import pytest
from PIL import Image

from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator

pytest.importorskip("diffusers")

from midas_diffusion.cli import main  # noqa: E402
from midas_diffusion.io.writers import read_uint16_png  # noqa: E402
from midas_diffusion.pipelines import MidasControlNetPipeline, clear_cache  # noqa: E402


@pytest.fixture()
def saved_base(tmp_path):
    pipe = MidasControlNetPipeline(**sd15_components(), controlnet=tiny_controlnet(), depth_estimator=tiny_depth_estimator())
    pipe.save_pretrained(tmp_path / "base")
    Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    clear_cache()
    yield tmp_path
    clear_cache()


def test_stylize_writes_image_depth_and_settings(saved_base, capsys):
    out = saved_base / "result.png"
    args = ["stylize", str(saved_base / "photo.png"), "a watercolor house", "-o", str(out), "--method", "controlnet",
            "--base", str(saved_base / "base"), "--steps", "2", "--seed", "7", "--save-depth", "--scheduler", "euler"]
    assert main(args) == 0
    assert Image.open(out).size == (60, 40)
    depth = read_uint16_png(saved_base / "result-depth.png")
    assert depth.dtype == np.uint16 and depth.shape == (40, 60)
    settings = json.loads((saved_base / "result.json").read_text())
    assert settings["seed"] == 7 and settings["method"] == "controlnet" and settings["num_inference_steps"] == 2
    first = out.read_bytes()
    # an existing result is kept unless --overwrite
    assert main(args) == 1 and "exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0 and out.read_bytes() == first  # same seed, same image


def test_stylize_reports_bad_input(saved_base, capsys):
    rc = main(["stylize", str(saved_base / "missing.png"), "x", "-o", str(saved_base / "r.png"), "--base", str(saved_base / "base")])
    assert rc == 1 and "missing.png" in capsys.readouterr().err
    rc = main(["stylize", str(saved_base / "photo.png"), "x", "-o", str(saved_base / "r.png"), "--base",
               str(saved_base / "base"), "--strength", "0.5"])
    assert rc == 1 and "strength" in capsys.readouterr().err
    assert not (saved_base / "r.png").exists()


def test_ctrl_c_in_stylize_stops_cleanly_with_130_and_writes_nothing(saved_base, capsys, monkeypatch):
    from diffusers import EulerDiscreteScheduler

    real_step, steps = EulerDiscreteScheduler.step, []

    def step(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second denoising step
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(EulerDiscreteScheduler, "step", step)
    out = saved_base / "result.png"
    rc = main(["stylize", str(saved_base / "photo.png"), "a house", "-o", str(out), "--method", "controlnet",
               "--base", str(saved_base / "base"), "--steps", "5", "--save-depth", "--scheduler", "euler"])
    assert rc == 130 and len(steps) == 2
    err = capsys.readouterr().err
    assert "cancelled (Ctrl-C)" in err and "Traceback" not in err
    assert sorted(p.name for p in saved_base.iterdir()) == ["base", "photo.png"]  # no result, depth or settings


def test_stylize_exports_rgbd(saved_base):
    from plyfile import PlyData

    out = saved_base / "r.png"
    args = ["stylize", str(saved_base / "photo.png"), "a house", "-o", str(out), "--base", str(saved_base / "base"),
            "--steps", "1", "--seed", "1", "--export", "ply,glb", "--rgbd-depth", "reestimate"]
    assert main(args) == 0
    assert PlyData.read(str(saved_base / "r.ply"))["vertex"].count == 40 * 60
    assert (saved_base / "r.glb").stat().st_size > 0


def test_rgbd_command(tmp_path):
    import torch

    from tiny_sd import sd15_components
    from midas_diffusion.pipelines import MidasLDM3DPipeline

    torch.manual_seed(0)
    vae = __import__("diffusers").AutoencoderKL(block_out_channels=[32, 64], in_channels=4, out_channels=4,
                                                down_block_types=["DownEncoderBlock2D"] * 2,
                                                up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=16)
    MidasLDM3DPipeline(**{**sd15_components(), "vae": vae}).save_pretrained(tmp_path / "ldm3d")
    clear_cache()
    out = tmp_path / "out"
    assert main(["rgbd", "a cozy room", "-o", str(out), "--base", str(tmp_path / "ldm3d"), "--height", "64",
                 "--width", "96", "--steps", "2", "--seed", "3", "--export", "ply"]) == 0
    depth = read_uint16_png(out / "depth.png")
    assert depth.dtype == np.uint16 and depth.shape == (64, 96)
    assert Image.open(out / "side_by_side.png").size == (192, 64)
    assert json.loads((out / "settings.json").read_text())["seed"] == 3
    assert (out / "rgbd.ply").exists()
    assert main(["rgbd", "a cozy room", "-o", str(out), "--base", str(tmp_path / "ldm3d")]) == 1  # no overwrite
    clear_cache()


def test_stylize_on_a_single_file_base(tmp_path):
    """The A1111/ComfyUI setup: a base file, a configs-only folder, a depth model and ControlNet on disk."""
    import diffusers

    from ldm_checkpoint import save_config_folder, save_ldm_checkpoint
    from midas_diffusion import DepthEstimator
    from reference import recipe_init_

    comp = sd15_components()
    save_ldm_checkpoint(tmp_path / "my_sd15.safetensors", comp["unet"], comp["vae"], comp["text_encoder"])
    save_config_folder(tmp_path / "config", diffusers.StableDiffusionPipeline, comp, safety_checker=None,
                       feature_extractor=None, requires_safety_checker=False)
    tiny_controlnet().save_pretrained(tmp_path / "controlnet")
    est = DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    est.save_pretrained(tmp_path / "depth")
    Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    out = tmp_path / "result.png"
    clear_cache()
    try:
        rc = main(["stylize", str(tmp_path / "photo.png"), "a watercolor house", "-o", str(out),
                   "--base", str(tmp_path / "my_sd15.safetensors"), "--single-file-config", str(tmp_path / "config"),
                   "--control-model", str(tmp_path / "controlnet"), "--depth-model", str(tmp_path / "depth"),
                   "--steps", "1", "--seed", "3"])
    finally:
        clear_cache()
    assert rc == 0 and Image.open(out).size == (60, 40)
    assert json.loads(out.with_suffix(".json").read_text())["base"] == str(tmp_path / "my_sd15.safetensors")


def test_auto_device_and_dtype(monkeypatch):
    import torch

    from midas_diffusion.pipelines.cli import device_and_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device_and_dtype("auto", "auto") == ("cpu", torch.float32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_and_dtype("auto", "auto") == ("cuda", torch.float16)
    assert device_and_dtype("auto", "bfloat16") == ("cuda", torch.bfloat16)
    assert device_and_dtype("cpu", "auto") == ("cpu", torch.float32)
