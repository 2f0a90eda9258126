"""AUTOMATIC1111 extension against stubs of the host modules that follow the real signatures
(sd-webui-controlnet ``scripts/supported_preprocessor.py``, A1111 ``modules/script_callbacks.py``)."""

import sys
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Dict, List, NamedTuple, Optional
from unittest import mock

import numpy as np
import pytest
import torch

from midas_diffusion import DepthEstimator, list_models
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
    assert set(host.Preprocessor.all_processors_by_name) == names and len(names) == 13
    p = host.Preprocessor.get_preprocessor("depth_midas31_dpt_beit_large_512")
    assert p.model is None and p.tags == ["Depth"]  # no model loaded at registration
    for slider, spec in zip((p.slider_1, p.slider_2, p.slider_3), a1111.SLIDERS):
        spec = get_spec(spec)
        assert (slider.label, slider.minimum, slider.maximum, slider.step, slider.value, slider.visible) == (
            spec.label, spec.min, spec.max, spec.step, spec.default, True)
    res = get_spec("resolution")
    assert (p.slider_resolution.minimum, p.slider_resolution.maximum, p.slider_resolution.value) == (res.min, res.max, 0)
    fixed = host.Preprocessor.get_preprocessor("depth_midas31_dpt_swin2_tiny_256")
    assert fixed.slider_resolution.visible is False
    assert a1111.register_preprocessors() == []  # idempotent: no duplicate assertion from the host


@pytest.mark.parametrize("name, resolution", [("midas_v21_small_256", 128), ("dpt_levit_224", None)])
def test_preprocessor_gives_the_same_disparity_as_midas_diffusion(host, name, resolution):
    tiny = _tiny(name)
    sources = []
    added = a1111.register_preprocessors([name], model_source=lambda n, d: sources.append((n, d)) or tiny)
    assert added == [f"depth_midas31_{name}"]
    p = host.Preprocessor.get_preprocessor(added[0])
    photo = _photo()
    kwargs = dict(resolution=resolution or 512, slider_1=2.0, slider_2=98.0, slider_3=0.8)
    # as sd-webui-controlnet calls it (extra keywords included)
    result = p.cached_call(photo, low_vram=False, model="None", **kwargs)
    reference = _tiny(name, resolution)(photo, percentile=(2.0, 98.0), gamma=0.8).disparity[0, 0].numpy()
    disparity = p.disparity(photo, **kwargs)
    assert disparity.dtype == np.float32 and disparity.shape == photo.shape[:2]
    np.testing.assert_array_equal(disparity, reference)
    assert result.value.dtype == np.uint8 and result.value.shape == (48, 80, 3)
    np.testing.assert_array_equal(result.value[..., 0], np.round(np.clip(reference, 0, 1) * 255).astype(np.uint8))
    assert sources == [(name, "cpu")]  # loaded once, lazily, on the host's device
    p(photo, **kwargs)
    assert len(sources) == 1
    assert p.unload() is True


def test_unset_sliders_mean_defaults(host):
    tiny = _tiny("midas_v21_small_256")
    (name,) = a1111.register_preprocessors(["midas_v21_small_256"], model_source=lambda n, d: tiny)
    p = host.Preprocessor.get_preprocessor(name)
    photo = _photo()
    # the HTTP API sends -1 for thresholds it was not given
    np.testing.assert_array_equal(p.disparity(photo, -1, -1, -1, -1), tiny(photo).disparity[0, 0].numpy())
    with pytest.raises(ValueError, match="percentile_high"):
        p.disparity(photo, 0, 10.0, 20.0, 1.0)


def test_without_controlnet_nothing_is_registered(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "scripts.supported_preprocessor", None)
    assert a1111.register_preprocessors() == []
    assert "sd-webui-controlnet not found" in capsys.readouterr().out


def test_tab_builds_from_the_param_specs_and_writes_float_depth(host, monkeypatch, tmp_path):
    gr = mock.MagicMock(name="gradio")
    monkeypatch.setitem(sys.modules, "gradio", gr)
    ((blocks, title, elem_id),) = a1111.on_ui_tabs()
    assert title == "MiDaS depth" and elem_id == "midas_diffusion"
    gamma = get_spec("gamma")
    gr.Slider.assert_any_call(label=gamma.label, value=gamma.default, minimum=gamma.min, maximum=gamma.max,
                              step=gamma.step, info=gamma.help)
    gr.Dropdown.assert_any_call(label="Depth model", value="dpt_beit_large_512", choices=list_models(),
                                info=get_spec("model").help)

    folder = str(_tiny("midas_v21_small_256").save_pretrained(tmp_path / "tiny"))
    photo = _photo()
    preview, (png, npy) = a1111.tab_depth(photo, folder, 0, 2.0, 98.0, 1.0, False, output_dir=tmp_path)
    from midas_diffusion.writers import read_png16

    values = np.load(npy)
    assert values.dtype == np.float32 and values.shape == (48, 80) and preview.dtype == np.uint8
    assert np.abs(read_png16(png).astype(np.float64) / 65535 - values).max() <= 1 / 65535
    pytest.importorskip("trimesh")
    path = a1111.tab_export(photo, folder, format="glb", output_dir=tmp_path)
    assert path.endswith(".glb")
