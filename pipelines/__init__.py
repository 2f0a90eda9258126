"""Depth-conditioned Stable Diffusion pipelines fed by the midas_diffusion zoo.

>>> from midas_diffusion.pipelines import pipeline
>>> out = pipeline(photo, "a watercolor castle", method="controlnet", depth_model="dpt_swin2_tiny_256")  # doctest: +SKIP
>>> out.images[0], out.disparity, out.settings["seed"]                                                   # doctest: +SKIP
"""

from .api import METHODS, clear_cache, load_pipeline, pipeline
from .components import DepthSettings, MidasDepthEstimator
from .depth_conditioning import MidasPipelineOutput
from .pipeline_midas_controlnet import MidasControlNetPipeline
from .pipeline_midas_controlnet_sdxl import MidasControlNetUnionXLPipeline, MidasControlNetXLPipeline
from .pipeline_midas_depth2img import MidasDepth2ImgPipeline
from .pipeline_midas_ldm3d import MidasLDM3DPipeline, RGBDPipelineOutput
from .pipeline_midas_t2i_adapter_xl import MidasT2IAdapterXLPipeline

__all__ = [
    "METHODS",
    "DepthSettings",
    "MidasControlNetPipeline",
    "MidasControlNetUnionXLPipeline",
    "MidasControlNetXLPipeline",
    "MidasDepth2ImgPipeline",
    "MidasDepthEstimator",
    "MidasLDM3DPipeline",
    "MidasPipelineOutput",
    "MidasT2IAdapterXLPipeline",
    "RGBDPipelineOutput",
    "clear_cache",
    "load_pipeline",
    "pipeline",
]
