"""One ParamSpec list for every front end; ui imports no host; install commands."""

import subprocess
import sys

import pytest

from midas_diffusion import list_models
from midas_diffusion.ui import cli, params
from midas_diffusion.ui.params import PARAMS, depth_settings, get_spec, to_a1111_parameter, to_comfy_input, to_gradio_kwargs


def test_the_three_renderers_agree_on_every_parameter():
    assert {p.name for p in params.DEPTH_PARAMS} >= {"model", "resolution", "percentile_low", "percentile_high",
                                                     "gamma", "invert", "background_weight"}
    assert {p.name for p in params.STYLIZE_PARAMS} >= {"method", "base", "prompt", "negative_prompt", "steps",
                                                       "guidance", "strength", "seed"}
    for spec in PARAMS:
        comfy_type, options = to_comfy_input(spec)
        gradio = to_gradio_kwargs(spec)
        assert options["default"] == gradio["value"] == spec.default and gradio["label"] == spec.label
        if spec.kind in ("int", "float"):
            a1111 = to_a1111_parameter(spec)
            assert comfy_type == spec.kind.upper() and gradio["component"] == "Slider"
            assert (options["min"], options["max"], options["step"]) == (gradio["minimum"], gradio["maximum"],
                                                                        gradio["step"])
            assert (a1111["minimum"], a1111["maximum"], a1111["step"], a1111["value"]) == (
                spec.min, spec.max, spec.step, spec.default)
            assert spec.min <= spec.default <= spec.max
        elif spec.kind == "bool":
            assert comfy_type == "BOOLEAN" and gradio["component"] == "Checkbox"
        elif spec.kind == "choice":
            assert comfy_type == list(spec.choices) == gradio["choices"] and gradio["component"] == "Dropdown"
            with pytest.raises(ValueError, match=spec.name):
                to_a1111_parameter(spec)
        else:
            assert comfy_type == "STRING" and gradio["component"] == "Textbox"
            assert options["multiline"] == spec.multiline
    assert get_spec("model").choices == tuple(list_models())
    assert to_comfy_input(get_spec("seed"))[1]["control_after_generate"] is True


def test_methods_match_the_pipelines():
    pipelines = pytest.importorskip("midas_diffusion.pipelines")
    assert set(params.METHOD_CHOICES) == set(pipelines.METHODS)


def test_depth_settings_and_checks():
    assert depth_settings() == {"processing_resolution": None, "percentile": None, "gamma": 1.0, "invert": False}
    assert depth_settings(384, 2, 98, 0.5, True) == {"processing_resolution": 384, "percentile": (2.0, 98.0),
                                                     "gamma": 0.5, "invert": True}
    with pytest.raises(ValueError, match="gamma must be in"):
        depth_settings(gamma=0)
    with pytest.raises(ValueError, match="resolution must be a number"):
        depth_settings(resolution="big")
    with pytest.raises(ValueError, match="method must be one of"):
        get_spec("method").check("img2img")
    with pytest.raises(KeyError):
        get_spec("nope")
    with pytest.raises(ValueError, match="kind"):
        params.ParamSpec("x", "X", "slider", 0)


def test_importing_ui_loads_no_host_and_no_gradio():
    code = ("import sys, midas_diffusion.ui, midas_diffusion.ui.params, midas_diffusion.ui.runtime, "
            "midas_diffusion.ui.comfyui, midas_diffusion.ui.a1111, midas_diffusion.ui.cli; "
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    for forbidden in ("comfy", "comfy_api", "folder_paths", "modules", "scripts", "gradio", "diffusers"):
        assert forbidden not in loaded, forbidden
    assert "midas_diffusion.ui.comfyui" in loaded and "midas_diffusion.ui.a1111" in loaded


def test_install_commands_write_working_shims(tmp_path, capsys):
    from midas_diffusion.cli import main

    comfy = tmp_path / "ComfyUI"
    (comfy / "custom_nodes").mkdir(parents=True)
    assert main(["install-comfyui", str(comfy)]) == 0
    shim = comfy / "custom_nodes" / "midas_diffusion_nodes" / "__init__.py"
    assert "register_pack(__file__)" in shim.read_text() and "NODE_CLASS_MAPPINGS" in shim.read_text()
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import midas_diffusion_nodes as m; "
            "print(sorted(m.NODE_CLASS_MAPPINGS)); print(sorted(m.NODE_DISPLAY_NAME_MAPPINGS))")
    out = subprocess.run([sys.executable, "-c", code, str(comfy / "custom_nodes")], capture_output=True, text=True,
                         check=True)
    assert "MidasEstimateDepth" in out.stdout and "MidasLoadDepthModel" in out.stdout
    assert main(["install-comfyui", str(comfy)]) == 0  # same content again: fine
    shim.write_text("# edited")
    assert main(["install-comfyui", str(comfy)]) == 1 and "--overwrite" in capsys.readouterr().err
    assert main(["install-comfyui", str(comfy), "--overwrite"]) == 0
    # a shim written by a release with the top-level ``ui`` package is ours: an install upgrades it
    shim.write_text(shim.read_text().replace("from midas_diffusion.ui.", "from ui."))
    assert main(["install-comfyui", str(comfy)]) == 0 and "midas_diffusion.ui.comfyui" in shim.read_text()

    webui = tmp_path / "webui"
    (webui / "extensions").mkdir(parents=True)
    assert main(["install-a1111", str(webui)]) == 0
    script = webui / "extensions" / "midas-diffusion" / "scripts" / "midas_diffusion_a1111.py"
    assert "register(__file__)" in script.read_text()
    assert main(["install-a1111", str(tmp_path / "nowhere")]) == 1
    assert "not an AUTOMATIC1111 webui folder" in capsys.readouterr().err
    assert cli.install_comfyui.__doc__ and cli.install_a1111.__doc__


def test_auto_device_is_the_hosts(monkeypatch):
    """``auto``: ComfyUI's device inside ComfyUI, A1111's ControlNet device inside A1111, else the CPU;
    a named device is checked (no host import)."""
    import types

    import torch

    from midas_diffusion.ui import runtime

    for name in ("comfy", "comfy.model_management", "modules", "modules.devices"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: the import raises ImportError
    assert runtime.host_device("auto") == torch.device("cpu")
    devices = types.ModuleType("modules.devices")
    devices.get_device_for = lambda task: "meta" if task == "controlnet" else "cpu"
    monkeypatch.setitem(sys.modules, "modules", types.SimpleNamespace(devices=devices))
    monkeypatch.setitem(sys.modules, "modules.devices", devices)
    assert runtime.host_device("auto") == torch.device("meta")
    model_management = types.ModuleType("comfy.model_management")
    model_management.get_torch_device = lambda: torch.device("cpu")
    monkeypatch.setitem(sys.modules, "comfy", types.SimpleNamespace(model_management=model_management))
    monkeypatch.setitem(sys.modules, "comfy.model_management", model_management)
    assert runtime.host_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="not available here"):
        runtime.host_device("cuda")
