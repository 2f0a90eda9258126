"""AUTOMATIC1111 extension against stubs of the host modules that follow the real signatures
(sd-webui-controlnet ``scripts/supported_preprocessor.py``, A1111 ``modules/script_callbacks.py``).

The preprocessor is called exactly as sd-webui-controlnet calls it (``scripts/controlnet.py``,
``scripts/api.py``, ``controlnet_ui_group.py``): ``cached_call(image, resolution=, slider_1=,
slider_2=, **extras)``; no call site passes ``slider_3``. The same module runs against the real
registry in ``../shared/hosts/a1111/`` (see its README)."""

import importlib.machinery
import sys
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Dict, List, NamedTuple, Optional
from unittest import mock

import numpy as np
import pytest
import torch

from midas_diffusion import DepthEstimator, get_model_spec, list_models
from midas_diffusion.inference.cache import ModelCache
from reference import recipe_init_
from midas_diffusion.ui import a1111
from midas_diffusion.ui.params import get_spec


def _supported_preprocessor_module():
    """The public surface of sd-webui-controlnet's ``scripts/supported_preprocessor.py``."""

    @dataclass
    class PreprocessorParameter:
        label: str = "EMPTY_LABEL"
        minimum: float = 0.0
        maximum: float = 1.0
        step: float = 0.01
        value: float = 0.5
        visible: bool = True

        @property
        def gradio_update_kwargs(self) -> dict:
            return dict(minimum=self.minimum, maximum=self.maximum, step=self.step, label=self.label,
                        value=self.value, visible=self.visible)

        @property
        def api_json(self) -> dict:
            return dict(name=self.label, value=self.value, min=self.minimum, max=self.maximum, step=self.step)

    @dataclass
    class Preprocessor(ABC):
        name: str
        _label: str = None
        tags: List[str] = field(default_factory=list)
        slider_resolution = PreprocessorParameter(label="Resolution", minimum=64, maximum=2048, value=512, step=8,
                                                  visible=True)
        slider_1 = PreprocessorParameter(visible=False)
        slider_2 = PreprocessorParameter(visible=False)
        slider_3 = PreprocessorParameter(visible=False)
        returns_image: bool = True
        show_control_mode = True
        do_not_need_model = False
        sorting_priority = 0
        accepts_mask: bool = False
        requires_mask: bool = False
        model: Optional[torch.nn.Module] = None
        device = "cpu"  # devices.get_device_for("controlnet")

        all_processors: ClassVar[Dict[str, "Preprocessor"]] = {}
        all_processors_by_name: ClassVar[Dict[str, "Preprocessor"]] = {}

        @property
        def label(self) -> str:
            return self._label if self._label is not None else self.name

        @classmethod
        def add_supported_preprocessor(cls, p):
            assert p.label not in cls.all_processors, f"{p.label} already registered!"
            cls.all_processors[p.label] = p
            assert p.name not in cls.all_processors_by_name, f"{p.name} already registered!"
            cls.all_processors_by_name[p.name] = p

        @classmethod
        def get_preprocessor(cls, name: str):
            return cls.all_processors.get(name, cls.all_processors_by_name.get(name, None))

        @classmethod
        def unload_unused(cls, active_processors):
            for p in cls.all_processors.values():
                if p not in active_processors:
                    p.unload()

        class Result(NamedTuple):
            value: object
            display_images: list

        def cached_call(self, input_image, *args, **kwargs):
            result = self(input_image, *args, **kwargs)
            return Preprocessor.Result(value=result, display_images=[result if self.returns_image else input_image])

        def __hash__(self):
            return hash(self.name)

        def __eq__(self, other):
            return self.__hash__() == other.__hash__()

        @abstractmethod
        def __call__(self, input_image, resolution, slider_1=None, slider_2=None, slider_3=None, input_mask=None,
                     **kwargs):
            pass

        def unload(self):
            if self.model is not None:
                if hasattr(self.model, "to"):
                    self.model.to("cpu")
                    return True
            return False

    module = types.ModuleType("scripts.supported_preprocessor")
    module.Preprocessor, module.PreprocessorParameter = Preprocessor, PreprocessorParameter
    return module


@pytest.fixture()
def host(monkeypatch):
    """Install ``modules.*`` and ``scripts.supported_preprocessor`` stubs for one test."""
    callbacks = {"ui_tabs": [], "before_ui": []}
    script_callbacks = types.ModuleType("modules.script_callbacks")
    script_callbacks.on_ui_tabs = lambda callback, *, name=None: callbacks["ui_tabs"].append(callback)
    script_callbacks.on_before_ui = lambda callback, *, name=None: callbacks["before_ui"].append(callback)
    devices = types.ModuleType("modules.devices")
    devices.get_device_for = lambda task: "cpu"
    devices.device = "cpu"
    modules = types.ModuleType("modules")
    modules.__path__ = []
    modules.script_callbacks, modules.devices = script_callbacks, devices
    scripts = types.ModuleType("scripts")
    scripts.__path__ = []
    supported = _supported_preprocessor_module()
    scripts.supported_preprocessor = supported
    for name, module in {"modules": modules, "modules.script_callbacks": script_callbacks,
                         "modules.devices": devices, "scripts": scripts,
                         "scripts.supported_preprocessor": supported}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(callbacks=callbacks, Preprocessor=supported.Preprocessor)


def _tiny(name, resolution=None):
    est = DepthEstimator.from_pretrained(name, reduced=True, resolution=resolution)
    recipe_init_(est.model)
    return est


def _host_call(p, image, resolution, slider_1, slider_2):
    """``scripts/controlnet.py`` / ``scripts/api.py``: keywords, three sliders' worth, and extras."""
    return p.cached_call(image, resolution=resolution, slider_1=slider_1, slider_2=slider_2,
                         json_pose_callback=None, low_vram=False, model="None").value


def _module_sliders(p):
    """``external_code.get_modules_detail``: what ``/controlnet/module_list`` advertises."""
    return [s.api_json for s in (p.slider_resolution, p.slider_1, p.slider_2, p.slider_3) if s.visible]


def _cached_tiny(tiny, cache, sources):
    """A model source that caches like ``ui.runtime.load_estimator`` and records real loads."""
    return lambda name, device: cache.get("depth", (name, str(device)),
                                          lambda: sources.append((name, str(device))) or tiny)


def _photo(h=48, w=80):
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(ramp + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def test_register_adds_tab_and_defers_preprocessors_until_before_ui(host):
    a1111.register()
    assert host.callbacks["ui_tabs"] == [a1111.on_ui_tabs]
    assert not host.Preprocessor.all_processors  # nothing before every extension is loaded
    (before_ui,) = host.callbacks["before_ui"]
    before_ui()
    names = {a1111.preprocessor_name(m) for m in list_models()}
    assert set(host.Preprocessor.all_processors_by_name) == names and len(names) == len(list_models())
    p = host.Preprocessor.get_preprocessor("depth_midas31_dpt_beit_large_512")
    assert p.model is None and p.tags == ["Depth"]  # no model loaded at registration
    for slider, spec in zip((p.slider_1, p.slider_2), ("percentile_low", "percentile_high")):
        spec = get_spec(spec)
        assert (slider.label, slider.minimum, slider.maximum, slider.step, slider.value, slider.visible) == (
            spec.label, spec.min, spec.max, spec.step, spec.default, True)
    res = get_spec("resolution")
    assert (p.slider_resolution.minimum, p.slider_resolution.maximum, p.slider_resolution.value) == (res.min, res.max, 0)
    assert a1111.register_preprocessors() == []  # idempotent: no duplicate assertion from the host


def test_only_the_hosts_sliders_are_advertised(host):
    """sd-webui-controlnet shows processor_res, threshold_a, threshold_b: no Gamma slider."""
    a1111.register_preprocessors(["midas_v21_small_256", "dpt_swin2_tiny_256"])
    flexible = host.Preprocessor.get_preprocessor("depth_midas31_midas_v21_small_256")
    assert [s["name"] for s in _module_sliders(flexible)] == ["Processing resolution", "Clip low %", "Clip high %"]
    fixed = host.Preprocessor.get_preprocessor("depth_midas31_dpt_swin2_tiny_256")
    assert [s["name"] for s in _module_sliders(fixed)] == ["Clip low %", "Clip high %"]
    assert fixed.slider_3.visible is False and flexible.slider_3.visible is False


def test_hidden_resolution_slider_of_fixed_size_models_accepts_api_values(host):
    """ControlNetUnit resets processor_res outside [minimum, maximum] with a log line: 512 (the
    API's usual value) must be inside; the model's own size is the default."""
    a1111.register_preprocessors(["dpt_swin2_tiny_256", "dpt_levit_224"])
    for model in ("dpt_swin2_tiny_256", "dpt_levit_224"):
        slider = host.Preprocessor.get_preprocessor(a1111.preprocessor_name(model)).slider_resolution
        assert slider.visible is False
        assert slider.minimum <= 512 <= slider.maximum and slider.minimum <= 0
        assert slider.value == get_model_spec(model).preprocess.net_size[0]


@pytest.mark.parametrize("name, resolution", [("midas_v21_small_256", 128), ("dpt_levit_224", None)])
def test_preprocessor_gives_the_same_disparity_as_midas_diffusion(host, name, resolution):
    tiny, cache, sources = _tiny(name), ModelCache(), []
    added = a1111.register_preprocessors([name], model_source=_cached_tiny(tiny, cache, sources))
    assert added == [f"depth_midas31_{name}"]
    p = host.Preprocessor.get_preprocessor(added[0])
    photo = _photo()
    value = _host_call(p, photo, resolution or 512, 2.0, 98.0)
    reference = _tiny(name, resolution)(photo, percentile=(2.0, 98.0)).disparity[0, 0].numpy()
    disparity = p.disparity(photo, resolution or 512, 2.0, 98.0)
    assert disparity.dtype == np.float32 and disparity.shape == photo.shape[:2]
    np.testing.assert_array_equal(disparity, reference)
    assert value.dtype == np.uint8 and value.shape == (48, 80, 3)
    np.testing.assert_array_equal(value[..., 0], np.round(np.clip(reference, 0, 1) * 255).astype(np.uint8))
    assert sources == [(name, "cpu")]  # loaded once, lazily, on the host's device
    _host_call(p, _photo(40, 64), resolution or 512, 2.0, 98.0)
    assert len(sources) == 1 and cache.counts()["depth"] == 1
    assert p.unload() is False  # on the CPU already: nothing to give back; the cache keeps it


def test_gamma_is_the_python_apis_not_a_host_slider(host):
    tiny = _tiny("midas_v21_small_256")
    (name,) = a1111.register_preprocessors(["midas_v21_small_256"], model_source=lambda n, d: tiny)
    p = host.Preprocessor.get_preprocessor(name)
    photo = _photo()
    np.testing.assert_array_equal(p.disparity(photo, 0, gamma=0.5), tiny(photo, gamma=0.5).disparity[0, 0].numpy())
    # a script calling the preprocessor directly may still pass slider_3 (the host never does)
    np.testing.assert_array_equal(p(photo, 0, slider_3=0.5)[..., 0], a1111.control_image(
        tiny(photo, gamma=0.5).disparity[0, 0].numpy())[..., 0])


def test_unset_sliders_mean_defaults(host):
    tiny = _tiny("midas_v21_small_256")
    (name,) = a1111.register_preprocessors(["midas_v21_small_256"], model_source=lambda n, d: tiny)
    p = host.Preprocessor.get_preprocessor(name)
    photo = _photo()
    # the HTTP API sends -1 for values it was not given
    np.testing.assert_array_equal(_host_call(p, photo, -1, -1, -1), a1111.control_image(tiny(photo).disparity[0, 0].numpy()))
    with pytest.raises(ValueError, match="percentile_high"):
        _host_call(p, photo, 0, 10.0, 20.0)


def test_resolution_above_the_slider_is_clamped_with_a_log_line(host, capsys, monkeypatch):
    """Pixel perfect sends processor_res computed from the image, past ControlNetUnit's bound check."""
    tiny = _tiny("midas_v21_small_256")
    (name,) = a1111.register_preprocessors(["midas_v21_small_256"], model_source=lambda n, d: tiny)
    p = host.Preprocessor.get_preprocessor(name)
    top = int(get_spec("resolution").max)
    asked = []
    real_at_resolution = a1111.runtime.at_resolution
    monkeypatch.setattr(a1111.runtime, "at_resolution", lambda est, res: asked.append(res) or real_at_resolution(est, None))
    capsys.readouterr()
    _host_call(p, _photo(24, 40), top + 1000, -1, -1)
    _host_call(p, _photo(24, 40), top, -1, -1)
    assert asked == [top, top]  # the network runs at the slider's maximum, not at top + 1000
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"[midas-diffusion] {name}: resolution {top + 1000} is above the slider's maximum; using {top}"]
    assert a1111.clamp_resolution(-1) == 0 and a1111.clamp_resolution(None) == 0 and a1111.clamp_resolution(384) == 384


class _OnAccelerator:
    """A model on a device this machine lacks: only ``device`` and ``to`` are used by unload."""

    def __init__(self):
        self.device = "cuda:0"

    def to(self, device):
        self.device = str(device)
        return self


def test_unload_moves_the_model_off_the_accelerator_and_out_of_the_cache(host):
    cache, sources, models = ModelCache(), [], []

    def source(name, device):
        return cache.get("depth", (name, str(device)), lambda: sources.append(device) or models.append(_OnAccelerator())
                         or models[-1])

    (name,) = a1111.register_preprocessors(["midas_v21_small_256"], model_source=source, cache=cache)
    p = host.Preprocessor.get_preprocessor(name)
    p.device = "cuda:0"
    first = p.load_model()
    assert p.load_model() is first and cache.counts()["depth"] == 1  # a hit, no second load
    host.Preprocessor.unload_unused(active_processors=set())  # what scripts/controlnet.py does
    assert first.device == "cpu" and cache.counts()["depth"] == 0  # the cache no longer lists it on cuda
    assert p.model is first  # the host's handle, as its own unload() leaves it
    second = p.load_model()
    assert second is not first and second.device == "cuda:0" and len(sources) == 2
    assert cache.values("depth") == [second]


def test_without_controlnet_nothing_is_registered(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "scripts.supported_preprocessor", None)
    assert a1111.register_preprocessors() == []
    out = capsys.readouterr().out.strip()
    assert out == "[midas-diffusion] sd-webui-controlnet not found: no depth_midas31_* preprocessors; " \
                  "the 'MiDaS depth' tab works"


def test_older_controlnet_says_which_version_is_needed(monkeypatch, capsys):
    """Before 1.1.444 there is no scripts/supported_preprocessor.py; controlnet_version.py tells the version."""
    monkeypatch.setitem(sys.modules, "scripts.supported_preprocessor", None)
    version = types.ModuleType("scripts.controlnet_version")
    version.version_flag = "v1.1.440"
    monkeypatch.setitem(sys.modules, "scripts.controlnet_version", version)
    assert a1111.register_preprocessors() == []
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert "sd-webui-controlnet v1.1.440 has no Preprocessor registry" in line and "1.1.444 or newer" in line
    assert "not found" not in line


def _forge(monkeypatch):
    """Forge's ``modules_forge`` package (the marker ``_is_forge`` looks for)."""
    monkeypatch.setitem(sys.modules, "scripts.supported_preprocessor", None)
    forge = types.ModuleType("modules_forge")
    forge.__spec__ = importlib.machinery.ModuleSpec("modules_forge", None, is_package=True)
    forge.__path__ = []
    monkeypatch.setitem(sys.modules, "modules_forge", forge)
    return forge


def test_forge_without_a_registry_says_what_is_missing(monkeypatch, capsys):
    _forge(monkeypatch)
    monkeypatch.setitem(sys.modules, "modules_forge.shared", None)
    assert a1111.register_preprocessors() == []
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert "Forge has no preprocessor registry" in line and "modules_forge.shared.add_supported_preprocessor" in line


def _forge_registry(monkeypatch):
    """The public surface of Forge's ``modules_forge/supported_preprocessor.py`` and the registry
    in ``modules_forge/shared.py`` (lllyasviel/stable-diffusion-webui-forge, 2025-06)."""
    forge = _forge(monkeypatch)

    class PreprocessorParameter:
        def __init__(self, minimum=0.0, maximum=1.0, step=0.01, label="Parameter 1", value=0.5, visible=False, **kwargs):
            self.gradio_update_kwargs = dict(minimum=minimum, maximum=maximum, step=step, label=label, value=value,
                                             visible=visible, **kwargs)

    class Preprocessor:
        def __init__(self):
            self.name = "PreprocessorBase"
            self.tags = []
            self.model_filename_filters = []
            self.slider_resolution = PreprocessorParameter(label="Resolution", minimum=128, maximum=2048, value=512,
                                                           step=8, visible=True)
            self.slider_1 = self.slider_2 = self.slider_3 = PreprocessorParameter()
            self.model_patcher = None
            self.sorting_priority = 0

        def __call__(self, input_image, resolution, slider_1=None, slider_2=None, slider_3=None, input_mask=None,
                     **kwargs):
            return input_image

    shared = types.ModuleType("modules_forge.shared")
    shared.supported_preprocessors = {}
    shared.add_supported_preprocessor = lambda p: shared.supported_preprocessors.__setitem__(p.name, p)
    bases = types.ModuleType("modules_forge.supported_preprocessor")
    bases.Preprocessor, bases.PreprocessorParameter = Preprocessor, PreprocessorParameter
    forge.shared, forge.supported_preprocessor = shared, bases
    monkeypatch.setitem(sys.modules, "modules_forge.shared", shared)
    monkeypatch.setitem(sys.modules, "modules_forge.supported_preprocessor", bases)
    return shared


def test_forge_gets_the_preprocessors_in_its_own_registry(monkeypatch):
    shared = _forge_registry(monkeypatch)
    tiny, cache, sources = _tiny("midas_v21_small_256"), ModelCache(), []
    names = a1111.register_preprocessors(["midas_v21_small_256", "dpt_swin2_tiny_256"],
                                         model_source=_cached_tiny(tiny, cache, sources), cache=cache)
    assert names == ["depth_midas31_midas_v21_small_256", "depth_midas31_dpt_swin2_tiny_256"]
    assert a1111.register_preprocessors(["midas_v21_small_256"]) == []  # registered already
    p = shared.supported_preprocessors["depth_midas31_midas_v21_small_256"]
    assert p.name == "depth_midas31_midas_v21_small_256" and p.tags == ["Depth"] and "depth" in p.model_filename_filters
    assert [p.slider_1.gradio_update_kwargs["label"], p.slider_2.gradio_update_kwargs["label"]] == ["Clip low %",
                                                                                                   "Clip high %"]
    assert not p.slider_3.gradio_update_kwargs["visible"]
    fixed = shared.supported_preprocessors["depth_midas31_dpt_swin2_tiny_256"]
    assert not fixed.slider_resolution.gradio_update_kwargs["visible"]
    image = _photo()
    # sd_forge_controlnet/scripts/controlnet.py: keywords, no slider_3
    out = p(input_image=image, input_mask=None, resolution=0, slider_1=2.0, slider_2=98.0)
    expected = a1111.control_image(tiny(image, percentile=(2.0, 98.0)).disparity[0, 0].numpy())
    assert out.dtype == np.uint8 and out.shape == image.shape and np.array_equal(out, expected)
    # unload() after each call: on the CPU (Forge's device here) there is nothing to free, the model stays cached
    assert str(p.device) == "cpu" and cache.counts()["depth"] == 1
    assert np.array_equal(p(input_image=image, resolution=0, slider_1=2.0, slider_2=98.0), expected) and len(sources) == 1


def test_register_once_per_webui(host, capsys):
    a1111.register("clone/scripts/midas_diffusion_webui.py", "midas-diffusion from the clone at clone")
    a1111.register("shim.py")
    assert host.callbacks["ui_tabs"] == [a1111.on_ui_tabs] and len(host.callbacks["before_ui"]) == 1
    first, second = capsys.readouterr().out.strip().splitlines()
    assert first == "[midas-diffusion] registered by clone/scripts/midas_diffusion_webui.py " \
                    "(midas-diffusion from the clone at clone)"
    assert second.startswith("[midas-diffusion] shim.py: registered already; this entry adds nothing")


def test_tab_builds_from_the_param_specs_and_writes_float_depth(host, monkeypatch, tmp_path):
    gr = mock.MagicMock(name="gradio")
    monkeypatch.setitem(sys.modules, "gradio", gr)
    ((blocks, title, elem_id),) = a1111.on_ui_tabs()
    assert title == "MiDaS depth" and elem_id == "midas_diffusion"
    gamma = get_spec("gamma")
    gr.Slider.assert_any_call(label=gamma.label, value=gamma.default, minimum=gamma.min, maximum=gamma.max,
                              step=gamma.step, info=gamma.help)
    (dropdown,) = [c for c in gr.Dropdown.call_args_list if c.kwargs.get("label") == "Depth model"]
    assert dropdown.kwargs["value"] == "dpt_beit_large_512" and dropdown.kwargs["choices"] == list_models()
    # the registered zoo has metric models and non-MIT licences (Depth Anything V2): the info names them
    info = dropdown.kwargs["info"]
    assert info.startswith(get_spec("model").help) and "CC-BY-NC-4.0" in info and "Apache-2.0" in info

    folder = str(_tiny("midas_v21_small_256").save_pretrained(tmp_path / "tiny"))
    photo = _photo()
    preview, (png, npy) = a1111.tab_depth(photo, folder, 0, 2.0, 98.0, 1.0, False, output_dir=tmp_path)
    from midas_diffusion.io.writers import read_uint16_png

    values = np.load(npy)
    assert values.dtype == np.float32 and values.shape == (48, 80) and preview.dtype == np.uint8
    assert np.abs(read_uint16_png(png).astype(np.float64) / 65535 - values).max() <= 1 / 65535
    pytest.importorskip("trimesh")
    path = a1111.tab_export(photo, folder, format="glb", output_dir=tmp_path)
    assert path.endswith(".glb")
