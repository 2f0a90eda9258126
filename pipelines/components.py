"""``MidasDepthEstimator``: a zoo ``DepthEstimator`` as a diffusers component.

The component does not own a network of its own: it wraps a ``DepthEstimator`` and registers that
estimator's model as its ``net`` submodule (the same object, no copy), so ``pipe.to(...)``, CPU
offload and ``save_pretrained`` act on the one network. ``from_estimator(est)`` wraps a loaded
estimator; ``from_zoo(name)`` loads one (memory-lean) and wraps it; ``from_pretrained(folder)``
reads what ``save_pretrained`` wrote without building random weights first (loading arguments given
to it, ``max_pixels`` and ``cache_size``, win over the ones the folder stored).

Depth is cached by (image content, settings), at most ``cache_size`` maps: trying ten prompts on
one image runs the depth model once.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from midas_diffusion import DEFAULT_MODEL, DepthEstimator, create_model, get_model_spec
from midas_diffusion.io.images import DEFAULT_MAX_PIXELS, CompactImages, to_compact_tensors

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
STORED = "stored"  # a loading argument left to what the saved folder holds


@dataclass(frozen=True)
class DepthSettings:
    """How a disparity map is made from an image: every field is part of the cache key."""

    processing_resolution: Optional[int] = None
    percentile: Optional[Tuple[float, float]] = None
    gamma: float = 1.0
    invert: bool = False

    def key(self) -> tuple:
        return (self.processing_resolution, tuple(self.percentile) if self.percentile else None, self.gamma, self.invert)


def image_fingerprint(rgb: torch.Tensor) -> str:
    """Content hash of a (C,H,W) image (its exact bytes, dtype and shape)."""
    data = rgb.detach().to("cpu").contiguous()
    raw = data.view(torch.uint8).numpy() if data.dtype != torch.bfloat16 else data.float().numpy()
    person = f"{tuple(data.shape)}{data.dtype}".encode()[:16]
    return hashlib.blake2b(raw.tobytes(), digest_size=20, person=person).hexdigest()


class MidasDepthEstimator(ModelMixin, ConfigMixin):
    """Zoo model ``model_name`` with its MiDaS preprocessing; ``estimate(images)`` -> disparity.

    Construct it with ``from_estimator``, ``from_zoo`` or ``from_pretrained``; calling the class
    directly builds the model with random weights (``reduced=True``: the tiny test variant).
    """

    config_name = "config.json"
    ignore_for_config = ["estimator"]  # the wrapped object itself is not configuration

    @register_to_config
    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        reduced: bool = False,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
        cache_size: int = 16,
        estimator: Optional[DepthEstimator] = None,
    ):
        super().__init__()
        if estimator is None:
            spec = get_model_spec(model_name)
            estimator = DepthEstimator(create_model(spec.name, reduced=reduced), spec, max_pixels=max_pixels)
            estimator.reduced = reduced
        self._estimator = estimator
        self.net = estimator.model  # the estimator's own network, registered (not copied)
        self._cache: "OrderedDict[tuple, tuple]" = OrderedDict()  # key -> (disparity, metres or None)
        self.depth_runs = 0  # network passes (a cache hit runs none)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_estimator(cls, estimator: DepthEstimator, cache_size: int = 16) -> "MidasDepthEstimator":
        """Wrap a loaded ``DepthEstimator``; the component and the estimator share one network."""
        if not isinstance(estimator, DepthEstimator):
            raise TypeError(f"from_estimator takes a midas_diffusion.DepthEstimator, got {type(estimator).__name__}")
        return cls(model_name=estimator.model_name, reduced=bool(getattr(estimator, "reduced", False)),
                   max_pixels=estimator.max_pixels, cache_size=cache_size, estimator=estimator)

    @classmethod
    def from_zoo(cls, model_name: str, checkpoint=None, weights_dir=None, allow_download: Optional[bool] = None,
                 reduced: bool = False, cache_size: int = 16) -> "MidasDepthEstimator":
        """Load the zoo model ``model_name`` (see ``DepthEstimator.from_pretrained``) and wrap it."""
        est = DepthEstimator.from_pretrained(model_name, checkpoint, weights_dir=weights_dir,
                                             allow_download=allow_download, reduced=reduced, dtype=torch.float32)
        return cls.from_estimator(est, cache_size=cache_size)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: Optional[str] = None, *,
                        max_pixels: Union[int, None, str] = STORED, cache_size: Optional[int] = None, **kwargs
                        ) -> "MidasDepthEstimator":
        """What ``save_pretrained`` wrote (this folder, or a pipeline's ``depth_estimator`` subfolder).

        The weights are read once and assigned to a model built without random weights, so loading
        needs about one copy of the weights in memory. ``max_pixels`` (None: no limit) and
        ``cache_size``, when given, win over the values the folder stored. ``torch_dtype``/``dtype``
        cast it; other diffusers loading arguments (``device_map``, ``low_cpu_mem_usage``, ...) do not
        apply: move the component with ``.to()``.

        >>> MidasDepthEstimator.from_pretrained("saved/depth_estimator", max_pixels=4_000_000)  # doctest: +SKIP
        """
        folder = Path(pretrained_model_name_or_path) / (subfolder or "")
        if not folder.is_dir():
            raise ValueError(f"{str(folder)!r} is not a folder written by MidasDepthEstimator.save_pretrained")
        config_path = folder / cls.config_name
        if not config_path.is_file():
            raise ValueError(f"{str(folder)!r} has no {cls.config_name}: not a saved MidasDepthEstimator")
        config = json.loads(config_path.read_text())
        weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
        if weights is None:
            raise ValueError(f"{str(folder)!r} holds no weights ({' or '.join(WEIGHT_FILES)})")
        from midas_diffusion.loading.checkpoints import OwnedStateDict, read_state_dict

        # the tensors were read for this load only: the model takes them without a copy
        state = OwnedStateDict((k[len("net."):], v) for k, v in read_state_dict(weights).items() if k.startswith("net."))
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype")) or torch.float32
        if max_pixels == STORED:
            max_pixels = config.get("max_pixels", DEFAULT_MAX_PIXELS)
        est = DepthEstimator.from_pretrained(
            config["model_name"], state, reduced=bool(config.get("reduced", False)), max_pixels=max_pixels, dtype=dtype)
        return cls.from_estimator(est, cache_size=int(cache_size if cache_size is not None else config.get("cache_size", 16)))

    # ------------------------------------------------------------------ use
    @property
    def estimator(self) -> DepthEstimator:
        """The wrapped ``DepthEstimator`` (same network as ``self.net``)."""
        return self._estimator

    @property
    def model_name(self) -> str:
        return self._estimator.model_name

    def clear_cache(self) -> None:
        self._cache.clear()

    def set_max_pixels(self, max_pixels: Optional[int]) -> "MidasDepthEstimator":
        """The largest image (in pixels; None: no limit) the component and its estimator accept."""
        if max_pixels is not None and (not isinstance(max_pixels, int) or max_pixels < 1):
            raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
        self.register_to_config(max_pixels=max_pixels)
        self._estimator.max_pixels = max_pixels
        return self

    @torch.no_grad()
    def estimate(self, images: Any, settings: DepthSettings = DepthSettings()) -> List[torch.Tensor]:
        """Disparity of each image: a list of (1,1,H,W) float32 tensors in [0,1], near = 1, on the
        estimator's device (the pipeline conditions there: nothing goes back to the CPU and over again).
        Images are read in their compact form (uint8 stays uint8) and hashed in it; images already
        compact (a ``CompactImages``, as the pipelines pass them) go to the estimator as they are."""
        return [disparity for disparity, _ in self._estimates(images, settings)]

    @torch.no_grad()
    def estimate_metres(self, images: Any, settings: DepthSettings = DepthSettings()) -> List[torch.Tensor]:
        """A metric model's depth of each image in metres: (1,1,H,W) float32 tensors on the estimator's
        device (from the same cache as ``estimate``: after it, no network pass); ``ValueError`` for a
        relative model."""
        if self._estimator.spec.predicts != "metres":
            raise ValueError(f"{self.model_name} predicts relative disparity, not metres")
        return [metres for _, metres in self._estimates(images, settings)]

    def _estimates(self, images: Any, settings: DepthSettings) -> List[tuple]:
        """``(disparity, metres or None)`` of each image, from the cache or one batched run per size."""
        rgb = to_compact_tensors(images, self.config.max_pixels)
        out: List[Optional[tuple]] = [None] * len(rgb)
        todo = []
        for i, img in enumerate(rgb):
            key = (image_fingerprint(img), settings.key())
            if key in self._cache:
                self._cache.move_to_end(key)
                out[i] = self._cache[key]
            else:
                todo.append((i, key))
        if todo:
            runner = self._estimator.at_resolution(settings.processing_resolution)
            by_size: "OrderedDict[tuple, list]" = OrderedDict()
            for i, key in todo:
                by_size.setdefault(tuple(rgb[i].shape), []).append((i, key))
            for group in by_size.values():  # one batched call per image size
                result = runner(CompactImages(rgb[i] for i, _ in group), percentile=settings.percentile, gamma=settings.gamma,
                                invert=settings.invert, output_device="same")
                metres = result.per_image("metres") if result.metres is not None else [None] * len(group)
                for (i, key), disparity, metric in zip(group, result.per_image("disparity"), metres):
                    out[i] = self._cache[key] = (disparity.unsqueeze(0), None if metric is None else metric.unsqueeze(0))
                    while len(self._cache) > self.config.cache_size:
                        self._cache.popitem(last=False)
                self.depth_runs += 1
        return out  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The raw network: normalized (B,3,H,W) -> (B,H,W)."""
        return self.net(x)
