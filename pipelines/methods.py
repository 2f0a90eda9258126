"""The conditioning methods: one definition of their names and default models.

Plain data, importable without diffusers (the front ends build their method pickers from it). Each
pipeline class names its method itself (``method_name``); ``load.PIPELINES`` maps the names to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional


@dataclass(frozen=True)
class MethodSpec:
    """A conditioning method: its default base and control model."""

    name: str
    default_base: str
    control_kind: Optional[str] = None  # "controlnet" | "controlnet_union" | "adapter"
    default_control: Optional[str] = None
    description: str = ""


# the default method first: front ends list them in this order
METHODS: Dict[str, MethodSpec] = {
    m.name: m
    for m in (
        MethodSpec("controlnet", "stable-diffusion-v1-5/stable-diffusion-v1-5",
                   "controlnet", "lllyasviel/control_v11f1p_sd15_depth", "SD 1.5 + depth ControlNet"),
        MethodSpec("depth2img", "sd2-community/stable-diffusion-2-depth",
                   description="SD2 depth UNet (5 input channels); strength controls how much changes"),
        MethodSpec("controlnet-sdxl", "stabilityai/stable-diffusion-xl-base-1.0",
                   "controlnet", "diffusers/controlnet-depth-sdxl-1.0", "SDXL + depth ControlNet"),
        MethodSpec("controlnet-union", "stabilityai/stable-diffusion-xl-base-1.0",
                   "controlnet_union", "xinsir/controlnet-union-sdxl-1.0", "SDXL + ControlNet-Union (depth mode)"),
        MethodSpec("t2i-adapter", "stabilityai/stable-diffusion-xl-base-1.0",
                   "adapter", "TencentARC/t2i-adapter-depth-midas-sdxl-1.0", "SDXL + depth T2I-Adapter"),
    )
}
METHOD_NAMES = tuple(METHODS)
DEFAULT_METHOD = "controlnet"


def get_method(method: str) -> MethodSpec:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[method]
