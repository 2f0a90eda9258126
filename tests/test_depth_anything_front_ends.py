"""Depth Anything V2 through every way in: a saved reduced model (relative ViT-S and metric VKITTI ViT-S)
through ``DepthEstimator``, the CLI, ``pipeline``'s depth component, the app's service and the ComfyUI
nodes; each gives what the estimator gives, and the metric model gives metres."""

import numpy as np
import pytest
import torch
from PIL import Image

import midas_diffusion as md
from midas_diffusion.cli import main
from midas_diffusion.inference.transforms import normalize_disparity
from reference import recipe_init_

MODELS = ["depth_anything_v2_vits", "depth_anything_v2_metric_vkitti_vits"]


def _photo(h=42, w=60, seed=0):
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin(x / 5.0)], -1)
    rgb += 0.05 * np.random.default_rng(seed).standard_normal(rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module", params=MODELS)
def saved(request, tmp_path_factory):
    """(zoo name, saved folder, the estimator it was saved from)."""
    est = md.DepthEstimator.from_pretrained(request.param, reduced=True, dtype=torch.float32, resolution=70)
    recipe_init_(est.model, seed=1)
    folder = est.save_pretrained(tmp_path_factory.mktemp("da") / request.param)
    return request.param, str(folder), est


def _metric(name):
    return md.get_model_spec(name).predicts == "metres"


def test_the_saved_model_is_what_was_saved(saved):
    name, folder, est = saved
    loaded = md.DepthEstimator.from_pretrained(folder, dtype=torch.float32)
    assert loaded.spec.name == name and loaded.spec.predicts == est.spec.predicts
    out, expected = loaded(_photo()), est(_photo())
    assert out.disparity.shape == (1, 1, 42, 60)
    assert float(out.disparity.max() - out.disparity.min()) > 0.5  # a varied map: the checks below can fail
    torch.testing.assert_close(out.disparity, expected.disparity)
    if _metric(name):
        assert out.metres is not None and float(out.metres.min()) > 0
        assert float(out.metres.max()) <= md.get_model_spec(name).max_depth
        torch.testing.assert_close(out.disparity, normalize_disparity(1.0 / out.metres))
    else:
        assert out.metres is None


def test_cli_writes_the_estimators_maps_and_a_metric_models_metres(saved, tmp_path):
    name, folder, est = saved
    Image.fromarray(_photo()).save(tmp_path / "photo.png")
    assert main(["depth", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--model", folder,
                 "--format", "png16,npy", "--dtype", "float32", "--no-progress"]) == 0
    expected = est(_photo())
    np.testing.assert_allclose(np.load(tmp_path / "out" / "photo.npy"), expected.raw[0, 0].numpy(), rtol=1e-4, atol=1e-5)
    metric_files = sorted(p.name for p in (tmp_path / "out").iterdir() if "-metric" in p.name)
    if _metric(name):
        assert metric_files == ["photo-metric.json", "photo-metric.npy", "photo-metric.png"]
        np.testing.assert_allclose(np.load(tmp_path / "out" / "photo-metric.npy"), expected.metres[0, 0].numpy(),
                                   rtol=1e-4, atol=1e-5)
    else:
        assert metric_files == []


def test_pipelines_depth_component_conditions_on_the_same_disparity(saved):
    pytest.importorskip("diffusers")
    from midas_diffusion.pipelines.components import MidasDepthEstimator

    name, folder, est = saved
    component = MidasDepthEstimator.from_estimator(md.DepthEstimator.from_pretrained(folder, dtype=torch.float32))
    assert component.estimator.spec.name == name
    torch.testing.assert_close(component.estimator(_photo()).disparity, est(_photo()).disparity)


def test_the_apps_service_and_comfyuis_nodes_run_it(saved):
    pytest.importorskip("gradio")
    from midas_diffusion.inference.cache import ModelCache
    from midas_diffusion.ui import comfyui
    from midas_diffusion.ui.gradio_app import AppConfig, StylizeService

    name, folder, est = saved
    expected = est(_photo()).disparity[0]
    service = StylizeService(AppConfig(depth_models={"da": folder}, default_depth_model="da"), cache=ModelCache())
    assert service.depth_model("da").spec.name == name

    assert name in comfyui.MidasLoadDepthModel.INPUT_TYPES()["required"]["model"][0]
    (model,) = comfyui.MidasLoadDepthModel().load(name, device="cpu", dtype="float32", model_path=folder)
    frames = torch.from_numpy(_photo()).float()[None] / 255
    _, mask = comfyui.MidasEstimateDepth().estimate(frames, model)
    torch.testing.assert_close(mask, expected, rtol=1e-3, atol=1e-3)
    if _metric(name):
        metres, _ = comfyui.MidasMetricDepth().fit(image=frames, depth_model=model)
        torch.testing.assert_close(metres, est(_photo()).metres[0], rtol=1e-3, atol=1e-3)
