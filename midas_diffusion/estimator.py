"""``DepthEstimator``: a zoo model coupled with its own preprocessing."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import get_model_spec, list_models, resolve_name
from .checkpoints import CheckpointLike, identify_checkpoint, load_into, read_state_dict
from .config import ModelSpec, PreprocessConfig
from .images import DEFAULT_MAX_PIXELS, ImageLike, to_rgb_tensors
from .outputs import DepthOutput
from .transforms import network_input_size, normalize, normalize_disparity, resize, with_resolution
from .weights import resolve_weights

CONFIG_NAME = "midas_depth_config.json"
WEIGHTS_NAME = "model.safetensors"


def _spec_for_hub_id(name: str) -> Optional[ModelSpec]:
    for model_name in list_models():
        spec = get_model_spec(model_name)
        if spec.hf_hub_id and spec.hf_hub_id.lower() == name.lower():
            return spec
    return None


def _is_flat(image: torch.Tensor, tolerance: float = 1.0 / 512) -> bool:
    """True for an image whose every pixel has the same color (within half an 8-bit step)."""
    flat = image.reshape(image.shape[0], -1)
    return bool(((flat.max(dim=1).values - flat.min(dim=1).values) <= tolerance).all())


class DepthEstimator:
    """Estimate normalized inverse depth (disparity) with one zoo model.

    >>> est = DepthEstimator.from_pretrained("dpt_swin2_tiny_256")      # doctest: +SKIP
    >>> out = est(image)                                                # doctest: +SKIP
    >>> out.disparity.shape        # (1, 1, H, W), float32 in [0, 1], near = 1

    The caller owns device and dtype: ``est.to("cuda", torch.float16)``.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: ModelSpec,
        preprocess: Optional[PreprocessConfig] = None,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    ):
        self.model = model.eval()
        self.spec = spec
        self.preprocess = preprocess or spec.preprocess
        self.max_pixels = max_pixels
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.reduced = False
        self.memory_format = torch.contiguous_format
        self.compiled = False
        self.forward_count = 0  # how many network passes ran (for caching checks and stats)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, os.PathLike],
        checkpoint: Optional[CheckpointLike] = None,
        *,
        model: Optional[str] = None,
        weights_dir: Optional[os.PathLike] = None,
        allow_download: Optional[bool] = None,
        resolution: Optional[int] = None,
        square: Optional[bool] = None,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
        reduced: bool = False,
        progress: bool = True,
    ) -> "DepthEstimator":
        """Build from a zoo name (or alias, or transformers hub id), a checkpoint file, or a folder.

        * a name: weights from ``checkpoint`` if given, else the weights folder / HF cache / the
          MiDaS release (see ``weights.resolve_weights``);
        * a ``.pt``/``.pth``/``.safetensors`` file: the model is ``model`` if given, else identified
          from the checkpoint's keys;
        * a folder written by ``save_pretrained``.

        ``resolution`` sets the processing size (MiDaS ``--height``), ``square=True`` disables
        keep-aspect (MiDaS ``--square``); ``reduced=True`` builds a tiny random model (tests).
        """
        path = Path(name_or_path) if not isinstance(name_or_path, str) or os.path.exists(name_or_path) else None
        if path is not None and path.is_dir():
            return cls._from_folder(path, max_pixels=max_pixels)
        from .checkpoints import read_key_shapes
        from .factory import create_model, load_model

        if path is not None:
            # names and shapes only (nothing of the weights is read): the weights are read once, below
            name = model or identify_checkpoint(read_key_shapes(path))
            if name is None:
                raise ValueError(f"{path} does not match any zoo model; pass model=NAME to see which keys differ")
            spec = get_model_spec(name)
            checkpoint = path
        else:
            spec = _spec_for_hub_id(str(name_or_path)) or get_model_spec(resolve_name(str(name_or_path)))
        if checkpoint is None and not reduced:
            checkpoint = resolve_weights(spec, weights_dir, allow_download=allow_download, progress=progress)
        if checkpoint is None:  # reduced=True without weights: a tiny random model
            net = create_model(spec.name, reduced=True)
        else:  # built without random weights; one copy of the weights in memory
            net = load_model(spec, checkpoint, reduced=reduced)
        pre = with_resolution(spec.preprocess, resolution, square)
        est = cls(net, spec, pre, max_pixels=max_pixels)
        est.reduced = reduced
        return est

    @classmethod
    def _from_folder(cls, folder: Path, max_pixels: Optional[int]) -> "DepthEstimator":
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{folder} has no {CONFIG_NAME}; it was not written by save_pretrained")
        config = json.loads(config_path.read_text())
        spec = get_model_spec(config["model_name"])
        reduced = bool(config.get("reduced", False))
        from .factory import load_model

        net = load_model(spec, folder / WEIGHTS_NAME, reduced=reduced)
        pre = PreprocessConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["preprocess"].items()})
        est = cls(net, spec, pre, max_pixels=config.get("max_pixels", max_pixels))
        est.reduced = reduced
        return est

    def save_pretrained(self, folder: Union[str, os.PathLike]) -> Path:
        """Write the weights (safetensors) and settings so ``from_pretrained(folder)`` restores them."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.model.state_dict().items()}
        tmp = folder / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp))
        os.replace(tmp, folder / WEIGHTS_NAME)
        config = {
            "model_name": self.spec.name,
            "reduced": bool(getattr(self, "reduced", False)),
            "preprocess": asdict(self.preprocess),
            "max_pixels": self.max_pixels,
        }
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        return folder

    # ------------------------------------------------------------------ device / dtype
    def to(
        self,
        device: Union[str, torch.device, None] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        memory_format: Optional[torch.memory_format] = None,
    ) -> "DepthEstimator":
        """Move the model; ``memory_format=torch.channels_last`` also feeds the network NHWC inputs."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if dtype is not None and dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
        if memory_format is not None and memory_format not in (torch.contiguous_format, torch.channels_last):
            raise ValueError(f"memory_format must be torch.contiguous_format or torch.channels_last, got {memory_format}")
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = dtype
        if memory_format is not None:
            self.memory_format = memory_format
        self.model.to(device=self.device, dtype=self.dtype, memory_format=self.memory_format)
        return self

    def compile(self, **kwargs: Any) -> "DepthEstimator":
        """Opt in to ``torch.compile`` of the network (in place: weights and ``save_pretrained`` are
        unchanged). ``kwargs`` go to ``torch.compile`` (``mode="max-autotune"``, ``dynamic=True``,
        ``backend=...``). The first call at each new input size compiles, which takes a while; call
        it after ``.to(...)``."""
        self.model.compile(**kwargs)
        self.compiled = True
        return self

    def at_resolution(self, resolution: Optional[int]) -> "DepthEstimator":
        """The same network at another processing resolution (MiDaS ``--height``): a view sharing the
        weights, device, dtype and memory format; nothing reloads. ``None``/0 returns ``self``."""
        if not resolution:
            return self
        view = DepthEstimator(self.model, self.spec, with_resolution(self.preprocess, resolution), self.max_pixels)
        view.device, view.dtype, view.memory_format = self.device, self.dtype, self.memory_format
        return view

    @property
    def model_name(self) -> str:
        return self.spec.name

    # ------------------------------------------------------------------ inference
    def network_input_size(self, height: int, width: int) -> Tuple[int, int]:
        return network_input_size(height, width, self.preprocess)

    @torch.inference_mode()
    def predict_raw(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the network on a prepared, normalized ``(B,3,h,w)`` batch; returns ``(B,h,w)`` float32."""
        self.forward_count += 1
        x = batch.to(device=self.device, dtype=self.dtype).contiguous(memory_format=self.memory_format)
        return self.model(x).float()

    @torch.inference_mode()
    def __call__(
        self,
        images: Union[ImageLike, Sequence[ImageLike]],
        *,
        percentile: Optional[Tuple[float, float]] = None,
        gamma: float = 1.0,
        invert: bool = False,
        batch_size: int = 8,
    ) -> DepthOutput:
        """Depth of one image or a list of images (sizes may differ).

        Normalization is per image: min-max (default) or min-max after clipping to
        ``percentile=(low, high)``; then ``gamma``; ``invert=True`` makes near = 0.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        rgb = to_rgb_tensors(images, self.max_pixels)
        raws: List[Optional[torch.Tensor]] = [None] * len(rgb)
        # group images of equal network size into batches
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i, img in enumerate(rgb):
            groups.setdefault(self.network_input_size(img.shape[-2], img.shape[-1]), []).append(i)
        for size, indices in groups.items():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                prepared = torch.cat(
                    [
                        normalize(
                            resize(rgb[i].unsqueeze(0), size, self.preprocess.interpolation),
                            self.preprocess.mean,
                            self.preprocess.std,
                        )
                        for i in chunk
                    ]
                )
                prediction = self.predict_raw(prepared).cpu()
                for j, i in enumerate(chunk):
                    target = rgb[i].shape[-2:]
                    raws[i] = F.interpolate(
                        prediction[j : j + 1, None], size=tuple(target), mode="bicubic", align_corners=False
                    )
        disparities = [
            # a flat image has no depth cue: its map is flat too (not min-max-stretched border noise)
            torch.full_like(r, 1.0 if invert else 0.0) if _is_flat(img) else normalize_disparity(r, percentile, gamma, invert)
            for r, img in zip(raws, rgb)
        ]
        same_size = len({tuple(r.shape) for r in raws}) == 1
        settings = {
            "model_name": self.spec.name,
            "percentile": percentile,
            "gamma": gamma,
            "invert": invert,
            "net_size": tuple(self.preprocess.net_size),
            "keep_aspect_ratio": self.preprocess.keep_aspect_ratio,
        }
        return DepthOutput(
            disparity=torch.cat(disparities) if same_size else disparities,
            raw=torch.cat(raws) if same_size else raws,
            model_name=self.spec.name,
            settings=settings,
        )

    def __repr__(self) -> str:
        return f"DepthEstimator({self.spec.name!r}, device={self.device}, dtype={self.dtype})"
