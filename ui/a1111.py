"""AUTOMATIC1111 extension: every zoo model as an sd-webui-controlnet preprocessor, plus a tab.

Installed as a clone of the repository in ``extensions/`` ("Install from URL": its ``install.py``
and ``scripts/midas_diffusion_webui.py``), or with ``midas-diffusion install-a1111 WEBUI_PATH``
(writes ``extensions/midas-diffusion/scripts/midas_diffusion_a1111.py``); both call ``register()``.
In Forge the preprocessors go into its own registry (``register_forge_preprocessors``).

* ``depth_midas31_<model>`` preprocessors (tag ``Depth``), registered just before the UI is built
  (``script_callbacks.on_before_ui``) when sd-webui-controlnet 1.1.444 or newer is installed (its
  ``Preprocessor`` registry). They advertise exactly the sliders the host has: the resolution
  slider (hidden for fixed-size models) and threshold A/B = clip low % / clip high %
  (``ui.params``). sd-webui-controlnet has no third slider and never passes ``slider_3``; gamma is
  in the tab and the Python API (``disparity(..., gamma=)``).
* A "MiDaS depth" tab (``script_callbacks.on_ui_tabs``): 16-bit PNG / float ``.npy`` depth maps
  and PLY/GLB export, with gamma.

Models load through the one ``ModelCache`` (``ui.runtime.load_estimator``); the host's
``unload()`` moves a model to the CPU and takes it out of the cache, so the cache never lists a
model on a device it has left. Host modules (``modules.*``, ``scripts.supported_preprocessor``)
and gradio are imported only inside functions. sd-webui-controlnet requires its control maps as
uint8 (``HWC3`` asserts it), so the preprocessor returns 8 bits; ``disparity()`` and the tab give
the float map.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from midas_diffusion import get_model_spec, list_models
from midas_diffusion.zoo.labels import model_label, model_notes
from midas_diffusion.inference.cache import ModelCache, default_cache

from . import runtime
from .params import depth_settings, get_spec, specs, to_a1111_parameter, to_gradio_kwargs

PREFIX = "depth_midas31_"
HOST_MODULE = "scripts.supported_preprocessor"
MIN_CONTROLNET = "1.1.444"  # the first sd-webui-controlnet with the Preprocessor registry
# the host's sliders (sd-webui-controlnet build_sliders: processor_res, threshold_a, threshold_b)
SLIDERS = ("percentile_low", "percentile_high")  # slider_1, slider_2
ModelSource = Callable[[str, Any], Any]  # (model name, device) -> DepthEstimator, cached by the source


def preprocessor_name(model_name: str) -> str:
    return PREFIX + model_name


def log(message: str) -> None:
    """One line on the webui console."""
    print(f"[midas-diffusion] {message}")


def _cached_source(cache: ModelCache) -> ModelSource:
    def source(model_name: str, device: Any):
        return runtime.load_estimator(model_name, device=device or "cpu", cache=cache)

    return source


def clamp_resolution(resolution: Any, name: str = "") -> int:
    """The host's ``resolution`` as ``processing_resolution`` (0 = the model's own): unset (None,
    negative) means 0; above the slider's maximum (pixel perfect can send that) is clamped to it
    with a log line."""
    spec = get_spec("resolution")
    value = int(round(float(_slider_value("resolution", resolution))))  # unset: the default, 0
    if value > spec.max:
        log(f"{name or 'depth'}: resolution {value} is above the slider's maximum; using {int(spec.max)}")
        return int(spec.max)
    return value


def _slider_value(name: str, value: Any) -> Any:
    """The host sends None (hidden) or -1 (its API default) for an unset slider: use our default."""
    if value is None or (isinstance(value, (int, float)) and value < 0):
        return get_spec(name).default
    return value


def control_image(disparity: np.ndarray) -> np.ndarray:
    """(H,W) float disparity in [0,1] -> (H,W,3) uint8, near = white (sd-webui-controlnet's format)."""
    grey = (np.clip(disparity, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _fixed_resolution_slider(model_name: str) -> Dict[str, Any]:
    """The hidden resolution slider of a fixed-size model: the range of the visible one (so an API
    ``processor_res`` such as 512 is valid; the model ignores it), value = the model's own size."""
    spec = get_spec("resolution")
    size = get_model_spec(model_name).preprocess.net_size[0]
    return dict(label=f"{spec.label} (fixed: {size})", minimum=spec.min, maximum=spec.max, step=spec.step,
                value=size, visible=False)


def preprocessor_class(Preprocessor: type, PreprocessorParameter: type, named_base: bool = True) -> type:
    """A subclass of the host's ``Preprocessor`` (only importable inside the webui); ``named_base``:
    the base takes ``name=`` (sd-webui-controlnet's dataclass; Forge's takes no arguments)."""

    class MidasDepthPreprocessor(Preprocessor):
        """MiDaS v3.1 zoo depth as a ControlNet preprocessor (near = white).

        ``model_source(name, device)`` gives the model and keeps it cached (default: ``cache``, the
        process-wide ``ModelCache`` unless given); ``self.model`` is the host's handle on the last
        model, which ``unload()`` moves to the CPU and takes out of the cache."""

        def __init__(self, model_name: str, model_source: Optional[ModelSource] = None,
                     cache: Optional[ModelCache] = None):
            if named_base:
                super().__init__(name=preprocessor_name(model_name))
            else:
                super().__init__()
                self.name = preprocessor_name(model_name)
            label = model_label(get_model_spec(model_name))  # metric models and licences other than MIT marked
            if label != model_name:  # shown in the host's list; the name stays the API's key
                self._label = preprocessor_name(model_name) + label[len(model_name):]
            self.tags = ["Depth"]
            self.model_filename_filters = ["depth"]  # Forge lists the ControlNet models whose file names match
            self.model_name = model_name
            self.cache = cache if cache is not None else default_cache()
            self.model_source = model_source or _cached_source(self.cache)
            self.model = None
            self.fixed_size = get_model_spec(model_name).preprocess.fixed_size
            # Swin/SwinV2/LeViT only run at their own size: the resolution slider is hidden (pixel
            # perfect would otherwise send sizes they cannot run at)
            self.slider_resolution = PreprocessorParameter(
                **(_fixed_resolution_slider(model_name) if self.fixed_size
                   else to_a1111_parameter(get_spec("resolution"))))
            self.slider_1, self.slider_2 = (PreprocessorParameter(**to_a1111_parameter(get_spec(n))) for n in SLIDERS)
            self.slider_3 = PreprocessorParameter(visible=False)  # the host has no third slider

        def load_model(self):
            device = getattr(self, "device", None) or "cpu"
            # the cache answers (a hit is the same object); an unloaded or evicted model is let go
            # before the source loads it again, so two copies never coexist
            self.model = None
            self.model = self.model_source(self.model_name, device)
            return self.model

        def disparity(self, input_image, resolution=None, slider_1=None, slider_2=None, *,
                      gamma: float = 1.0) -> np.ndarray:
            """The float map: (H,W) float32 in [0,1], near = 1, at the input's size. ``resolution``,
            ``slider_1`` (clip low %), ``slider_2`` (clip high %) as the host sends them."""
            est = self.load_model()
            res = 0 if self.fixed_size else clamp_resolution(resolution, self.name)
            low, high = (_slider_value(n, v) for n, v in zip(SLIDERS, (slider_1, slider_2)))
            settings = depth_settings(res, low, high, gamma)
            image = np.asarray(input_image)
            if image.ndim == 3 and image.shape[2] == 4:
                image = image[..., :3]
            return runtime.disparity_map(est, image, **settings)

        def __call__(self, input_image, resolution=None, slider_1=None, slider_2=None, slider_3=None,
                     input_mask=None, **kwargs):
            """sd-webui-controlnet calls ``(image, resolution=, slider_1=, slider_2=, **extras)``;
            ``slider_3`` (never sent by the host) is gamma for scripts that call it directly."""
            gamma = _slider_value("gamma", slider_3)
            return control_image(self.disparity(input_image, resolution, slider_1, slider_2, gamma=gamma))

        def unload(self):
            """The host frees memory: the model goes to the CPU and out of the cache (the next call
            loads it again through the cache); False when there is nothing on an accelerator."""
            if self.model is None or str(self.model.device) == "cpu":
                return False
            self.cache.discard(self.model)
            self.model.to("cpu")
            return True

    return MidasDepthPreprocessor


def _is_forge() -> bool:
    try:
        return importlib.util.find_spec("modules_forge") is not None
    except (ImportError, ValueError):
        return "modules_forge" in sys.modules


def _unsupported_host_message() -> str:
    """Why there is no preprocessor registry: an older sd-webui-controlnet, or none."""
    version = getattr(sys.modules.get("scripts.controlnet_version"), "version_flag", None)
    if version is not None or any(name in sys.modules for name in ("scripts.global_state", "scripts.external_code")):
        return (f"sd-webui-controlnet {version or '(version unknown)'} has no Preprocessor registry: the "
                f"depth_midas31_* preprocessors need sd-webui-controlnet {MIN_CONTROLNET} or newer (update the "
                "extension); the 'MiDaS depth' tab works")
    return "sd-webui-controlnet not found: no depth_midas31_* preprocessors; the 'MiDaS depth' tab works"


def register_preprocessors(models: Optional[Sequence[str]] = None, model_source: Optional[ModelSource] = None,
                           cache: Optional[ModelCache] = None) -> List[str]:
    """Add ``depth_midas31_<model>`` for each model to sd-webui-controlnet; returns the names
    added (none, with a one-line reason, when the host has no Preprocessor registry; already
    registered names are skipped)."""
    try:
        host = importlib.import_module(HOST_MODULE)
        Preprocessor, PreprocessorParameter = host.Preprocessor, host.PreprocessorParameter
    except (ImportError, AttributeError):
        if _is_forge():
            return register_forge_preprocessors(models, model_source, cache)
        log(_unsupported_host_message())
        return []
    cls = preprocessor_class(Preprocessor, PreprocessorParameter)
    added = []
    for model in models or list_models():
        name = preprocessor_name(model)
        if Preprocessor.get_preprocessor(name) is not None:
            continue
        Preprocessor.add_supported_preprocessor(cls(model, model_source, cache))
        added.append(name)
    return added


_REGISTERED_WITH: "weakref.WeakSet[Any]" = weakref.WeakSet()  # the webuis' script_callbacks modules


# ------------------------------------------------------------------------------------ Forge
# stable-diffusion-webui-forge replaces sd-webui-controlnet by its built-in sd_forge_controlnet, whose
# preprocessors live in modules_forge.shared.supported_preprocessors (add_supported_preprocessor); the
# base class modules_forge.supported_preprocessor.Preprocessor takes no arguments. Forge calls a
# preprocessor as p(input_image=, input_mask=, resolution=, slider_1=, slider_2=) with an (H,W,3) uint8
# image and wants (H,W,3) uint8 back: sd-webui-controlnet's contract, so the class is the same one.
FORGE_REGISTRY = "modules_forge.shared"  # supported_preprocessors, add_supported_preprocessor
FORGE_BASE = "modules_forge.supported_preprocessor"  # Preprocessor, PreprocessorParameter


def forge_device():
    """The device Forge runs models on (the CPU where it cannot say)."""
    try:
        from backend import memory_management
    except ImportError:
        return "cpu"
    return memory_management.get_torch_device()


def forge_preprocessor_class(Preprocessor: type, PreprocessorParameter: type) -> type:
    """``preprocessor_class`` on Forge's base. Forge's memory manager moves only models it has a
    ``ModelPatcher`` for, so the depth model runs on Forge's device and is unloaded after each call
    (to the CPU and out of the cache, as Forge's legacy preprocessors do): it never holds GPU memory
    while Forge samples, and the next call loads it again."""

    class MidasDepthForgePreprocessor(preprocessor_class(Preprocessor, PreprocessorParameter, named_base=False)):
        @property
        def device(self):
            return forge_device()

        def __call__(self, input_image, resolution=None, slider_1=None, slider_2=None, slider_3=None,
                     input_mask=None, **kwargs):
            try:
                return super().__call__(input_image, resolution, slider_1, slider_2, slider_3, input_mask, **kwargs)
            finally:
                self.unload()

    return MidasDepthForgePreprocessor


def register_forge_preprocessors(models: Optional[Sequence[str]] = None, model_source: Optional[ModelSource] = None,
                                 cache: Optional[ModelCache] = None) -> List[str]:
    """Add ``depth_midas31_<model>`` for each model to Forge's registry; returns the names added
    (already registered names are skipped; none, with one line saying what is missing, when this
    Forge has no such registry)."""
    try:
        registry, bases = importlib.import_module(FORGE_REGISTRY), importlib.import_module(FORGE_BASE)
        add, registered = registry.add_supported_preprocessor, registry.supported_preprocessors
        Preprocessor, PreprocessorParameter = bases.Preprocessor, bases.PreprocessorParameter
    except (ImportError, AttributeError) as exc:
        log(f"this Forge has no preprocessor registry ({FORGE_REGISTRY}.add_supported_preprocessor and "
            f"{FORGE_BASE}.Preprocessor: {exc}): no depth_midas31_* preprocessors; the 'MiDaS depth' tab works")
        return []
    cls = forge_preprocessor_class(Preprocessor, PreprocessorParameter)
    added = []
    for model in models or list_models():
        name = preprocessor_name(model)
        if name in registered:
            continue
        add(cls(model, model_source, cache))
        added.append(name)
    return added


def register(entry: str = "", copy: str = "") -> None:
    """Called by the extension script (``entry``: its path): the tab, and the preprocessors once
    every extension is loaded (``on_before_ui``; immediately on webuis without that callback).
    Once per webui: a second entry (a clone's script beside an ``install-a1111`` shim) adds
    nothing; one log line each says which copy of midas-diffusion (``copy``: how the entry found it;
    by default where this module is) and which entry."""
    from modules import script_callbacks

    copy = copy or f"midas-diffusion at {Path(__file__).resolve().parents[1]}"  # where ui/ is
    if script_callbacks in _REGISTERED_WITH:
        log(f"{entry or 'register()'}: registered already; this entry adds nothing ({copy})")
        return
    _REGISTERED_WITH.add(script_callbacks)
    log(f"registered by {entry or 'register()'} ({copy})")
    script_callbacks.on_ui_tabs(on_ui_tabs)
    before_ui = getattr(script_callbacks, "on_before_ui", None)
    if before_ui is not None:
        before_ui(register_preprocessors)
    else:
        register_preprocessors()


# ------------------------------------------------------------------------------------ the tab
def _output_dir() -> Path:
    folder = Path("outputs") / "midas-diffusion"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tab_depth(image, model, resolution=0, percentile_low=0.0, percentile_high=100.0, gamma=1.0, invert=False,
              output_dir: Optional[Path] = None):
    """The tab's "Estimate": -> (8-bit preview, [16-bit PNG path, float32 .npy path]); a metric model
    adds ``NAME-metric.npy`` (float32 metres) and ``NAME-metric.png`` (16-bit millimetres)."""
    from midas_diffusion.evaluation.metric_files import write_depth_png_mm
    from midas_diffusion.io.writers import write_npy, write_png16

    if image is None:
        raise ValueError("no image: drop a photo first")
    source = model if os.path.exists(str(model)) else _zoo_name(model)  # a zoo name, file or folder
    est = runtime.load_estimator(source, device="auto")  # the host's ControlNet device
    settings = depth_settings(resolution, percentile_low, percentile_high, gamma, invert)
    out = runtime.estimate(est, np.asarray(image)[..., :3], **settings)
    disparity = out.disparity[0, 0].numpy()
    folder = output_dir or _output_dir()
    stem = folder / f"{Path(str(model)).name}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}"
    png = write_png16(stem.with_suffix(".png"), disparity)
    npy = write_npy(stem.with_suffix(".npy"), disparity)
    files = [str(png), str(npy)]
    if out.metres is not None:
        metres = out.metres[0, 0].numpy()
        files.append(str(write_npy(stem.with_name(stem.name + "-metric.npy"), metres)))
        files.append(str(write_depth_png_mm(stem.with_name(stem.name + "-metric.png"), metres)))
    return control_image(disparity), files


def _zoo_name(model: str) -> str:
    """The tab's model choice: a zoo name (the listed ones, or any registered since)."""
    if model in list_models():
        return model
    return get_spec("model").check(model)


def tab_export(image, model, resolution=0, percentile_low=0.0, percentile_high=100.0, gamma=1.0,
               format="ply", fov_deg=60.0, near=1.0, far=10.0, max_depth_jump=0.1, output_dir: Optional[Path] = None):
    """The tab's "Export": depth of ``image`` (near = 1), then a PLY point cloud or GLB mesh; -> path."""
    from midas_diffusion.io.rgbd import export_glb, export_ply  # no diffusers needed

    _, (png, npy, *metric) = tab_depth(image, model, resolution, percentile_low, percentile_high, gamma, False,
                                       output_dir)
    disparity = np.load(npy)
    rgb = np.asarray(image)[..., :3].astype(np.float32)
    rgb = rgb / 255 if np.asarray(image).dtype == np.uint8 else rgb
    path = Path(npy).with_suffix("." + get_spec("format").check(format))
    camera = dict(fov_deg=float(fov_deg), near=float(near), far=float(far))
    if metric:  # a metric model: the geometry in its metres, no near/far guess
        camera["depth"] = np.load(metric[0])
    if format == "ply":
        export_ply(path, rgb, disparity, **camera)
    else:
        export_glb(path, rgb, disparity, max_depth_jump=float(max_depth_jump), **camera)
    return str(path)


def _component(gr, name: str, **overrides):
    kwargs: Dict[str, Any] = {**to_gradio_kwargs(get_spec(name)), **overrides}
    return getattr(gr, kwargs.pop("component"))(**kwargs)


def model_dropdown(gr):
    """The tab's model list: every zoo model registered now; its info names the metric models and the
    licences other than MIT (names stay the choices: older Gradio has no (label, value) pairs)."""
    notes = model_notes(get_model_spec(name) for name in list_models())
    info = get_spec("model").help + (f". {notes}" if notes else "")
    return _component(gr, "model", choices=list_models(), info=info)


def _export_click(image, model, resolution, percentile_low, percentile_high, gamma, invert, *export_values):
    """Export ignores ``invert``: geometry needs near = 1."""
    return tab_export(image, model, resolution, percentile_low, percentile_high, gamma, *export_values)


def on_ui_tabs():
    """``script_callbacks.on_ui_tabs`` callback: ``[(blocks, title, elem_id)]``."""
    import gradio as gr

    depth_names = ("model", "resolution", "percentile_low", "percentile_high", "gamma", "invert")
    export_names = tuple(p.name for p in specs("export"))
    with gr.Blocks(analytics_enabled=False) as blocks:
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="Photo", type="numpy")
                depth_inputs = [model_dropdown(gr), *(_component(gr, name) for name in depth_names[1:])]
                estimate = gr.Button("Estimate depth", variant="primary")
                export_inputs = [_component(gr, name) for name in export_names]
                export = gr.Button("Export RGBD")
            with gr.Column():
                preview = gr.Image(label="Depth (8-bit preview; the files keep full precision)", type="numpy")
                files = gr.File(label="16-bit PNG and float32 .npy", file_count="multiple")
                mesh = gr.File(label="PLY / GLB")
        estimate.click(tab_depth, inputs=[image, *depth_inputs], outputs=[preview, files])
        export.click(_export_click, inputs=[image, *depth_inputs, *export_inputs], outputs=[mesh])
    return [(blocks, "MiDaS depth", "midas_diffusion")]
