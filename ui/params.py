"""The one list of user-facing parameters, rendered for every front end.

Gradio, ComfyUI and AUTOMATIC1111 (sd-webui-controlnet) all draw their controls from ``PARAMS``
through ``to_gradio_kwargs``, ``to_comfy_input`` and ``to_a1111_parameter``, so a label, default or
range is written once and the hosts never disagree. ``depth_settings`` turns the values of the
depth controls into the arguments ``midas_diffusion`` takes. Imports no host and no gradio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from midas_diffusion import DEFAULT_MODEL, list_models
from midas_diffusion.pipelines.methods import DEFAULT_METHOD, METHODS
from midas_diffusion.io.rgbd import EXPORT_FORMATS

KINDS = ("int", "float", "bool", "choice", "string")

# one definition each (the methods are plain data: building the controls does not import diffusers)
METHOD_CHOICES = tuple(METHODS)
DEFAULT_DEPTH_MODEL = DEFAULT_MODEL


@dataclass(frozen=True)
class ParamSpec:
    """One control: ``kind`` is int, float, bool, choice or string; ``group`` says which UI part
    it belongs to (depth, stylize, runtime, rgbd, export, metric)."""

    name: str
    label: str
    kind: str
    default: Any
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None
    choices: Tuple[str, ...] = ()
    help: str = ""
    group: str = "depth"
    multiline: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "choice" and self.default not in self.choices:
            raise ValueError(f"{self.name}: default {self.default!r} is not among its choices")
        if self.kind in ("int", "float") and (self.min is None or self.max is None or self.step is None):
            raise ValueError(f"{self.name}: numeric parameters need min, max and step")

    def check(self, value: Any) -> Any:
        """``value`` converted to this kind, or a one-line ``ValueError`` naming the parameter."""
        if self.kind == "bool":
            return bool(value)
        if self.kind == "string":
            return "" if value is None else str(value)
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        try:
            number = int(round(float(value))) if self.kind == "int" else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number, got {value!r}") from None
        if not self.min <= number <= self.max:
            raise ValueError(f"{self.name} must be in [{self.min:g}, {self.max:g}], got {value!r}")
        return number


P = ParamSpec
PARAMS: Tuple[ParamSpec, ...] = (
    # depth: what the preprocessor does
    P("model", "Depth model", "choice", DEFAULT_DEPTH_MODEL, choices=tuple(list_models()),
      help="MiDaS v3.1 zoo model (best quality first)"),
    P("resolution", "Processing resolution", "int", 0, 0, 2048, 32,
      help="network input size (MiDaS --height); 0 = the model's own; Swin/LeViT only run at their own"),
    P("percentile_low", "Clip low %", "float", 0.0, 0.0, 49.0, 0.5,
      help="disparity below this percentile becomes 0 (removes far outliers)"),
    P("percentile_high", "Clip high %", "float", 100.0, 51.0, 100.0, 0.5,
      help="disparity above this percentile becomes 1 (removes near outliers)"),
    P("gamma", "Gamma", "float", 1.0, 0.1, 5.0, 0.05, help="applied after normalization; < 1 lifts the far range"),
    P("invert", "Invert (near = black)", "bool", False, help="ControlNet expects near = white; invert for near = black"),
    P("background_weight", "Background weight", "float", 0.0, 0.0, 1.0, 0.05,
      help="with a subject mask: 0 flattens the background, 1 keeps its depth"),
    # stylize: the diffusion call
    P("method", "Method", "choice", DEFAULT_METHOD, choices=METHOD_CHOICES, group="stylize",
      help="depth conditioning: depth2img (SD2), ControlNet (SD1.5/SDXL), Union, T2I-Adapter"),
    P("base", "Base model", "string", "", group="stylize",
      help="hub id, diffusers folder or single-file checkpoint; empty = the method's default"),
    P("single_file_config", "Config folder (single-file base)", "string", "", group="stylize",
      help="for a .safetensors/.ckpt base: a local diffusers folder of its family; "
           "empty = the method's default base from the Hugging Face cache"),
    P("control_model", "Control model", "string", "", group="stylize",
      help="ControlNet / T2I-Adapter: hub id or diffusers folder; empty = the base folder's own, else the method's default"),
    P("prompt", "Prompt", "string", "", group="stylize", multiline=True, help="what to generate"),
    P("negative_prompt", "Negative prompt", "string", "", group="stylize", multiline=True, help="what to avoid"),
    P("steps", "Steps", "int", 30, 1, 150, 1, group="stylize", help="denoising steps"),
    P("guidance", "Guidance scale", "float", 7.5, 0.0, 30.0, 0.1, group="stylize",
      help="classifier-free guidance; higher follows the prompt more closely"),
    P("strength", "Strength", "float", 0.8, 0.0, 1.0, 0.01, group="stylize",
      help="depth2img only: how much of the photo is repainted"),
    P("seed", "Seed", "int", 0, 0, 2**32 - 1, 1, group="stylize", help="random seed (frame i of a batch uses seed + i)"),
    # runtime: where models run
    P("device", "Device", "choice", "auto", choices=("auto", "cpu", "cuda", "mps"), group="runtime",
      help="auto = the host's device (ComfyUI's or A1111's, else CPU)"),
    P("dtype", "Precision", "choice", "auto", choices=("auto", "float32", "float16", "bfloat16"), group="runtime",
      help="auto: depth in bfloat16 on CPUs with native bf16 units (models accurate in it), float16 on CUDA; "
           "diffusion in float16 on CUDA, else float32"),
    P("backend", "Backend", "choice", "auto", choices=("auto", "torch", "openvino"), group="runtime",
      help="what runs the depth network: auto = OpenVINO on a CPU where it is installed and measured faster "
           "for the model, else torch"),
    # rgbd: LDM3D text-to-RGBD
    P("width", "Width", "int", 512, 64, 2048, 8, group="rgbd", help="output width (multiple of 8)"),
    P("height", "Height", "int", 512, 64, 2048, 8, group="rgbd", help="output height (multiple of 8)"),
    P("batch_size", "Batch size", "int", 1, 1, 16, 1, group="rgbd", help="images per prompt"),
    # export: RGBD to PLY/GLB
    P("format", "Format", "choice", EXPORT_FORMATS[0], choices=EXPORT_FORMATS, group="export",
      help="ply = colored point cloud, glb = mesh"),
    P("fov_deg", "Field of view (deg)", "float", 60.0, 10.0, 150.0, 1.0, group="export",
      help="camera field of view along the longer side"),
    P("near", "Near plane", "float", 1.0, 0.01, 100.0, 0.01, group="export", help="depth of disparity 1"),
    P("far", "Far plane", "float", 10.0, 0.1, 1000.0, 0.1, group="export", help="depth of disparity 0"),
    P("max_depth_jump", "Max depth jump", "float", 0.1, 0.0, 1.0, 0.01, group="export",
      help="GLB only: triangles spanning a larger disparity step are dropped (no rubber sheets)"),
    # metric: relative disparity -> metres from a few known distances
    P("known_depths", "Known distances", "string", "", group="metric", multiline=True,
      help="one point per line: x, y, metres (pixel column and row of the photo, from 0); at least 3 "
           "points; with them the 3D export is in metres"),
    P("metric_robust", "Outlier handling", "choice", "ransac", choices=("ransac", "huber", "none"), group="metric",
      help="ransac: ignore points that disagree with the others; huber: down-weight them; none: plain least squares"),
    P("max_depth", "Max depth (m)", "float", 0.0, 0.0, 10000.0, 0.1, group="metric",
      help="cap for the farthest pixels; 0 = 10x the farthest known point"),
)
del P

_BY_NAME: Dict[str, ParamSpec] = {p.name: p for p in PARAMS}
DEPTH_PARAMS = tuple(p for p in PARAMS if p.group == "depth")
STYLIZE_PARAMS = tuple(p for p in PARAMS if p.group == "stylize")


def get_spec(name: str) -> ParamSpec:
    if name not in _BY_NAME:
        raise KeyError(f"no parameter named {name!r}; known: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def specs(group: str) -> Tuple[ParamSpec, ...]:
    """The parameters of one group, in declaration order."""
    return tuple(p for p in PARAMS if p.group == group)


def defaults(group: Optional[str] = None) -> Dict[str, Any]:
    return {p.name: p.default for p in PARAMS if group is None or p.group == group}


def depth_settings(resolution: Any = 0, percentile_low: Any = 0.0, percentile_high: Any = 100.0,
                   gamma: Any = 1.0, invert: Any = False) -> Dict[str, Any]:
    """UI values -> ``processing_resolution``, ``percentile``, ``gamma``, ``invert`` (the
    arguments of ``DepthSettings`` and of ``DepthEstimator.__call__``); checked against the specs.
    Resolution 0 means the model's own; percentiles (0, 100) mean plain min-max."""
    resolution = get_spec("resolution").check(resolution)
    low = get_spec("percentile_low").check(percentile_low)
    high = get_spec("percentile_high").check(percentile_high)
    return {
        "processing_resolution": resolution or None,
        "percentile": None if (low, high) == (0.0, 100.0) else (low, high),
        "gamma": get_spec("gamma").check(gamma),
        "invert": get_spec("invert").check(invert),
    }


def metric_settings(metric_robust: Any = "ransac", max_depth: Any = 0.0) -> Dict[str, Any]:
    """UI values -> the keyword arguments of ``midas_diffusion.evaluation.metric_depth.metric_depth``."""
    robust = get_spec("metric_robust").check(metric_robust)
    cap = get_spec("max_depth").check(max_depth)
    return {"robust": {"ransac": True, "huber": "huber", "none": False}[robust], "max_depth": cap or None}


# ---------------------------------------------------------------------------------- renderers
def to_comfy_input(spec: ParamSpec) -> tuple:
    """A ComfyUI ``INPUT_TYPES`` entry: ``("INT", {...})``, ``("FLOAT", {...})``,
    ``("BOOLEAN", {...})``, ``("STRING", {...})`` or ``([choices], {...})``."""
    options: Dict[str, Any] = {"default": spec.default}
    if spec.help:
        options["tooltip"] = spec.help
    if spec.kind in ("int", "float"):
        cast = int if spec.kind == "int" else float
        options.update(min=cast(spec.min), max=cast(spec.max), step=cast(spec.step))
        if spec.name == "seed":
            options["control_after_generate"] = True
        return ("INT" if spec.kind == "int" else "FLOAT", options)
    if spec.kind == "bool":
        return ("BOOLEAN", options)
    if spec.kind == "string":
        options["multiline"] = spec.multiline
        return ("STRING", options)
    return (list(spec.choices), options)


def to_a1111_parameter(spec: ParamSpec) -> Dict[str, Any]:
    """Keyword arguments of sd-webui-controlnet's ``PreprocessorParameter(label, minimum,
    maximum, step, value, visible)``; a slider, so numeric (and bool as 0/1) parameters only."""
    if spec.kind == "bool":
        return dict(label=spec.label, minimum=0, maximum=1, step=1, value=int(spec.default), visible=True)
    if spec.kind not in ("int", "float"):
        raise ValueError(f"{spec.name} is a {spec.kind} parameter; sd-webui-controlnet sliders are numeric")
    return dict(label=spec.label, minimum=spec.min, maximum=spec.max, step=spec.step, value=spec.default, visible=True)


def to_gradio_kwargs(spec: ParamSpec) -> Dict[str, Any]:
    """``{"component": NAME, **kwargs}`` for ``getattr(gradio, NAME)(**kwargs)``: Slider,
    Checkbox, Dropdown or Textbox (gradio itself is not imported here)."""
    common = {"label": spec.label, "value": spec.default}
    if spec.help:
        common["info"] = spec.help
    if spec.kind in ("int", "float"):
        return {"component": "Slider", "minimum": spec.min, "maximum": spec.max, "step": spec.step, **common}
    if spec.kind == "bool":
        return {"component": "Checkbox", **common}
    if spec.kind == "choice":
        return {"component": "Dropdown", "choices": list(spec.choices), **common}
    return {"component": "Textbox", "lines": 3 if spec.multiline else 1, **common}
