"""midas-diffusion: the MiDaS v3.1 depth zoo on current timm.

>>> import midas_diffusion
>>> midas_diffusion.list_models()[:2]
['dpt_beit_large_512', 'dpt_beit_large_384']
"""

from .zoo import specs as _specs  # noqa: F401  (registers the models)
from .zoo import specs_depth_anything as _specs_depth_anything  # noqa: F401  (registers Depth Anything)
from .zoo.registry import DEFAULT_MODEL, get_model_spec, list_models
from .loading.checkpoints import CheckpointError
from .zoo.config import ModelSpec, PreprocessConfig, WeightFile
from .inference.estimator import DepthEstimator
from .loading.factory import create_model
from .io.images import ImageError
from .inference.outputs import DepthOutput
from .inference.precision import resolve_dtype
from .inference.transforms import network_input_size, normalize_disparity
from .loading.weights import WeightsNotFoundError, default_weights_dir

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
