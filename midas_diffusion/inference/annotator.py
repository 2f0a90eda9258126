"""Depth columns for batches of samples: the model-holding callable that data engines map over batches.

``DepthAnnotator(model=...)`` loads its ``DepthEstimator`` once; called with a batch (a dict of columns,
as Ray Data's ``map_batches`` passes it: ``__key__``, ``jpg``/``png``/..., ``txt`` ...) it decodes each
row's image (encoded bytes, or an ``HxWxC`` array where the engine decoded it), runs images of equal
network size together and returns the batch with the depth columns added: ``depth.png`` (16-bit), the
other ``formats`` (``depth.npy`` ...) and ``midas.json`` (settings and model). A row whose image
cannot be read is left out and named on stderr. Nothing here imports a data engine.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..io.images import ImageError, load_image_bytes, to_compact_tensor
from ..io.shards import IMAGE_FIELDS, SETTINGS_FIELD, depth_fields
from ..io.writers import FORMATS

__all__ = ["DepthAnnotator", "depth_settings"]


def depth_settings(est, formats: Sequence[str], percentile: Optional[Tuple[float, float]] = None,
                   gamma: float = 1.0, invert: bool = False, tile_overlap: Optional[float] = None) -> bytes:
    """The ``midas.json`` of a sample: the model and every setting its depth fields depend on (the same
    bytes for every sample of a run, wherever it ran)."""
    from .. import __version__

    settings: Dict[str, Any] = {
        "model": est.model_name,
        "net_size": list(est.preprocess.net_size),
        "keep_aspect_ratio": est.preprocess.keep_aspect_ratio,
        "dtype": str(est.dtype).replace("torch.", ""),
        "percentile": list(percentile) if percentile else None,
        "gamma": gamma,
        "invert": invert,
        "tiles": tile_overlap is not None,
        "tile_overlap": tile_overlap,
        "fields": sorted(depth_fields_names(formats)),
        "disparity": "depth.png holds relative inverse depth (disparity), 0..65535 = far..near"
        if not invert else "depth.png holds relative inverse depth (disparity) inverted, 0..65535 = near..far",
        "midas_diffusion": __version__,
    }
    return json.dumps(settings, sort_keys=True).encode() + b"\n"


def depth_fields_names(formats: Sequence[str]) -> List[str]:
    from ..io.writers import SUFFIXES

    return ["depth" + SUFFIXES[fmt] for fmt in formats]


def image_columns(columns: Sequence[str]) -> List[str]:
    """The image columns of a batch in ``IMAGE_FIELDS`` order (a row takes the first it has: datasets mixing
    ``jpg`` and ``png`` samples have both columns, with None where a row lacks one)."""
    names = {c.lower(): c for c in columns}
    found = [names[f] for f in IMAGE_FIELDS if f in names]
    if not found:
        raise ValueError(f"no image column in {sorted(columns)}; expected one of {', '.join(IMAGE_FIELDS[:4])} "
                         "(or pass image_column=...)")
    return found


class DepthAnnotator:
    """A callable holding one ``DepthEstimator``: ``annotator(batch) -> batch + depth columns``.

    ``model``: a zoo name, checkpoint file or saved folder (as ``DepthEstimator.from_pretrained``), or
    ``estimator=`` an estimator already built. ``formats``: of ``png16`` (``depth.png``), ``npy``, ``pfm``,
    ``preview``. ``device``: ``auto`` (the GPU a worker was given, else the CPU). ``batch_size``: images
    of one network size per forward pass."""

    def __init__(self, model: Optional[str] = None, *, estimator=None, formats: Sequence[str] = ("png16",),
                 image_column: Optional[str] = None, device: str = "auto", dtype: str = "auto",
                 batch_size: int = 8, resolution: Optional[int] = None, square: bool = False,
                 checkpoint: Optional[str] = None, weights_dir: Optional[str] = None,
                 percentile: Optional[Tuple[float, float]] = None, gamma: float = 1.0, invert: bool = False,
                 max_pixels: Optional[int] = None):
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise ValueError(f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if estimator is None:
            import torch

            from ..zoo.registry import DEFAULT_MODEL
            from .devices import resolve_device
            from .estimator import DepthEstimator

            kwargs = {"max_pixels": max_pixels} if max_pixels else {}
            estimator = DepthEstimator.from_pretrained(model or DEFAULT_MODEL, checkpoint=checkpoint,
                                                       weights_dir=weights_dir, resolution=resolution,
                                                       square=square or None, progress=False,
                                                       dtype=torch.float32, **kwargs)
            estimator.to(resolve_device(device), dtype)
        self.estimator = estimator
        self.formats = tuple(formats)
        self.image_column = image_column
        self.batch_size = batch_size
        self.percentile, self.gamma, self.invert = percentile, gamma, invert
        self.settings = depth_settings(estimator, self.formats, percentile, gamma, invert)

    def __call__(self, batch: Mapping[str, Any]) -> Dict[str, Any]:
        columns = {name: list(values) for name, values in batch.items()}
        if not columns:
            return {}
        candidates = [self.image_column] if self.image_column else image_columns(list(columns))
        rows = len(columns[candidates[0]])
        keys = columns.get("__key__") or [str(i) for i in range(rows)]
        good, images = [], []
        for row in range(rows):
            value = next((columns[c][row] for c in candidates if not _missing(columns[c][row])), None)
            try:
                images.append(self._image(value, str(keys[row])))
                good.append(row)
            except ImageError as exc:
                print(f"error: {exc}", file=sys.stderr)  # the message names the key
        outs = self.estimator.estimate_each(images, percentile=self.percentile, gamma=self.gamma,
                                            invert=self.invert, batch_size=self.batch_size) if images else []
        # a field a row lacks comes as None or NaN (engines fill mixed schemas so): None, as writers skip it
        result: Dict[str, Any] = {name: _column([None if _missing(values[r]) else values[r] for r in good])
                                  for name, values in columns.items()}
        fields = [depth_fields(out.disparity[0], out.raw[0], self.formats) for out in outs]
        for name in depth_fields_names(self.formats):
            result[name] = _column([f[name] for f in fields])
        result[SETTINGS_FIELD] = _column([self.settings] * len(good))
        return result

    def _image(self, value: Any, key: str):
        max_pixels = self.estimator.max_pixels
        if isinstance(value, (bytes, bytearray, memoryview)):
            return to_compact_tensor(load_image_bytes(bytes(value), key, max_pixels), max_pixels)
        if isinstance(value, np.ndarray) and value.ndim in (2, 3) and value.dtype != object:
            return to_compact_tensor(value, max_pixels)
        raise ImageError(f"cannot read {key}: an image column holds encoded bytes or HxWxC arrays, "
                         f"got {type(value).__name__}")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _column(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
