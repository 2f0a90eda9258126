"""ComfyUI node pack: thin nodes over ``midas_diffusion`` and ``midas_diffusion.pipelines``.

Installed as a clone of the repository in ``custom_nodes/`` (its root ``__init__.py``), or with
``midas-diffusion install-comfyui COMFYUI_PATH`` (writes a two-line
``custom_nodes/midas_diffusion_nodes/__init__.py``); both call ``register_pack()``. Conventions:
IMAGE is ``[B,H,W,C]`` float32 in [0,1], MASK ``[B,H,W]`` float32; ``comfy`` and ``folder_paths``
are imported only inside functions; ``load_nodes()`` checks each node's optional imports, so a
missing one disables that node only.

ComfyUI owns the memory of what these nodes load (``comfyui_host``): the loader's output and the
nodes' pipelines live in ComfyUI's own caches and are freed with them (``POST /free``), each model
is registered with ComfyUI's model management before it runs (so ComfyUI can offload it), and every
loop over frames or denoising steps shows progress and stops at Cancel.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from midas_diffusion import get_model_spec, list_models
from midas_diffusion.inference.cache import ModelCache, weights_key
from midas_diffusion.inference.precision import parse_dtype

from . import comfyui_host as host
from . import runtime
from .params import depth_settings, get_spec, metric_settings, to_comfy_input

_log = logging.getLogger(__name__)  # ComfyUI's log (a print would wait in its buffered stdout)
CATEGORY = "MiDaS depth"
MODEL_TYPE = "MIDAS_DEPTH_MODEL"

# Finds a model again only while ComfyUI still holds it (the loader's output in ComfyUI's output
# cache, a pipeline in a node object in its object cache): ComfyUI decides when the memory goes.
_MODELS = ModelCache(limits={"pipeline": None, "depth": None}, weak=True)


def model_cache() -> ModelCache:
    """The node pack's (weak) cache: ``counts()`` tells how many models ComfyUI still holds."""
    return _MODELS


def _inputs(*names: str) -> Dict[str, tuple]:
    return {name: to_comfy_input(get_spec(name)) for name in names}


def _to_mask(disparity: torch.Tensor) -> torch.Tensor:
    return disparity.detach().float().cpu().contiguous()


def _to_image(disparity: torch.Tensor) -> torch.Tensor:
    """(B,H,W) in [0,1] -> (B,H,W,3) IMAGE (grey, near = white unless inverted)."""
    return _to_mask(disparity).unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


def _model_choice() -> tuple:
    """The ``model`` combo: every zoo model (registered now), the tooltip naming the metric ones and the
    licence of those that are not MIT."""
    from midas_diffusion.zoo.labels import model_notes

    choices, options = to_comfy_input(get_spec("model"))
    names = list_models()
    notes = model_notes(get_model_spec(n) for n in names)
    tooltip = options.get("tooltip", "")
    if notes:
        tooltip = f"{tooltip}\n{notes}" if tooltip else notes
    return (names, {**options, "tooltip": tooltip})


def weights_fingerprint(model: str, model_path: str = "", weights_dir: str = "") -> tuple:
    """What identifies the weights the loader reads (``midas_diffusion.inference.cache.weights_key``): the
    checkpoint file or saved folder, or the zoo model's weights file, with size and modification time,
    so a file rewritten at the same path counts as new weights."""
    path = (model_path or "").strip()
    if path:
        return weights_key(os.path.expanduser(path))
    return weights_key(model, os.path.expanduser((weights_dir or "").strip()) or None)


class _Node:
    """What every node of the pack declares alike: its menu category, its docstring as ComfyUI's
    description, and the optional imports it needs (``REQUIRES``: (module, attribute) pairs that
    ``load_nodes`` checks; none unless a node names them)."""

    CATEGORY = CATEGORY
    REQUIRES: Tuple[Tuple[str, str], ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.DESCRIPTION = cls.__doc__


class MidasLoadDepthModel(_Node):
    """Load a zoo model (or a checkpoint file / saved folder); later runs reuse it while ComfyUI
    keeps this node's output, and load again after ComfyUI frees it or the file changes."""

    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("depth_model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {**_inputs("model", "device", "dtype"), "model": _model_choice()},
            "optional": {
                "model_path": ("STRING", {"default": "", "tooltip": "checkpoint file or saved folder; overrides model"}),
                "weights_dir": ("STRING", {"default": "", "tooltip": "folder with the official .pt files"}),
                **_inputs("backend"),
            },
        }

    @classmethod
    def IS_CHANGED(cls, model, device="auto", dtype="auto", model_path="", weights_dir="", backend="auto"):
        """ComfyUI runs the loader again when this changes: the weights file's size and mtime."""
        return repr(weights_fingerprint(model, model_path, weights_dir))

    def load(self, model, device="auto", dtype="auto", model_path="", weights_dir="", backend="auto"):
        source = model_path.strip() or model
        if model_path.strip() and not os.path.exists(os.path.expanduser(source)):
            raise ValueError(f"model_path {source!r} does not exist")
        load_device, dtype_t = runtime.host_device(device), parse_dtype(dtype)
        key = (weights_fingerprint(model, model_path, weights_dir), str(load_device), str(dtype_t), backend)

        def load():
            # loaded where ComfyUI keeps models between runs; a throwaway cache: _MODELS keeps it
            est = runtime.load_estimator(os.path.expanduser(source), device=host.offload_device(load_device),
                                         dtype=dtype_t, weights_dir=weights_dir.strip() or None,
                                         cache=ModelCache(limits={"depth": 0}), backend=backend)
            host.return_memory_when_freed(est)
            return est

        est = _MODELS.get("depth", key, load)
        host.attach_patcher(est, {"net": est.model}, load_device)
        return (est,)


class MidasEstimateDepth(_Node):
    """Depth of each frame: a 3-channel IMAGE for ControlNet (near = white) and the float map as
    MASK [B,H,W] (float32, so 16-bit / EXR savers keep its precision)."""

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("depth_image", "disparity")
    FUNCTION = "estimate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "depth_model": (MODEL_TYPE,),
                             **_inputs("resolution", "percentile_low", "percentile_high", "gamma", "invert")}}

    def estimate(self, image, depth_model, resolution=0, percentile_low=0.0, percentile_high=100.0, gamma=1.0,
                 invert=False):
        settings = depth_settings(resolution, percentile_low, percentile_high, gamma, invert)
        runtime.check_frames(image)  # before the model moves to the GPU
        host.load_to_device([depth_model])
        disparity = runtime.disparity_frames(depth_model, image, progress=host.Progress(image.shape[0]), **settings)
        return (_to_image(disparity), _to_mask(disparity))


class MidasDepthStylize(_Node):
    """Restyle each frame with a prompt, keeping its depth (``pipelines.pipeline``); frame i uses
    seed + i. Returns the images and the disparity that conditioned them."""

    REQUIRES = (("midas_diffusion.pipelines", "pipeline"),)
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "disparity")
    FUNCTION = "stylize"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"image": ("IMAGE",),
                         **_inputs("prompt", "method", "base", "negative_prompt", "steps", "guidance", "strength",
                                   "seed", "resolution", "percentile_low", "percentile_high", "gamma", "invert",
                                   "device", "dtype")},
            "optional": {"depth_model": (MODEL_TYPE,),
                         "subject_mask": ("MASK", {"tooltip": "1 = subject, kept; the rest is flattened by the "
                                                   "background weight. Load Image's mask marks transparent areas: "
                                                   "invert it for a cut-out. An empty mask is ignored."}),
                         **_inputs("background_weight", "single_file_config", "control_model")},
        }

    def stylize(self, image, prompt, method="controlnet", base="", negative_prompt="", steps=30, guidance=7.5,
                strength=0.8, seed=0, resolution=0, percentile_low=0.0, percentile_high=100.0, gamma=1.0,
                invert=False, device="auto", dtype="auto", depth_model=None, subject_mask=None,
                background_weight=0.0, single_file_config="", control_model=""):
        from midas_diffusion.pipelines import load_pipeline, pipeline

        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        runtime.check_frames(image)
        get_spec("method").check(method)
        settings = depth_settings(resolution, percentile_low, percentile_high, gamma, invert)
        steps = get_spec("steps").check(steps)
        kwargs = dict(num_inference_steps=steps, guidance_scale=get_spec("guidance").check(guidance),
                      negative_prompt=negative_prompt or None, output_type="np",
                      background_weight=get_spec("background_weight").check(background_weight), **settings)
        if method == "depth2img":
            kwargs["strength"] = get_spec("strength").check(strength)
        dtype_t = parse_dtype(dtype)
        load_device = runtime.host_device(device)
        common = dict(method=method, base=_model_path(base, "checkpoints"),
                      single_file_config=single_file_config.strip() or None,
                      control_model=_model_path(control_model, "controlnet"),
                      dtype=runtime.pipeline_dtype(dtype_t, load_device),
                      device=host.offload_device(load_device), depth_model=depth_model, cache=_MODELS)
        # this node object holds its pipeline: ComfyUI keeps the node in its object cache and drops it
        # on /free (free_memory), which frees the pipeline; a loaded depth model keeps its own patcher
        self._pipeline = _held_pipeline(lambda: load_pipeline(**common), load_device,
                                        exclude=("depth_estimator",) if depth_model is not None else ())
        host.load_to_device([self._pipeline, depth_model])
        progress = host.Progress(image.shape[0] * steps)
        images, maps = [], []
        for i, frame in enumerate(image):
            progress.check()
            mask = None
            if subject_mask is not None:
                mask = subject_mask[min(i, subject_mask.shape[0] - 1)] if subject_mask.ndim == 3 else subject_mask
                if not mask.any():  # e.g. Load Image's 64x64 placeholder for an image without alpha
                    mask = None
            out = pipeline(frame[..., :3].permute(2, 0, 1)[None].float().cpu(), prompt, seed=int(seed) + i,
                           background_mask=mask, callback_on_step_end=progress.step_callback(i * steps, steps),
                           **common, **kwargs)
            images.append(torch.from_numpy(out.images[0]).float())
            maps.append(out.disparity[0, 0].float().cpu())
            progress.set((i + 1) * steps)
        return (torch.stack(images).clamp(0, 1).contiguous(), torch.stack(maps).contiguous())


def _held_pipeline(load: Callable[[], Any], load_device: torch.device, exclude: Tuple[str, ...] = ()):
    """``load()``'s pipeline (through ``_MODELS``) with a ComfyUI patcher over its torch modules
    (those named in ``exclude`` have their own); it gives its memory back to the system once ComfyUI
    drops it."""
    pipe = load()
    host.return_memory_when_freed(pipe)
    modules = {name: module for name, module in pipe.components.items()
               if isinstance(module, torch.nn.Module) and name not in exclude}
    host.attach_patcher(pipe, modules, load_device)
    return pipe


class MidasLDM3DTextToRGBD(_Node):
    """Text to an RGB image and its depth (LDM3D, ``pipelines.api.load_rgbd_pipeline``, cached);
    depth comes out as MASK [B,H,W] float32 in [0,1] (near = 1, ready for the export node)."""

    REQUIRES = (("midas_diffusion.pipelines", "MidasLDM3DPipeline"), ("midas_diffusion.pipelines.api", "load_rgbd_pipeline"))
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("rgb", "depth")
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        base = ("STRING", {"default": "Intel/ldm3d-4c", "tooltip": "Intel/ldm3d-4c, Intel/ldm3d, Intel/ldm3d-pano or a folder"})
        return {"required": {**_inputs("prompt"), "base": base,
                             **_inputs("negative_prompt", "width", "height", "batch_size", "steps", "guidance",
                                       "seed", "device", "dtype")}}

    def generate(self, prompt, base="Intel/ldm3d-4c", negative_prompt="", width=512, height=512, batch_size=1,
                 steps=30, guidance=7.5, seed=0, device="auto", dtype="auto"):
        from midas_diffusion.pipelines.api import load_rgbd_pipeline

        if not str(prompt).strip():
            raise ValueError("prompt must be a non-empty string")
        dtype_t = parse_dtype(dtype)
        load_device = runtime.host_device(device)
        steps = get_spec("steps").check(steps)
        self._pipeline = pipe = _held_pipeline(  # held like the stylize node's
            lambda: load_rgbd_pipeline(base.strip() or None, dtype=runtime.pipeline_dtype(dtype_t, load_device),
                                       device=host.offload_device(load_device), cache=_MODELS), load_device)
        host.load_to_device([pipe])
        progress = host.Progress(steps)
        out = pipe(prompt, height=get_spec("height").check(height), width=get_spec("width").check(width),
                   num_inference_steps=steps, guidance_scale=get_spec("guidance").check(guidance),
                   negative_prompt=negative_prompt or None,
                   num_images_per_prompt=get_spec("batch_size").check(batch_size), seed=int(seed), output_type="np",
                   callback_on_step_end=progress.step_callback(0, steps))
        rgb = torch.as_tensor(out.rgb).float().clamp(0, 1)
        depth = torch.as_tensor(out.depth).float()
        if depth.ndim == 4:  # (B,H,W,1)
            depth = depth[..., 0]
        return (rgb.contiguous(), depth.clamp(0, 1).contiguous())


def _model_path(name: str, kind: str) -> Optional[str]:
    """A base or control model as typed in the node: empty -> None (the default); a name that is
    not a path but a file in ComfyUI's ``models/<kind>`` folder (e.g. ``dreamshaper_8.safetensors``
    under ``checkpoints``) -> its full path; anything else (hub id, folder, path) as it is."""
    name = (name or "").strip()
    if not name or Path(name).expanduser().exists():
        return name or None
    try:
        import folder_paths  # ComfyUI's model folders

        found = folder_paths.get_full_path(kind, name)
    except (ImportError, KeyError):  # no ComfyUI, or a host without that folder kind
        found = None
    return found or name


def _mask_batch(maps: torch.Tensor, frames: int, name: str) -> torch.Tensor:
    """A MASK input as (N,H,W) with N 1 (one map for every frame) or ``frames``."""
    maps = maps[None] if maps.ndim == 2 else maps
    if maps.shape[0] not in (1, frames):
        raise ValueError(f"{name} has {maps.shape[0]} frames but image has {frames}")
    return maps


def _frame_map(maps: torch.Tensor, i: int, size: Tuple[int, int], name: str):
    """Frame ``i`` of a ``_mask_batch`` (one map serves every frame) at ``size``, as a numpy array."""
    m = maps[min(i, maps.shape[0] - 1)].float()
    if tuple(m.shape) != size:
        raise ValueError(f"{name} is {m.shape[1]}x{m.shape[0]} but the image is {size[1]}x{size[0]}")
    return m.cpu().numpy()


def _output_dir(output_dir: str) -> Path:
    if output_dir.strip():
        return Path(output_dir).expanduser()
    try:
        import folder_paths  # ComfyUI's output folder

        return Path(folder_paths.get_output_directory())
    except ImportError:
        return Path("output")


class MidasMetricDepth(_Node):
    """Depth in metres. With a metric depth model (``[metric ...]`` in the loader's list) and the image:
    the model's own metres, no known distances needed. Otherwise from the disparity and a few known
    distances (``x, y, metres`` per line, pixel column and row of the image): scale and shift of
    inverse depth are fitted to the points (robust to a few wrong ones). Feed it the estimate node's
    disparity made with gamma 1 and no clipping."""

    REQUIRES = (("midas_diffusion.evaluation.metric_depth", "metric_depth"),)
    RETURN_TYPES = ("MASK", "STRING")
    RETURN_NAMES = ("metric_depth", "fit")
    FUNCTION = "fit"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": _inputs("known_depths", "metric_robust", "max_depth"),
                "optional": {"disparity": ("MASK", {"tooltip": "a relative model's disparity, fitted to the known distances"}),
                             "image": ("IMAGE", {"tooltip": "with a metric depth_model: the frames to measure"}),
                             "depth_model": (MODEL_TYPE, {"tooltip": "a metric model gives metres without known distances"})}}

    def fit(self, disparity=None, known_depths="", metric_robust="ransac", max_depth=0.0, image=None, depth_model=None):
        from midas_diffusion.evaluation.metric_depth import metric_depth, sparse_from_points
        from midas_diffusion.evaluation.metric_files import parse_points

        if depth_model is not None and depth_model.spec.predicts == "metres":
            return self._measure(depth_model, image, max_depth)
        if disparity is None:
            raise ValueError("give the disparity and known distances (or a metric depth_model and the image)")
        points = parse_points(get_spec("known_depths").check(known_depths), "known_depths")
        options = metric_settings(metric_robust, max_depth)
        maps = disparity[None] if disparity.ndim == 2 else disparity
        sparse = sparse_from_points(points, *maps.shape[-2:])  # every frame of a MASK batch has one size
        depths, lines = [], []
        progress = host.Progress(maps.shape[0])
        for i, d in enumerate(maps):
            progress.check()
            result = metric_depth(d, sparse, **options)
            depths.append(torch.from_numpy(result.depth))
            lines.append(f"frame {i}: 1/depth = {result.scale:.6g} * disparity + {result.shift:.6g}; "
                         f"{int(result.inliers.sum())} of {result.points} points kept, median error "
                         f"{result.residual:.1%}, depth {float(result.depth.min()):.3g}-{float(result.depth.max()):.3g} m")
            progress.set(i + 1)
        return (torch.stack(depths).float().contiguous(), "\n".join(lines))

    def _measure(self, depth_model, image, max_depth=0.0):
        """A metric model's metres for each frame of ``image`` (capped at ``max_depth`` when set)."""
        if image is None:
            raise ValueError(f"{depth_model.spec.name} measures metres itself: connect the image")
        runtime.check_frames(image)
        host.load_to_device([depth_model])
        metres = runtime.metres_frames(depth_model, image, progress=host.Progress(image.shape[0]))
        cap = get_spec("max_depth").check(max_depth)
        if cap:
            metres = metres.clamp(max=cap)
        lines = [f"frame {i}: metres from {depth_model.spec.name} (metric model, no fit), depth "
                 f"{float(m.min()):.3g}-{float(m.max()):.3g} m" for i, m in enumerate(metres)]
        return (metres.contiguous(), "\n".join(lines))


class MidasExportRGBD(_Node):
    """Write each frame's RGB + disparity as a PLY point cloud or a GLB mesh; returns the paths."""

    REQUIRES = (("midas_diffusion.io.rgbd", "export_ply"), ("midas_diffusion.io.rgbd", "export_glb"),
                ("trimesh", "Trimesh"))
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("paths",)
    FUNCTION = "export"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"image": ("IMAGE",), "disparity": ("MASK",),
                         **_inputs("format", "fov_deg", "near", "far", "max_depth_jump"),
                         "filename_prefix": ("STRING", {"default": "midas_rgbd"})},
            "optional": {"output_dir": ("STRING", {"default": "", "tooltip": "empty = ComfyUI's output folder"}),
                         "metric_depth": ("MASK", {"tooltip": "depth in metres (MiDaS metric depth node): the "
                                                   "geometry is then in metres and near/far are not used"})},
        }

    def export(self, image, disparity, format="ply", fov_deg=60.0, near=1.0, far=10.0, max_depth_jump=0.1,
               filename_prefix="midas_rgbd", output_dir="", metric_depth=None):
        from midas_diffusion.io.rgbd import export_glb, export_ply  # no diffusers needed

        get_spec("format").check(format)
        disparity = _mask_batch(disparity, image.shape[0], "disparity")
        if metric_depth is not None:
            metric_depth = _mask_batch(metric_depth, image.shape[0], "metric_depth")
        folder = _output_dir(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        paths: List[str] = []
        progress = host.Progress(image.shape[0])
        for i, frame in enumerate(image):
            progress.check()
            d = disparity[min(i, disparity.shape[0] - 1)].float()
            if tuple(d.shape) != tuple(frame.shape[:2]):
                d = torch.nn.functional.interpolate(d[None, None], size=tuple(frame.shape[:2]), mode="bilinear",
                                                    align_corners=False)[0, 0]
            rgb = frame[..., :3].float().clamp(0, 1).cpu().numpy()
            d = d.clamp(0, 1).cpu().numpy()
            path = folder / f"{filename_prefix}_{i:05d}.{format}"
            camera = dict(fov_deg=float(fov_deg), near=float(near), far=float(far))
            if metric_depth is not None:
                camera["depth"] = _frame_map(metric_depth, i, tuple(frame.shape[:2]), "metric_depth")
            if format == "ply":
                export_ply(path, rgb, d, **camera)
            else:
                export_glb(path, rgb, d, max_depth_jump=float(max_depth_jump), **camera)
            paths.append(str(path))
            progress.set(i + 1)
        return ("\n".join(paths),)


NODES = (
    ("MidasLoadDepthModel", MidasLoadDepthModel, "Load MiDaS depth model"),
    ("MidasEstimateDepth", MidasEstimateDepth, "MiDaS depth estimate"),
    ("MidasDepthStylize", MidasDepthStylize, "MiDaS depth stylize"),
    ("MidasLDM3DTextToRGBD", MidasLDM3DTextToRGBD, "LDM3D text to RGBD"),
    ("MidasMetricDepth", MidasMetricDepth, "MiDaS metric depth from known distances"),
    ("MidasExportRGBD", MidasExportRGBD, "Export RGBD to PLY/GLB"),
)
DISABLED: Dict[str, str] = {}


def _missing(requires) -> str:
    for module, attribute in requires:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            return f"cannot import {module} ({exc})"
        try:  # a package may import the attribute's module on first use (midas_diffusion.pipelines)
            getattr(mod, attribute)
        except ImportError as exc:
            return f"cannot import {module}.{attribute} ({exc})"
        except AttributeError:
            return f"{module} has no {attribute}"
    return ""


def load_nodes() -> Tuple[Dict[str, type], Dict[str, str]]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` of the nodes whose optional imports
    work; each disabled node is reported in one line and recorded in ``DISABLED``."""
    classes: Dict[str, type] = {}
    names: Dict[str, str] = {}
    DISABLED.clear()
    for node_id, cls, display in NODES:
        reason = _missing(cls.REQUIRES)
        if reason:
            DISABLED[node_id] = reason
            _log.warning(f"[midas-diffusion] node {node_id} disabled: {reason.splitlines()[0]}")
            continue
        classes[node_id] = cls
        names[node_id] = display
    return classes, names


_REGISTERED_BY: Dict[str, str] = {}  # the entry that registered the nodes in this process -> which copy


def register_pack(entry, copy: str = "") -> Tuple[Dict[str, type], Dict[str, str]]:
    """The mappings for one ComfyUI entry of the node pack (a clone's root ``__init__.py``, an
    ``install-comfyui`` shim): the first entry in a process gets ``load_nodes()``, later ones get
    none (the same node ids once). One log line each says which copy of midas-diffusion (``copy``:
    how the entry found it; by default where ``midas_diffusion`` was imported from) and which entry."""
    entry = str(entry)
    copy = copy or f"midas-diffusion at {Path(__file__).resolve().parents[1]}"  # where ui/ is
    if _REGISTERED_BY:
        (first, first_copy), = _REGISTERED_BY.items()
        _log.info(f"[midas-diffusion] {entry}: the nodes are registered already by {first} ({first_copy}); "
                  "this entry adds none")
        return {}, {}
    classes, names = load_nodes()
    _REGISTERED_BY[entry] = copy
    _log.info(f"[midas-diffusion] {len(classes)} nodes registered by {entry} ({copy})")
    return classes, names


def __getattr__(name: str):
    """``from midas_diffusion.ui.comfyui import NODE_CLASS_MAPPINGS`` runs ``load_nodes()`` on first use."""
    if name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        classes, names = load_nodes()
        globals().update(NODE_CLASS_MAPPINGS=classes, NODE_DISPLAY_NAME_MAPPINGS=names)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
