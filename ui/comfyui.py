"""ComfyUI node pack: thin nodes over ``midas_diffusion`` and ``pipelines``.

Install with ``midas-diffusion install-comfyui COMFYUI_PATH`` (writes a two-line
``custom_nodes/midas_diffusion_nodes/__init__.py`` that calls ``load_nodes()``). Conventions:
IMAGE is ``[B,H,W,C]`` float32 in [0,1], MASK ``[B,H,W]`` float32; ``comfy`` and ``folder_paths``
are imported only inside functions; depth models are cached between runs (``ui.runtime``).
``load_nodes()`` checks each node's optional imports, so a missing one disables that node only.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from . import runtime
from .params import depth_settings, get_spec, to_comfy_input

CATEGORY = "MiDaS depth"
MODEL_TYPE = "MIDAS_DEPTH_MODEL"


def _inputs(*names: str) -> Dict[str, tuple]:
    return {name: to_comfy_input(get_spec(name)) for name in names}


def _to_mask(disparity: torch.Tensor) -> torch.Tensor:
    return disparity.detach().float().cpu().contiguous()


def _to_image(disparity: torch.Tensor) -> torch.Tensor:
    """(B,H,W) in [0,1] -> (B,H,W,3) IMAGE (grey, near = white unless inverted)."""
    return _to_mask(disparity).unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


class MidasLoadDepthModel:
    """Load a zoo model (or a checkpoint file / saved folder) once; later runs reuse it."""

    REQUIRES: Tuple[Tuple[str, str], ...] = ()
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("depth_model",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": _inputs("model", "device", "dtype"),
            "optional": {
                "model_path": ("STRING", {"default": "", "tooltip": "checkpoint file or saved folder; overrides model"}),
                "weights_dir": ("STRING", {"default": "", "tooltip": "folder with the official .pt files"}),
            },
        }

    def load(self, model, device="auto", dtype="float32", model_path="", weights_dir=""):
        source = model_path.strip() or model
        if model_path.strip() and not os.path.exists(source):
            raise ValueError(f"model_path {source!r} does not exist")
        return (runtime.load_estimator(source, device=device, dtype=dtype, weights_dir=weights_dir.strip() or None),)


class MidasEstimateDepth:
    """Depth of each frame: a 3-channel IMAGE for ControlNet (near = white) and the float map as
    MASK [B,H,W] (float32, so 16-bit / EXR savers keep its precision)."""

    REQUIRES: Tuple[Tuple[str, str], ...] = ()
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("depth_image", "disparity")
    FUNCTION = "estimate"
    CATEGORY = CATEGORY
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "depth_model": (MODEL_TYPE,),
                             **_inputs("resolution", "percentile_low", "percentile_high", "gamma", "invert")}}

    def estimate(self, image, depth_model, resolution=0, percentile_low=0.0, percentile_high=100.0, gamma=1.0,
                 invert=False):
        settings = depth_settings(resolution, percentile_low, percentile_high, gamma, invert)
        disparity = runtime.disparity_frames(depth_model, image, **settings)
        return (_to_image(disparity), _to_mask(disparity))


_COMPONENTS: Dict[int, Any] = {}


def _depth_component(est):
    """A loaded ``DepthEstimator`` as the pipelines' ``MidasDepthEstimator``, sharing its weights
    (one wrapper per estimator, so ``load_pipeline``'s cache hits on later runs)."""
    entry = _COMPONENTS.get(id(est))
    if entry is not None and entry[0] is est:
        return entry[1]
    from midas_diffusion.pipelines import MidasDepthEstimator

    with torch.device("meta"):
        component = MidasDepthEstimator(model_name=est.model_name, reduced=getattr(est, "reduced", False),
                                        max_pixels=est.max_pixels)
    component.net = est.model
    _COMPONENTS[id(est)] = (est, component)
    return component


class MidasDepthStylize:
    """Restyle each frame with a prompt, keeping its depth (``pipelines.pipeline``); frame i uses
    seed + i. Returns the images and the disparity that conditioned them."""

    REQUIRES = (("midas_diffusion.pipelines", "pipeline"),)
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "disparity")
    FUNCTION = "stylize"
    CATEGORY = CATEGORY
    DESCRIPTION = __doc__

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
                invert=False, device="auto", dtype="float32", depth_model=None, subject_mask=None,
                background_weight=0.0, single_file_config="", control_model=""):
        from midas_diffusion.pipelines import pipeline

        get_spec("method").check(method)
        settings = depth_settings(resolution, percentile_low, percentile_high, gamma, invert)
        kwargs = dict(num_inference_steps=get_spec("steps").check(steps),
                      guidance_scale=get_spec("guidance").check(guidance),
                      negative_prompt=negative_prompt or None, output_type="np",
                      background_weight=get_spec("background_weight").check(background_weight), **settings)
        if method == "depth2img":
            kwargs["strength"] = get_spec("strength").check(strength)
        dtype_t = runtime.resolve_dtype(dtype)
        common = dict(method=method, base=_model_path(base, "checkpoints"),
                      single_file_config=single_file_config.strip() or None,
                      control_model=_model_path(control_model, "controlnet"),
                      dtype=None if dtype_t == torch.float32 else dtype_t,
                      device=runtime.resolve_device(device),
                      depth_model=_depth_component(depth_model) if depth_model is not None else None)
        images, maps = [], []
        for i, frame in enumerate(image):
            mask = None
            if subject_mask is not None:
                mask = subject_mask[min(i, subject_mask.shape[0] - 1)] if subject_mask.ndim == 3 else subject_mask
                if not mask.any():  # e.g. Load Image's 64x64 placeholder for an image without alpha
                    mask = None
            out = pipeline(frame[..., :3].permute(2, 0, 1)[None].float().cpu(), prompt, seed=int(seed) + i,
                           background_mask=mask, **common, **kwargs)
            images.append(torch.from_numpy(out.images[0]).float())
            maps.append(out.disparity[0, 0].float().cpu())
        if depth_model is not None:  # the pipeline may have moved the shared network: keep the estimator in step
            param = next(depth_model.model.parameters())
            depth_model.device, depth_model.dtype = param.device, param.dtype
        return (torch.stack(images).clamp(0, 1).contiguous(), torch.stack(maps).contiguous())


class MidasLDM3DTextToRGBD:
    """Text to an RGB image and its depth (LDM3D, ``pipelines.api.load_rgbd_pipeline``, cached);
    depth comes out as MASK [B,H,W] float32 in [0,1] (near = 1, ready for the export node)."""

    REQUIRES = (("midas_diffusion.pipelines", "MidasLDM3DPipeline"), ("midas_diffusion.pipelines.api", "load_rgbd_pipeline"))
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("rgb", "depth")
    FUNCTION = "generate"
    CATEGORY = CATEGORY
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        base = ("STRING", {"default": "Intel/ldm3d-4c", "tooltip": "Intel/ldm3d-4c, Intel/ldm3d, Intel/ldm3d-pano or a folder"})
        return {"required": {**_inputs("prompt"), "base": base,
                             **_inputs("negative_prompt", "width", "height", "batch_size", "steps", "guidance",
                                       "seed", "device", "dtype")}}

    def generate(self, prompt, base="Intel/ldm3d-4c", negative_prompt="", width=512, height=512, batch_size=1,
                 steps=30, guidance=7.5, seed=0, device="auto", dtype="float32"):
        from midas_diffusion.pipelines.api import load_rgbd_pipeline

        if not str(prompt).strip():
            raise ValueError("prompt must be a non-empty string")
        dtype_t = runtime.resolve_dtype(dtype)
        pipe = load_rgbd_pipeline(base.strip() or None, dtype=None if dtype_t == torch.float32 else dtype_t,
                                  device=runtime.resolve_device(device))
        out = pipe(prompt, height=get_spec("height").check(height), width=get_spec("width").check(width),
                   num_inference_steps=get_spec("steps").check(steps),
                   guidance_scale=get_spec("guidance").check(guidance), negative_prompt=negative_prompt or None,
                   num_images_per_prompt=get_spec("batch_size").check(batch_size), seed=int(seed), output_type="np")
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


def _output_dir(output_dir: str) -> Path:
    if output_dir.strip():
        return Path(output_dir).expanduser()
    try:
        import folder_paths  # ComfyUI's output folder

        return Path(folder_paths.get_output_directory())
    except ImportError:
        return Path("output")


class MidasExportRGBD:
    """Write each frame's RGB + disparity as a PLY point cloud or a GLB mesh; returns the paths."""

    REQUIRES = (("midas_diffusion.rgbd", "export_ply"), ("midas_diffusion.rgbd", "export_glb"),
                ("trimesh", "Trimesh"))
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("paths",)
    FUNCTION = "export"
    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"image": ("IMAGE",), "disparity": ("MASK",),
                         **_inputs("format", "fov_deg", "near", "far", "max_depth_jump"),
                         "filename_prefix": ("STRING", {"default": "midas_rgbd"})},
            "optional": {"output_dir": ("STRING", {"default": "", "tooltip": "empty = ComfyUI's output folder"})},
        }

    def export(self, image, disparity, format="ply", fov_deg=60.0, near=1.0, far=10.0, max_depth_jump=0.1,
               filename_prefix="midas_rgbd", output_dir=""):
        from midas_diffusion.rgbd import export_glb, export_ply  # (re-exported by pipelines.rgbd; no diffusers needed)

        get_spec("format").check(format)
        if disparity.ndim == 2:
            disparity = disparity[None]
        if disparity.shape[0] not in (1, image.shape[0]):
            raise ValueError(f"disparity has {disparity.shape[0]} frames but image has {image.shape[0]}")
        folder = _output_dir(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        paths: List[str] = []
        for i, frame in enumerate(image):
            d = disparity[min(i, disparity.shape[0] - 1)].float()
            if tuple(d.shape) != tuple(frame.shape[:2]):
                d = torch.nn.functional.interpolate(d[None, None], size=tuple(frame.shape[:2]), mode="bilinear",
                                                    align_corners=False)[0, 0]
            rgb = frame[..., :3].float().clamp(0, 1).cpu().numpy()
            d = d.clamp(0, 1).cpu().numpy()
            path = folder / f"{filename_prefix}_{i:05d}.{format}"
            camera = dict(fov_deg=float(fov_deg), near=float(near), far=float(far))
            if format == "ply":
                export_ply(path, rgb, d, **camera)
            else:
                export_glb(path, rgb, d, max_depth_jump=float(max_depth_jump), **camera)
            paths.append(str(path))
        return ("\n".join(paths),)


NODES = (
    ("MidasLoadDepthModel", MidasLoadDepthModel, "Load MiDaS depth model"),
    ("MidasEstimateDepth", MidasEstimateDepth, "MiDaS depth estimate"),
    ("MidasDepthStylize", MidasDepthStylize, "MiDaS depth stylize"),
    ("MidasLDM3DTextToRGBD", MidasLDM3DTextToRGBD, "LDM3D text to RGBD"),
    ("MidasExportRGBD", MidasExportRGBD, "Export RGBD to PLY/GLB"),
)
DISABLED: Dict[str, str] = {}


def _missing(requires) -> str:
    for module, attribute in requires:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            return f"cannot import {module} ({exc})"
        if not hasattr(mod, attribute):
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
            print(f"[midas-diffusion] node {node_id} disabled: {reason.splitlines()[0]}")
            continue
        classes[node_id] = cls
        names[node_id] = display
    return classes, names


def __getattr__(name: str):
    """``from midas_diffusion.ui.comfyui import NODE_CLASS_MAPPINGS`` runs ``load_nodes()`` on first use."""
    if name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        classes, names = load_nodes()
        globals().update(NODE_CLASS_MAPPINGS=classes, NODE_DISPLAY_NAME_MAPPINGS=names)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
