"""``MidasDepthEstimator``: a zoo depth model as a diffusers component.

It subclasses ``ModelMixin`` and ``ConfigMixin``, so a pipeline's ``save_pretrained`` writes its
weights and settings (model name, processing resolution, normalization) and ``from_pretrained``
restores it. Depth is cached by (image content, model, settings): trying ten prompts on one image
runs the depth model once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from midas_diffusion import DepthEstimator, get_model_spec
from midas_diffusion.images import DEFAULT_MAX_PIXELS, to_rgb_tensors


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
    """Content hash of a (3,H,W) float image (its exact float32 bytes and shape)."""
    data = rgb.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(data.tobytes(), digest_size=20, person=str(data.shape).encode()[:16]).hexdigest()


class MidasDepthEstimator(ModelMixin, ConfigMixin):
    """Zoo model ``model_name`` with its MiDaS preprocessing; ``estimate(images)`` -> disparity.

    ``reduced=True`` builds the tiny test variant of the same architecture.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        model_name: str = "dpt_beit_large_512",
        reduced: bool = False,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
        cache_size: int = 16,
    ):
        super().__init__()
        spec = get_model_spec(model_name)
        self.net = spec.build(spec.arch.reduced() if reduced else spec.arch).eval()
        self._spec = spec
        self._cache: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
        self.depth_runs = 0  # network passes (a cache hit runs none)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "MidasDepthEstimator":
        """A saved estimator (its folder or a pipeline's ``depth_estimator`` subfolder).

        Built with real tensors, then loaded: timm's SwinV2 and ViT-hybrid encoders compute buffers
        while they are built, which diffusers' default empty-weight (meta) construction cannot do.
        A ``device_map`` is ignored here; move the estimator with ``.to()``.
        """
        kwargs["low_cpu_mem_usage"] = False
        kwargs.pop("device_map", None)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def from_zoo(
        cls,
        model_name: str,
        checkpoint=None,
        weights_dir=None,
        allow_download: Optional[bool] = None,
        reduced: bool = False,
        **kwargs,
    ) -> "MidasDepthEstimator":
        """A component holding the zoo model with its weights (see ``DepthEstimator.from_pretrained``)."""
        est = DepthEstimator.from_pretrained(
            model_name, checkpoint, weights_dir=weights_dir, allow_download=allow_download, reduced=reduced
        )
        component = cls(model_name=est.model_name, reduced=est.reduced, **kwargs)
        component.net.load_state_dict(est.model.state_dict())
        return component

    @property
    def model_name(self) -> str:
        return self._spec.name

    def _estimator(self, resolution: Optional[int]) -> DepthEstimator:
        est = DepthEstimator(self.net, self._spec, max_pixels=self.config.max_pixels)
        param = next(self.net.parameters())
        est.device, est.dtype = param.device, param.dtype
        return est.at_resolution(resolution)

    def clear_cache(self) -> None:
        self._cache.clear()

    @torch.no_grad()
    def estimate(self, images: Any, settings: DepthSettings = DepthSettings()) -> List[torch.Tensor]:
        """Disparity of each image: a list of (1,1,H,W) float32 CPU tensors in [0,1], near = 1."""
        rgb = to_rgb_tensors(images, self.config.max_pixels)
        out: List[Optional[torch.Tensor]] = [None] * len(rgb)
        todo = []
        for i, img in enumerate(rgb):
            key = (image_fingerprint(img), self.model_name, settings.key())
            if key in self._cache:
                self._cache.move_to_end(key)
                out[i] = self._cache[key]
            else:
                todo.append((i, key))
        if todo:
            est = self._estimator(settings.processing_resolution)
            result = est(
                [rgb[i] for i, _ in todo], percentile=settings.percentile, gamma=settings.gamma, invert=settings.invert
            )
            self.depth_runs += est.forward_count
            for (i, key), disparity in zip(todo, result.per_image("disparity")):
                value = disparity.unsqueeze(0)
                out[i] = value
                self._cache[key] = value
                while len(self._cache) > self.config.cache_size:
                    self._cache.popitem(last=False)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The raw network: normalized (B,3,H,W) -> (B,H,W)."""
        return self.net(x)
