"""Frozen configuration records: preprocessing, weight sources and the model spec.

Architecture configs live next to the code that builds them (``backbones/*.py`` and
``decoder.py``); this module holds what every model shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)

RESIZE_METHODS = ("minimal", "upper_bound", "lower_bound")
OUTPUT_INTERPOLATIONS = ("bicubic", "bilinear_align_corners")
PREDICTIONS = ("disparity", "metres")


@dataclass(frozen=True)
class PreprocessConfig:
    """How an RGB image in [0, 1] becomes the network input of one model.

    Mirrors MiDaS ``transforms.Resize`` + ``NormalizeImage``: the image is scaled towards
    ``net_size`` (``(height, width)``) by ``resize_method``, each side rounded to
    ``ensure_multiple_of`` (half to even, as ``np.round``), then normalized by ``mean``/``std``.
    ``keep_aspect_ratio=False`` always gives exactly ``net_size`` (MiDaS' ``--square``).
    """

    net_size: Tuple[int, int]
    keep_aspect_ratio: bool = True
    resize_method: str = "minimal"
    ensure_multiple_of: int = 32
    mean: Tuple[float, float, float] = HALF_MEAN
    std: Tuple[float, float, float] = HALF_STD
    interpolation: str = "bicubic"
    # Smallest side the network may see. MiDaS lets extreme aspect ratios round a side
    # to 0 and crashes; we clamp to this many pixels instead.
    min_side: int = 32
    # Swin, SwinV2 and LeViT only run at their training size.
    fixed_size: bool = False
    # How the prediction goes back to the image size: "bicubic" (MiDaS ``run.py``, align_corners
    # False) or "bilinear_align_corners" (Depth Anything's ``infer_image``).
    output_interpolation: str = "bicubic"

    def __post_init__(self):
        if self.resize_method not in RESIZE_METHODS:
            raise ValueError(f"resize_method must be one of {RESIZE_METHODS}, got {self.resize_method!r}")
        if self.fixed_size and self.keep_aspect_ratio:
            raise ValueError("a fixed-size model cannot keep the aspect ratio")
        if self.output_interpolation not in OUTPUT_INTERPOLATIONS:
            raise ValueError(
                f"output_interpolation must be one of {OUTPUT_INTERPOLATIONS}, got {self.output_interpolation!r}"
            )


@dataclass(frozen=True)
class WeightFile:
    """The official MiDaS release file of a model."""

    url: str
    filename: str
    sha256: Optional[str] = None  # None where no published checksum is known


@dataclass(frozen=True)
class ModelSpec:
    """Everything the zoo knows about one model: how to build it, feed it and find its weights."""

    name: str
    build: Callable[..., Any]  # (arch_config) -> nn.Module, see model.py
    arch: Any  # frozen architecture config consumed by ``build``
    preprocess: PreprocessConfig
    official_weights: Optional[WeightFile] = None
    hf_hub_id: Optional[str] = None  # transformers checkpoint of the same model (DPT- or DepthAnythingForDepthEstimation)
    aliases: Tuple[str, ...] = ()
    description: str = ""
    params_m: float = 0.0
    # FPS on an RTX 3090 from the MiDaS v3.1 README (None where not listed).
    reference_fps: Optional[float] = None
    quality_rank: int = 0  # 1 = best zero-shot accuracy in the MiDaS README table
    # what ``model(x)`` predicts: "disparity" (relative inverse depth, up to scale and shift) or "metres"
    predicts: str = "disparity"
    max_depth: Optional[float] = None  # metres: the metric models' output range
    license: str = "MIT"

    def __post_init__(self):
        if self.predicts not in PREDICTIONS:
            raise ValueError(f"{self.name}: predicts must be one of {PREDICTIONS}, got {self.predicts!r}")

    @property
    def net_size(self) -> Tuple[int, int]:
        return self.preprocess.net_size
