"""midas-diffusion: the MiDaS v3.1 depth zoo on current timm."""

from . import zoo as _zoo  # registers the models
from ._registry import get_model_spec, list_models
from .checkpoints import CheckpointError
from .config import ModelSpec, PreprocessConfig, WeightFile
from .factory import create_model

__all__ = [
    "CheckpointError",
    "ModelSpec",
    "PreprocessConfig",
    "WeightFile",
    "create_model",
    "get_model_spec",
    "list_models",
]
__version__ = "0.1.0"
