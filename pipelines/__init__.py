"""Depth-conditioned Stable Diffusion pipelines fed by the midas_diffusion zoo.

>>> from midas_diffusion.pipelines import pipeline
>>> out = pipeline(photo, "a watercolor castle", method="controlnet", depth_model="dpt_swin2_tiny_256")  # doctest: +SKIP
>>> out.images[0], out.disparity, out.settings["seed"]                                                   # doctest: +SKIP

The names below are imported on first use, so ``midas_diffusion.pipelines.methods`` (plain data)
is importable where diffusers is not installed.
"""

from importlib import import_module

_EXPORTS = {
    "CancelToken": "cancel",
    "Cancelled": "cancel",
    "METHODS": "methods",
    "DepthSettings": "components",
    "MidasControlNetPipeline": "pipeline_midas_controlnet",
    "MidasControlNetUnionXLPipeline": "pipeline_midas_controlnet_sdxl",
    "MidasControlNetXLPipeline": "pipeline_midas_controlnet_sdxl",
    "MidasDepth2ImgPipeline": "pipeline_midas_depth2img",
    "MidasDepthEstimator": "components",
    "MidasLDM3DPipeline": "pipeline_midas_ldm3d",
    "MidasPipelineOutput": "outputs",
    "MidasT2IAdapterXLPipeline": "pipeline_midas_t2i_adapter_xl",
    "RGBDPipelineOutput": "pipeline_midas_ldm3d",
    "clear_cache": "load",
    "load_pipeline": "load",
    "load_rgbd_pipeline": "load_rgbd",
    "pipeline": "api",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
