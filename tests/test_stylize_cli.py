import json

import numpy as np
import pytest
from PIL import Image

from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator

pytest.importorskip("diffusers")

from midas_diffusion.cli import main  # noqa: E402
from midas_diffusion.writers import read_png16  # noqa: E402
from pipelines import MidasControlNetPipeline, clear_cache  # noqa: E402


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
    depth = read_png16(saved_base / "result-depth.png")
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
