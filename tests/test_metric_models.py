"""Metric models (``spec.predicts == "metres"``) end to end, with a tiny model: the reduced
``midas_v21_small_256`` registered as a metric model (its positive output read as metres, 0.4-14 m
here), the way the Depth Anything V2 metric specs are."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

import midas_diffusion as md
from midas_diffusion.cli import main
from midas_diffusion.evaluation.protocol import PROTOCOLS, evaluate_sample
from midas_diffusion.inference.outputs import MIN_METRES
from midas_diffusion.inference.transforms import normalize_disparity
from midas_diffusion.io.writers import read_pfm
from midas_diffusion.zoo.labels import model_label, model_tags, predicts_label
from midas_diffusion.zoo.registry import get_model_spec, list_models, registered
from reference import recipe_init_

METRIC = "tiny_metric_test"
BASE = "midas_v21_small_256"


@pytest.fixture()
def metric_spec():
    spec = dataclasses.replace(get_model_spec(BASE), name=METRIC, aliases=(), hf_hub_id=None, predicts="metres",
                               max_depth=20.0, license="CC-BY-NC-4.0")
    with registered(spec):
        yield spec
    assert METRIC not in list_models()  # gone again after the test


def _estimator(name=METRIC):
    torch.manual_seed(0)
    est = md.DepthEstimator.from_pretrained(name, reduced=True, dtype=torch.float32, resolution=64)
    recipe_init_(est.model)
    return est


@pytest.fixture()
def metric_folder(metric_spec, tmp_path):
    return str(_estimator().save_pretrained(tmp_path / "metric_model"))


def _image(h=40, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_estimator_gives_metres_and_their_normalized_inverse(metric_spec):
    est = _estimator()
    out = est(_image())
    assert out.metres is not None and out.metres.shape == out.raw.shape == (1, 1, 40, 64)
    assert out.metres.dtype == torch.float32 and float(out.metres.min()) >= MIN_METRES
    torch.testing.assert_close(out.metres, out.raw.clamp(min=MIN_METRES))  # raw is the network's metres
    assert float(out.metres.max()) > 2 * float(out.metres.min())  # a varied map, so the check below can fail
    torch.testing.assert_close(out.disparity, normalize_disparity(1.0 / out.metres))
    near = torch.argmin(out.metres.flatten())
    assert float(out.disparity.flatten()[near]) == pytest.approx(1.0)  # nearest pixel = 1, as from any model
    assert out.settings["predicts"] == "metres" and out.settings["max_depth"] == 20.0
    assert [m.shape for m in out.per_image("metres")] == [(1, 40, 64)]
    each = est.estimate_each([_image(), _image(48, 64, 1)])
    assert [tuple(o.metres.shape) for o in each] == [(1, 1, 40, 64), (1, 1, 48, 64)]
    torch.testing.assert_close(each[0].metres, out.metres)

    relative = _estimator(BASE)(_image())
    assert relative.metres is None and relative.settings["predicts"] == "disparity"
    with pytest.raises(ValueError, match="not metres"):
        relative.per_image("metres")


def test_cli_writes_metres_in_mm_png_npy_and_pfm_with_the_scale_stated(metric_folder, tmp_path, capsys):
    Image.fromarray(_image()).save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(["depth", str(tmp_path / "a.png"), "-o", str(out), "--model", metric_folder,
                 "--format", "png16,npy,pfm", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["a.png", "a.npy", "a.pfm", "a-metric.png", "a-metric.npy", "a-metric.pfm", "a-metric.json"])
    metres = np.load(out / "a-metric.npy")
    expected = _estimator()(_image()).metres[0, 0].numpy()
    np.testing.assert_allclose(metres, expected, rtol=1e-4)
    np.testing.assert_allclose(read_pfm(out / "a-metric.pfm"), metres, rtol=1e-6)
    np.testing.assert_allclose(np.load(out / "a.npy"), metres, rtol=1e-4)  # raw = the model's metres
    with Image.open(out / "a-metric.png") as img:
        mm = np.asarray(img)
    assert mm.dtype == np.uint16
    np.testing.assert_array_equal(mm, np.round(metres.astype(np.float64) * 1000))  # millimetres
    sidecar = json.loads((out / "a-metric.json").read_text())
    assert sidecar["png16_scale_m"] == 0.001 and "millimetres" in sidecar["files"]["a-metric.png"]
    assert sidecar["files"]["a-metric.npy"].startswith("metres") and "own prediction" in sidecar["metres_from"]

    with pytest.raises(SystemExit):
        main(["depth", "--help"])
    assert "metres = value * 0.001" in " ".join(capsys.readouterr().out.split())

    (tmp_path / "k.csv").write_text("1,1,2.0\n")
    assert main(["depth", str(tmp_path / "a.png"), "-o", str(tmp_path / "o2"), "--model", metric_folder,
                 "--metric-from", str(tmp_path / "k.csv"), "--no-progress"]) == 1
    assert "predicts metres itself" in capsys.readouterr().err


def test_rgbd_export_uses_the_models_metres(metric_folder, tmp_path):
    pytest.importorskip("trimesh")
    from plyfile import PlyData

    Image.fromarray(_image()).save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(["depth", str(tmp_path / "a.png"), "-o", str(out), "--model", metric_folder, "--format", "npy",
                 "--export", "ply", "--near", "1", "--far", "3", "--no-progress"]) == 0
    vertex = PlyData.read(str(out / "a.ply"))["vertex"]
    metres = np.load(out / "a-metric.npy")
    assert metres.max() > 3.5  # beyond --far: near/far are not used
    np.testing.assert_allclose(-np.asarray(vertex["z"]), metres.ravel(), rtol=1e-5)


def test_metric_predictions_are_scored_without_alignment():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 8.0, (24, 32))
    protocol = PROTOCOLS["nyu"]  # delta_bad, cap 10 m
    exact = evaluate_sample(None, gt, protocol=protocol, pred_metres=gt)
    assert exact["alignment"] == "none" and exact["value"] == 0.0 and exact["absrel"] == pytest.approx(0.0)
    off = evaluate_sample(None, gt, protocol=protocol, pred_metres=1.5 * gt)  # a constant scale off
    assert off["alignment"] == "none" and (off["scale"], off["shift"]) == (1.0, 0.0)
    assert off["value"] > 0.9 and off["absrel"] > 0.3  # metric: the scale error counts ...
    aligned = evaluate_sample(1.0 / (1.5 * gt), gt, protocol=protocol)  # ... a relative model's is aligned away
    assert aligned["alignment"] == "scale_shift" and aligned["value"] == 0.0 and aligned["absrel"] < 1e-9
    capped = evaluate_sample(None, gt, protocol=protocol, pred_metres=gt + 50.0)
    assert capped["absrel"] == pytest.approx(float(np.mean(np.abs(10.0 - gt) / gt)))  # the dataset's cap
    metres = np.array([[1.0, 2.0], [3.0, 4.0]])
    pairs = [(0, 0, 1, 1, -1), (1, 0, 0, 1, -1)]  # A is closer: right, then wrong
    assert evaluate_sample(None, None, protocol=PROTOCOLS["diw"], pairs=pairs, pred_metres=metres)["whdr"] == 0.5


def test_evaluate_cli_records_say_how_each_model_was_scored(metric_folder, tmp_path):
    import eval_fixtures as fx

    fx.folder(tmp_path / "data", n=2)
    relative = str(_estimator(BASE).save_pretrained(tmp_path / BASE))
    out = tmp_path / "r.json"
    assert main(["evaluate", "--no-progress", "--model", f"{metric_folder},{relative}", "--dataset", "folder",
                 "--root", str(tmp_path / "data"), "--out", str(out)]) == 0
    models = json.loads(out.read_text())["models"]
    assert models["metric_model"]["datasets"]["folder"]["alignment"] == "none"
    assert models[BASE]["datasets"]["folder"]["alignment"] == "scale_shift"
    records = [json.loads(p.read_text()) for p in (tmp_path / "r.samples" / "folder" / "metric_model").glob("*.json")]
    assert len(records) == 2 and all(r["alignment"] == "none" and r["scale"] == 1.0 for r in records)


def test_listings_show_licence_and_what_the_model_predicts(metric_spec, capsys):
    assert predicts_label(metric_spec) == "metric 0-20 m" and predicts_label(get_model_spec(BASE)) == "relative"
    assert model_tags(get_model_spec(BASE)) == []  # MIT and relative: the name alone
    assert model_label(metric_spec) == f"{METRIC} [metric 0-20 m, licence CC-BY-NC-4.0]"
    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "licence" in rows["name"] and "predicts" in rows["name"]
    assert "metric 0-20 m" in rows[METRIC] and "CC-BY-NC-4.0" in rows[METRIC]
    assert "relative" in rows[BASE] and " MIT " in rows[BASE]


def test_app_and_a1111_lists_mark_metric_models(metric_spec):
    pytest.importorskip("gradio")
    from midas_diffusion.ui import a1111
    from midas_diffusion.ui.gradio_app import AppConfig, StylizeService

    from unittest import mock

    gr = mock.MagicMock(name="gradio")
    a1111.model_dropdown(gr)
    kwargs = gr.Dropdown.call_args.kwargs
    assert METRIC in kwargs["choices"] and model_label(metric_spec) in kwargs["info"] and BASE not in kwargs["info"]
    service = StylizeService(AppConfig(depth_models={METRIC: METRIC, BASE: BASE}))
    labels = dict((value, label) for label, value in service.model_choices())
    assert "[metric 0-20 m, licence CC-BY-NC-4.0]" in labels[METRIC] and "licence" not in labels[BASE]
    # the app's 3D export of a metric model: its metres at the result's size
    est = _estimator()
    metres = StylizeService.model_metres(est, _image(), None, (40, 64))
    np.testing.assert_allclose(metres, est(_image()).metres[0, 0].numpy(), rtol=1e-6)
    assert StylizeService.model_metres(est, _image(), None, (48, 72)).shape == (48, 72)


def test_a1111_preprocessor_label_names_the_licence(metric_spec):
    from midas_diffusion.ui import a1111

    class Parameter:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class Preprocessor:
        def __init__(self, name):
            self.name = name

    cls = a1111.preprocessor_class(Preprocessor, Parameter)
    metric, plain = cls(METRIC), cls(BASE)
    assert metric.name == a1111.preprocessor_name(METRIC)  # the API's key is unchanged
    assert metric._label == f"{a1111.preprocessor_name(METRIC)} [metric 0-20 m, licence CC-BY-NC-4.0]"
    assert not hasattr(plain, "_label")


def test_comfyui_lists_the_model_and_its_metric_node_gives_metres(metric_folder):
    from midas_diffusion.ui import comfyui

    choices, options = comfyui.MidasLoadDepthModel.INPUT_TYPES()["required"]["model"]
    assert METRIC in choices and f"{METRIC} [metric 0-20 m, licence CC-BY-NC-4.0]" in options["tooltip"]
    (est,) = comfyui.MidasLoadDepthModel().load(METRIC, device="cpu", dtype="float32", model_path=metric_folder)
    frames = torch.from_numpy(_image()).float()[None] / 255
    depth, fit = comfyui.MidasMetricDepth().fit(image=frames, depth_model=est)  # no known distances
    expected = _estimator()(_image()).metres[0]
    assert depth.shape == (1, 40, 64)
    torch.testing.assert_close(depth, expected, rtol=1e-3, atol=1e-4)
    assert "no fit" in fit
    capped, _ = comfyui.MidasMetricDepth().fit(image=frames, depth_model=est, max_depth=5.0)
    assert float(capped.max()) <= 5.0
    with pytest.raises(ValueError, match="connect the image"):
        comfyui.MidasMetricDepth().fit(depth_model=est)


def test_stylize_rgbd_export_is_in_the_depth_models_metres(metric_spec, tmp_path):
    pytest.importorskip("diffusers")
    pytest.importorskip("trimesh")
    from plyfile import PlyData

    from midas_diffusion.pipelines import MidasControlNetPipeline, clear_cache
    from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator

    depth = tiny_depth_estimator(METRIC)
    pipe = MidasControlNetPipeline(**sd15_components(), controlnet=tiny_controlnet(), depth_estimator=depth)
    photo = _image(40, 60)
    result = pipe("a house", image=photo, num_inference_steps=1, rgbd="conditioning", output_type="np")
    expected = depth.estimator(photo).metres
    assert result.output_metres.shape == (1, 1, 40, 60)
    torch.testing.assert_close(result.output_metres, expected)
    torch.testing.assert_close(result.disparity, normalize_disparity(1.0 / expected))  # conditioning as from any model
    again = pipe("a house", image=photo, num_inference_steps=1, rgbd="reestimate", output_type="np")
    torch.testing.assert_close(again.output_metres, depth.estimator(again.images[0]).metres, rtol=1e-4, atol=1e-4)

    pipe.save_pretrained(tmp_path / "base")
    Image.fromarray(photo).save(tmp_path / "photo.png")
    clear_cache()
    try:
        assert main(["stylize", str(tmp_path / "photo.png"), "a house", "-o", str(tmp_path / "r.png"), "--base",
                     str(tmp_path / "base"), "--steps", "1", "--seed", "1", "--export", "ply", "--far", "2"]) == 0
    finally:
        clear_cache()
    vertex = PlyData.read(str(tmp_path / "r.ply"))["vertex"]
    np.testing.assert_allclose(-np.asarray(vertex["z"]), expected[0, 0].numpy().ravel(), rtol=1e-4)
