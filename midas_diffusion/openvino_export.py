"""The documented path ``midas_diffusion.openvino_export``: a plain re-export of ``midas_diffusion.inference.openvino_export``."""

from .inference.openvino_export import (  # noqa: F401
    IR_NAME,
    OpenVINODepthModel,
    export_openvino,
    openvino_estimator,
)

__all__ = [
    "IR_NAME",
    "OpenVINODepthModel",
    "export_openvino",
    "openvino_estimator",
]
