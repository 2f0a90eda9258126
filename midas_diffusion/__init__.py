"""midas-diffusion: the MiDaS v3.1 depth zoo on current timm.

>>> import midas_diffusion
>>> midas_diffusion.list_models()[:2]
['dpt_beit_large_512', 'dpt_beit_large_384']
"""

from . import zoo as _zoo  # registers the models
from ._registry import DEFAULT_MODEL, get_model_spec, list_models
from .checkpoints import CheckpointError
from .config import ModelSpec, PreprocessConfig, WeightFile
from .estimator import DepthEstimator
from .factory import create_model
from .images import ImageError
from .outputs import DepthOutput
from .precision import resolve_dtype
from .transforms import network_input_size, normalize_disparity
from .weights import WeightsNotFoundError, default_weights_dir

__all__ = [
    "DEFAULT_MODEL",
    "CheckpointError",
    "DepthEstimator",
    "DepthOutput",
    "ImageError",
    "ModelSpec",
    "PreprocessConfig",
    "WeightFile",
    "WeightsNotFoundError",
    "create_model",
    "default_weights_dir",
    "get_model_spec",
    "list_models",
    "network_input_size",
    "normalize_disparity",
    "resolve_dtype",
]
__version__ = "0.1.0"
