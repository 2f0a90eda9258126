"""The OpenVINO backend of DepthEstimator (inference/openvino_backend.py): every zoo model exports and
matches the torch path; the caches; what backend="auto" picks."""

import copy
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import midas_diffusion as md
from midas_diffusion.inference import openvino_backend as backend
from midas_diffusion.inference import openvino_export
from midas_diffusion.inference.precision import Bf16Error, bf16_error_is_visible

from reference import fixture_input, recipe_init_

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
ALL_ENV = "MIDAS_DIFFUSION_TEST_ALL_OPENVINO"


def _family(name):
    return type(md.get_model_spec(name).arch.encoder).__name__


def _representatives():
    """The smallest model of each backbone family (the default run; the export takes seconds each)."""
    smallest = {}
    for name in md.list_models():
        spec = md.get_model_spec(name)
        best = smallest.get(_family(name))
        if best is None or spec.params_m < md.get_model_spec(best).params_m:
            smallest[_family(name)] = name
    return set(smallest.values())


def _zoo_params():
    chosen = _representatives()
    skip = pytest.mark.skipif(os.environ.get(ALL_ENV) != "1",
                              reason=f"one model per backbone family by default; {ALL_ENV}=1 runs every model")
    return [pytest.param(name, marks=() if name in chosen else skip) for name in md.list_models()]


def _tiny(name):
    torch.manual_seed(0)
    est = md.DepthEstimator.from_pretrained(name, reduced=True, dtype=torch.float32, backend="torch")
    recipe_init_(est.model)
    return est


@needs_openvino
@pytest.mark.parametrize("name", _zoo_params())
def test_every_zoo_model_runs_through_openvino_as_in_torch(name):
    est = _tiny(name)
    h, w = est.preprocess.net_size
    x = fixture_input(0, h, w)
    ref = est.predict_network(x)
    got = est.set_backend("openvino").predict_network(x)
    assert got.shape == ref.shape and got.dtype == torch.float32
    with torch.no_grad():  # how far float32 itself is from the exact function here
        exact = copy.deepcopy(est.model).double()(x.double())
    value_range = (exact.max() - exact.min()).item()
    float32_error = (ref.double() - exact).abs().max().item() / value_range
    # 1e-5 of the range; where float32 rounding alone moves torch further (dpt_hybrid_384's reduced
    # model is ill-conditioned: 4e-5), twice torch's own float32 error
    tolerance = max(1e-5, 2 * float32_error)
    assert (got.double() - exact).abs().max().item() / value_range <= tolerance


def _normalized(raw):
    return (raw - raw.min()) / (raw.max() - raw.min())


@needs_openvino
def test_bf16_through_openvino_is_within_the_visible_limits():
    est = _tiny("midas_v21_small_256")
    x = fixture_input(0, 256, 256)
    ref = _normalized(est.predict_network(x))
    got = _normalized(est.to(dtype=torch.bfloat16).set_backend("openvino").predict_network(x))
    diff = (got - ref).abs().flatten()
    error = Bf16Error(max=diff.max().item(), p99=diff.quantile(0.99).item(), mean=diff.mean().item())
    assert not bf16_error_is_visible(error), error


@needs_openvino
def test_the_estimator_path_is_unchanged_and_the_ir_is_cached_on_disk(monkeypatch):
    est = _tiny("dpt_swin2_tiny_256")
    image = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    ref = est(image)
    ov_est = copy.deepcopy(est).set_backend("openvino")
    out = ov_est(image)
    assert (out.raw - ref.raw).abs().max() <= 1e-5 * (ref.raw.max() - ref.raw.min())
    assert torch.equal(out.raw, ov_est(image).raw)  # the second call: the compiled model in memory
    folders = sorted(p.name for p in backend.cache_folder().iterdir())
    assert len(folders) == 1 and folders[0].startswith("dpt_swin2_tiny_256-256x256-f32-")
    assert any((backend.cache_folder() / folders[0] / "compiled").iterdir())  # OpenVINO's blobs, inside it

    exports = []
    convert = backend.convert_network
    monkeypatch.setattr(backend, "convert_network", lambda *a, **k: exports.append(1) or convert(*a, **k))
    again = copy.deepcopy(est).set_backend("openvino")  # a new network object: as in a new session
    assert torch.equal(again(image).raw, out.raw) and exports == []  # the IR came from the disk
    with torch.no_grad():
        next(again.model.parameters()).mul_(1.5)  # changed weights: exported again
    again(image)
    assert exports == [1]
    assert len(list(backend.cache_folder().iterdir())) == 2


@needs_openvino
def test_auto_runs_torch_until_the_background_export_is_ready(monkeypatch):
    monkeypatch.delenv(backend.OPENVINO_ENV, raising=False)  # the suite turns auto's OpenVINO off (conftest)
    monkeypatch.setitem(backend.OPENVINO_SPEEDUP, "midas_v21_small_256", {"f32": 2.0})
    est = _tiny("midas_v21_small_256").set_backend("auto")
    image = np.random.default_rng(1).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    ref = est(image)  # reduced (test) models stay on torch
    assert backend.COMPILED.get(est.model, (backend.weights_version(est.model), (256, 256), "f32")) is None
    est.reduced = False  # as a full model
    torch_calls = []
    est.model.register_forward_pre_hook(lambda *a: torch_calls.append(1))
    est(image)
    est(image)  # the second call at this size starts the export; both ran torch
    assert len(torch_calls) == 2
    backend.COMPILED.jobs.join()
    calls = len(torch_calls)  # (the export traced a copy of the network, hooks included)
    out = est(image)
    assert len(torch_calls) == calls  # OpenVINO ran this one
    assert (out.raw - ref.raw).abs().max() <= 1e-5 * (ref.raw.max() - ref.raw.min())


def test_auto_is_torch_without_openvino_off_the_cpu_or_for_unmeasured_models(monkeypatch):
    monkeypatch.delenv(backend.OPENVINO_ENV, raising=False)  # the suite turns auto's OpenVINO off (conftest)
    monkeypatch.setitem(backend.OPENVINO_SPEEDUP, "dpt_levit_224", {"f32": 2.0, "bf16": 0.9})
    monkeypatch.setattr(backend, "openvino_installed", lambda: True)
    assert backend.auto_picks_openvino("dpt_levit_224", torch.float32)
    assert not backend.auto_picks_openvino("dpt_levit_224", torch.bfloat16)  # measured slower
    assert not backend.auto_picks_openvino("dpt_levit_224", torch.float32, "cuda")
    assert not backend.auto_picks_openvino("not_measured", torch.float32)
    monkeypatch.setenv(backend.OPENVINO_ENV, "0")
    assert not backend.auto_picks_openvino("dpt_levit_224", torch.float32)
    monkeypatch.delenv(backend.OPENVINO_ENV)
    monkeypatch.setattr(backend, "openvino_installed", lambda: False)
    assert not backend.auto_picks_openvino("dpt_levit_224", torch.float32)


def test_backend_names_are_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True, backend="tensorrt")
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True, backend="torch")
    assert est.backend == "torch" and est.at_resolution(320).backend == "torch"
    with pytest.raises(ValueError, match="backend must be one of"):
        est.set_backend("ov")


@needs_openvino
def test_a_session_that_ends_during_the_background_export_exits_cleanly(tmp_path):
    """A short job ends while ``auto``'s export runs: the process exits with its own status (no
    'terminate called' abort from OpenVINO's threads), because the export runs in its own process."""
    import subprocess
    import sys

    code = (
        "import numpy as np, sys\n"
        "import midas_diffusion as md\n"
        "from midas_diffusion.inference import openvino_backend as backend\n"
        "backend.OPENVINO_SPEEDUP['midas_v21_small_256'] = {'f32': 2.0}\n"
        "est = md.DepthEstimator.from_pretrained('midas_v21_small_256', reduced=True).set_backend('auto')\n"
        "est.reduced = False  # as a full model\n"
        "image = np.zeros((96, 128, 3), np.uint8)\n"
        "est(image); est(image)  # the second call at this size starts the export\n"
        "assert backend.COMPILED.pending\n"
        "sys.exit(3)\n"
    )
    env = {**os.environ, backend.OPENVINO_CACHE_ENV: str(tmp_path / "ov"), "OMP_NUM_THREADS": "1"}
    env.pop(backend.OPENVINO_ENV, None)  # the suite turns auto's OpenVINO off (conftest)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "terminate called" not in done.stderr


@needs_openvino
def test_a_model_compiles_with_the_properties_listed_for_it(monkeypatch, tmp_path):
    """``openvino_compile_config`` (DPT-Hybrid in f32: snippets off, or OpenVINO 2026.4 segfaults in
    ``compile_model``) reaches the compile of the backend and of ``openvino_estimator``, for that model
    and precision only."""
    listed = {"midas_v21_small_256": {"f32": {"SNIPPETS_MODE": "DISABLE"}}}
    measured = {**backend.cpu_measurements(), "openvino_compile_config": listed}
    monkeypatch.setattr(backend, "cpu_measurements", lambda: measured)
    assert backend.compile_config("midas_v21_small_256", "f32") == {"INFERENCE_PRECISION_HINT": "f32", "SNIPPETS_MODE": "DISABLE"}
    assert backend.compile_config("midas_v21_small_256", "bf16") == {"INFERENCE_PRECISION_HINT": "bf16"}
    assert backend.compile_config("dpt_levit_224", "f32") == {"INFERENCE_PRECISION_HINT": "f32"}
    monkeypatch.setenv(backend.OPENVINO_CACHE_ENV, str(tmp_path / "ov"))
    core, seen = backend.openvino_core(), []

    class Spy:  # what each compile is given, then OpenVINO's own compile
        def compile_model(self, model, device, config):
            seen.append(dict(config))
            return core.compile_model(model, device, config)

    monkeypatch.setattr(backend, "openvino_core", Spy)
    monkeypatch.setattr(openvino_export, "openvino_core", Spy)
    est = _tiny("midas_v21_small_256")
    x = fixture_input(0, 256, 256)
    reference = est.predict_network(x)
    got = est.set_backend("openvino").predict_network(x)
    assert torch.allclose(got, reference, rtol=0, atol=1e-5 * float(reference.max() - reference.min()))
    assert seen.pop()["SNIPPETS_MODE"] == "DISABLE"
    openvino_export.openvino_estimator(est, tmp_path / "exported")
    assert seen.pop()["SNIPPETS_MODE"] == "DISABLE"
    est.model.to(torch.bfloat16)  # bf16: not listed
    est.set_backend("openvino").predict_network(x.to(torch.bfloat16))
    config = seen.pop()
    assert config.keys() == {"INFERENCE_PRECISION_HINT", "CACHE_DIR"} and config["INFERENCE_PRECISION_HINT"] == "bf16"
    assert Path(config["CACHE_DIR"]).parent.parent == tmp_path / "ov"  # the blobs live in their IR's folder


@needs_openvino
def test_older_irs_of_a_model_are_removed_when_a_new_one_is_written(monkeypatch, tmp_path):
    """Of one model, size and precision the ``KEEP_VERSIONS`` newest IR folders stay (with their blobs);
    other sizes, precisions and models are not touched."""
    monkeypatch.setenv(backend.OPENVINO_CACHE_ENV, str(tmp_path / "ov"))
    est = _tiny("midas_v21_small_256").set_backend("openvino")
    x = fixture_input(0, 256, 256)
    others = [tmp_path / "ov" / name for name in ("midas_v21_small_256-320x320-f32-0123456789abcdef01234567-ov2026.4.1",
                                                  "midas_v21_small_256-256x256-bf16-0123456789abcdef01234567-ov2026.4.1",
                                                  "midas_v21_384-256x256-f32-0123456789abcdef01234567-ov2026.4.1")]
    for folder in others:
        folder.mkdir(parents=True)
    written = []
    for scale in (1.0, 1.5, 2.0):  # three versions of the weights, one after the other
        with torch.no_grad():
            next(est.model.parameters()).mul_(scale)
        est.predict_network(x)
        written.append(backend.ir_folder("midas_v21_small_256", (256, 256), "f32", backend.weights_digest(est.model)))
        os.utime(written[-1], (len(written) * 1000.0,) * 2)  # written in this order, whatever the clock's resolution
    kept = {p for p in (tmp_path / "ov").iterdir()}
    assert kept == set(written[-backend.KEEP_VERSIONS:]) | set(others)
