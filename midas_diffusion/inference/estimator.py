"""``DepthEstimator``: a zoo model coupled with its own preprocessing."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..zoo.registry import get_model_spec, list_models, resolve_name
from ..loading.checkpoints import CheckpointLike, identify_checkpoint
from ..zoo.config import ModelSpec, PreprocessConfig
from ..io.images import DEFAULT_MAX_PIXELS, VALUE_SCALE, ImageLike, dense_view, to_compact_tensors, to_device
from .batching import group_batches
from .outputs import MIN_METRES, DepthOutput
from .openvino_backend import check_backend, openvino_network
from .precision import resolve_dtype
from .transforms import check_normalization, network_input_size, normalize_disparity, prepare_compact, resize_prediction, with_resolution
from ..loading.weights import resolve_weights

CONFIG_NAME = "midas_depth_config.json"
WEIGHTS_NAME = "model.safetensors"
_STORED = object()  # ``from_pretrained``'s max_pixels when not given: a folder's stored value, else the default


def _spec_for_hub_id(name: str) -> Optional[ModelSpec]:
    for model_name in list_models():
        spec = get_model_spec(model_name)
        if spec.hf_hub_id and spec.hf_hub_id.lower() == name.lower():
            return spec
    return None


def _is_flat(image: torch.Tensor, tolerance: float = 1.0 / 512) -> torch.Tensor:
    """Whether a compact ``(C,H,W)`` image has one color everywhere (within half an 8-bit step), as
    a bool tensor on the image's device (no sync): one cheap pass over its compact pixels."""
    values = dense_view(image)
    if values.dtype == torch.uint16:  # no uint16 min/max kernels
        values = values.view(torch.int16).to(torch.int32).bitwise_and_(0xFFFF)
    lo, hi = torch.aminmax(values)
    return (hi - lo).float() <= tolerance * VALUE_SCALE[image.dtype]


OutputDevice = Union[str, torch.device, None]


def _output_device(output_device: OutputDevice, device: torch.device) -> torch.device:
    if output_device is None or (isinstance(output_device, str) and output_device == "same"):
        return device
    try:
        return torch.device(output_device)
    except (RuntimeError, TypeError):
        raise ValueError(f"output_device must be a device, 'same' or None, got {output_device!r}") from None


def _joined(parts: List[torch.Tensor]) -> Optional[torch.Tensor]:
    """The batches' maps as one tensor (``None`` for none: a relative model's metres)."""
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _move(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``; GPU results land in pinned CPU memory (the caller synchronizes once)."""
    if t.device == device:
        return t
    if t.device.type == "cuda" and device.type == "cpu":
        return torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
    return t.to(device)


class DepthEstimator:
    """Estimate normalized inverse depth (disparity) with one zoo model.

    >>> est = DepthEstimator.from_pretrained("dpt_swin2_tiny_256")      # doctest: +SKIP
    >>> out = est(image)                                                # doctest: +SKIP
    >>> out.disparity.shape        # (1, 1, H, W), float32 in [0, 1], near = 1
    >>> outs = est.estimate_each([photo, other_size_photo])             # doctest: +SKIP

    The caller owns device and dtype: ``est.to("cuda", torch.float16)``; ``est.device`` and
    ``est.dtype`` are read from the network's parameters (they follow any move of ``est.model``).
    Images go to that device in their compact form (uint8/uint16) and everything after runs there.
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
        self.reduced = False
        self.memory_format = torch.contiguous_format
        self.compiled = False
        self._graphed = None  # GraphedForward, when enable_cuda_graphs() opted in
        self.forward_count = 0  # how many network passes ran (for caching checks and stats)
        self.backend = "auto"  # which runtime runs the network: "torch", "openvino", "auto" (openvino_backend)

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
        max_pixels: Optional[int] = _STORED,
        reduced: bool = False,
        progress: bool = True,
        dtype: Union[str, torch.dtype, None] = "auto",
        backend: str = "auto",
    ) -> "DepthEstimator":
        """Build from a zoo name (or alias, or transformers hub id), a checkpoint file, or a folder.

        * a name: weights from ``checkpoint`` if given, else the weights folder / HF cache / the
          MiDaS release (see ``weights.resolve_weights``);
        * a ``.pt``/``.pth``/``.safetensors`` file: the model is ``model`` if given, else identified
          from the checkpoint's keys;
        * a folder written by ``save_pretrained``: its stored model, weights and settings, except where
          an argument is given (explicit arguments win: ``resolution``, ``square``, ``max_pixels``,
          ``checkpoint`` for other weights of the same model; a ``model`` that contradicts the folder is
          an error). ``weights_dir``, ``allow_download``, ``progress`` and ``reduced`` do not apply (the
          folder's stored architecture is the one its weights fit).

        ``max_pixels``: the input size limit (``None``: none); default ``DEFAULT_MAX_PIXELS``, or a
        folder's stored value.
        ``resolution`` sets the processing size (MiDaS ``--height``), ``square=True`` disables
        keep-aspect (MiDaS ``--square``); ``reduced=True`` builds a tiny random model (tests).
        ``dtype``: ``"auto"`` (default: bfloat16 on a CPU with native bf16 units for the models that are
        accurate in it, else float32; see ``midas_diffusion.inference.precision``), a name or a torch dtype.
        The model is on the CPU; move it with ``.to(device, dtype)``. ``backend``: which runtime runs
        the network (``"torch"``, ``"openvino"``, ``"auto"``; see ``set_backend``).
        """
        if backend != "auto":
            check_backend(backend)
        path = Path(name_or_path) if not isinstance(name_or_path, str) or os.path.exists(name_or_path) else None
        if path is not None and path.is_dir():
            return cls._from_folder(path, checkpoint=checkpoint, model=model, resolution=resolution, square=square,
                                    max_pixels=max_pixels).to(dtype=dtype).set_backend(backend)
        if max_pixels is _STORED:
            max_pixels = DEFAULT_MAX_PIXELS
        from ..loading.checkpoints import read_key_shapes
        from ..loading.factory import create_model, load_model

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
        return est.to(dtype=dtype).set_backend(backend)

    @classmethod
    def _from_folder(cls, folder: Path, *, checkpoint: Optional[CheckpointLike], model: Optional[str],
                     resolution: Optional[int], square: Optional[bool], max_pixels: Any) -> "DepthEstimator":
        """A ``save_pretrained`` folder; the arguments given win over what the folder stores."""
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{folder} has no {CONFIG_NAME}; it was not written by save_pretrained")
        config = json.loads(config_path.read_text())
        spec = get_model_spec(config["model_name"])
        if model is not None and resolve_name(model) != spec.name:
            raise ValueError(f"{folder} holds {spec.name}, not model={model!r}; leave model unset for a folder")
        stored_reduced = bool(config.get("reduced", False))
        from ..loading.factory import load_model

        net = load_model(spec, folder / WEIGHTS_NAME if checkpoint is None else checkpoint, reduced=stored_reduced)
        pre = PreprocessConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["preprocess"].items()})
        pre = with_resolution(pre, resolution, square)
        if max_pixels is _STORED:
            max_pixels = config.get("max_pixels", DEFAULT_MAX_PIXELS)
        est = cls(net, spec, pre, max_pixels=max_pixels)
        est.reduced = stored_reduced
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
    @property
    def device(self) -> torch.device:
        """Where the network's parameters are (the CPU for a network without any)."""
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point type of the network's parameters (float32 for a network without any)."""
        param = next((p for p in self.model.parameters() if p.is_floating_point()), None)
        return param.dtype if param is not None else torch.float32

    def to(
        self,
        device: Union[str, torch.device, None] = None,
        dtype: Union[torch.dtype, str, None] = None,
        *,
        memory_format: Optional[torch.memory_format] = None,
    ) -> "DepthEstimator":
        """Move the model; ``memory_format=torch.channels_last`` also feeds the network NHWC inputs.

        ``dtype`` is a torch dtype or a name: ``"float32"``, ``"float16"``, ``"bfloat16"``, or
        ``"auto"`` (``precision.resolve_dtype``: bf16 on CPUs with native bf16 units, fp16 on CUDA, ...
        per model, for the device the model ends up on)."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if memory_format is not None and memory_format not in (torch.contiguous_format, torch.channels_last):
            raise ValueError(f"memory_format must be torch.contiguous_format or torch.channels_last, got {memory_format}")
        target = torch.device(device) if device is not None else self.device
        if dtype is not None:  # resolve_dtype refuses unsupported dtypes
            dtype = resolve_dtype(dtype, target, self.spec.name)
        if memory_format is not None:
            self.memory_format = memory_format
        self.model.to(device=device, dtype=dtype, memory_format=self.memory_format)
        if self._graphed is not None:
            self._graphed.clear()  # recorded graphs point at the old tensors
        return self

    def compile(self, **kwargs: Any) -> "DepthEstimator":
        """Opt in to ``torch.compile`` of the network (in place: weights and ``save_pretrained`` are
        unchanged). ``kwargs`` go to ``torch.compile`` (``mode="max-autotune"``, ``dynamic=True``,
        ``backend=...``). The first call at each new input size compiles, which takes a while; call
        it after ``.to(...)``."""
        self.model.compile(**kwargs)
        self.compiled = True
        return self

    def enable_cuda_graphs(self, warmup: int = 2, max_graphs: int = 4) -> "DepthEstimator":
        """Opt in to CUDA-graph replay of the network for repeated same-size calls on a GPU (video,
        preview sliders): after ``warmup`` calls of a size, the forward is recorded once and replayed
        with one launch (``midas_diffusion.inference.cuda_graphs``). Results are unchanged; CPU calls and other
        sizes run as before. Call it after ``.to("cuda", ...)``; moving the estimator again drops the
        recorded graphs."""
        from .cuda_graphs import GraphedForward

        self._graphed = GraphedForward(self.model, warmup=warmup, max_graphs=max_graphs)
        return self

    def set_backend(self, backend: str) -> "DepthEstimator":
        """Which runtime runs the network: ``"torch"``; ``"openvino"`` (CPU; exports and compiles at the
        first call of each network input size, cached in memory and in the weights folder); ``"auto"``
        (default: OpenVINO where installed and measured faster for this model on the CPU, never
        waiting for an export; else torch). Pre- and post-processing are the same for all three; see
        ``midas_diffusion.inference.openvino_backend``."""
        self.backend = check_backend(backend)
        return self

    def disable_cuda_graphs(self) -> "DepthEstimator":
        self._graphed = None
        return self

    def at_resolution(self, resolution: Optional[int]) -> "DepthEstimator":
        """The same network at another processing resolution (MiDaS ``--height``): a view sharing the
        model (so its device and dtype), with this estimator's memory format; nothing reloads.
        ``None``/0 returns ``self``."""
        if not resolution:
            return self
        view = DepthEstimator(self.model, self.spec, with_resolution(self.preprocess, resolution), self.max_pixels)
        view.memory_format, view.reduced, view.compiled = self.memory_format, self.reduced, self.compiled
        view._graphed, view.backend = self._graphed, self.backend
        return view

    @property
    def model_name(self) -> str:
        return self.spec.name

    # ------------------------------------------------------------------ inference
    def network_input_size(self, height: int, width: int) -> Tuple[int, int]:
        return network_input_size(height, width, self.preprocess)

    @torch.inference_mode()
    def predict_network(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the network on a prepared, standardized ``(B,3,h,w)`` batch; returns its prediction at
        network size, ``(B,h,w)`` float32 on the estimator's device (``DepthOutput.raw`` is the same
        prediction resized to the image, ``(B,1,H,W)``)."""
        self.forward_count += 1
        x = batch.to(device=self.device, dtype=self.dtype).contiguous(memory_format=self.memory_format)
        if self.backend != "torch" and self._graphed is None and not self.compiled:
            out = openvino_network(self.model, self.spec.name, x, self.backend, self.reduced)
            if out is not None:
                return out
        return (self._graphed(x) if self._graphed is not None else self.model(x)).float()

    @torch.inference_mode()
    def __call__(
        self,
        images: Union[ImageLike, Sequence[ImageLike]],
        *,
        percentile: Optional[Tuple[float, float]] = None,
        gamma: float = 1.0,
        invert: bool = False,
        batch_size: int = 8,
        output_device: OutputDevice = "cpu",
    ) -> DepthOutput:
        """Depth of one image or a batch of images of one size: ``disparity`` and ``raw`` are
        ``(B,1,H,W)`` float32 tensors, and ``metres`` too for a metric model (``spec.predicts ==
        "metres"``; its ``disparity`` is the normalized ``1/metres``, see ``DepthOutput``). For images
        of different sizes use ``estimate_each``.

        Normalization is per image: min-max (default) or min-max after clipping to
        ``percentile=(low, high)``; then ``gamma``; ``invert=True`` makes near = 0. Results come back
        on the CPU; ``output_device="same"`` (or ``None``) leaves them on the estimator's device, any
        other device moves them there.
        """
        compact = self._compact(images, batch_size, percentile, gamma)
        sizes = sorted({tuple(img.shape[-2:]) for img in compact})
        if len(sizes) > 1:
            shown = ", ".join(f"{w}x{h}" for h, w in sizes[:4]) + (" ..." if len(sizes) > 4 else "")
            raise ValueError(
                f"est(images) returns one (B,1,H,W) tensor, but the images have different sizes ({shown}); "
                "use est.estimate_each(images, ...) for one DepthOutput per image at its own size"
            )
        target = _output_device(output_device, self.device)
        raws, disparities, metres = [], [], []
        for _, raw, disparity, metric in self._runs(compact, batch_size, percentile, gamma, invert):
            raws.append(_move(raw, target))
            disparities.append(_move(disparity, target))
            if metric is not None:
                metres.append(_move(metric, target))
        self._wait_for_copies(target)
        return DepthOutput(disparity=_joined(disparities), raw=_joined(raws), model_name=self.spec.name,
                           settings=self._settings(percentile, gamma, invert), metres=_joined(metres))

    @torch.inference_mode()
    def estimate_each(
        self,
        images: Union[ImageLike, Sequence[ImageLike]],
        *,
        percentile: Optional[Tuple[float, float]] = None,
        gamma: float = 1.0,
        invert: bool = False,
        batch_size: int = 8,
        output_device: OutputDevice = "cpu",
    ) -> List[DepthOutput]:
        """One ``DepthOutput`` (B=1) per image, each at its image's size; the sizes may differ.

        Images of equal network input size still run through the network together (up to
        ``batch_size``); arguments as for ``__call__``."""
        compact = self._compact(images, batch_size, percentile, gamma)
        target = _output_device(output_device, self.device)
        outs: List[Optional[DepthOutput]] = [None] * len(compact)
        settings = self._settings(percentile, gamma, invert)
        for members, raw, disparity, metres in self._runs(compact, batch_size, percentile, gamma, invert):
            for k, i in enumerate(members):
                outs[i] = DepthOutput(disparity=_move(disparity[k : k + 1], target), raw=_move(raw[k : k + 1], target),
                                      model_name=self.spec.name, settings=dict(settings),
                                      metres=None if metres is None else _move(metres[k : k + 1], target))
        self._wait_for_copies(target)
        return outs  # type: ignore[return-value]

    # ------------------------------------------------------------------ the device path
    def _compact(self, images, batch_size: int, percentile, gamma) -> List[torch.Tensor]:
        """Check the arguments, then the images in compact form on the estimator's device."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        check_normalization(percentile, gamma)
        device = self.device
        pinned = device.type == "cuda" and torch.cuda.is_available()
        return [to_device(img, device) for img in to_compact_tensors(images, self.max_pixels, pin_memory=pinned)]

    def _chunks(self, compact: List[torch.Tensor], batch_size: int) -> List[List[int]]:
        """Indices of images of equal network input size, in runs of at most ``batch_size``."""
        def size(i: int) -> Tuple[int, int]:
            return self.network_input_size(*compact[i].shape[-2:])

        return group_batches(range(len(compact)), size, batch_size)

    def _predict(self, images: List[torch.Tensor]) -> torch.Tensor:
        """The network's ``(B,h,w)`` float32 prediction for compact images of one network input size."""
        size = self.network_input_size(images[0].shape[-2], images[0].shape[-1])
        batch = torch.cat([prepare_compact(img, size, self.preprocess) for img in images])
        return self.predict_network(batch)

    def _finish(self, prediction, size, flat, percentile, gamma, invert
                ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Raw map at the image ``size`` (as the model's original code resizes it: bicubic for MiDaS,
        see ``resize_prediction``), its normalized disparity and, for a metric model, its metres (the
        disparity is then normalized ``1/metres``); an image of one color (``flat``) has no depth cue:
        its disparity is flat too."""
        raw = resize_prediction(prediction[:, None], size, self.preprocess)
        if self.spec.predicts != "metres":
            return raw, normalize_disparity(raw, percentile, gamma, invert, flat=flat), None
        metres = raw.clamp(min=MIN_METRES)
        return raw, normalize_disparity(metres.reciprocal(), percentile, gamma, invert, flat=flat), metres

    def _runs(self, compact: List[torch.Tensor], batch_size: int, percentile, gamma, invert
              ) -> Iterator[Tuple[List[int], torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]:
        """``(indices, raw, disparity, metres or None)`` for the images in order of their batches: each
        batch of equal network input size runs through the network once, then is finished per image size."""
        for chunk in self._chunks(compact, batch_size):
            prediction = self._predict([compact[i] for i in chunk])
            for rows in group_batches(range(len(chunk)), lambda j: tuple(compact[chunk[j]].shape[-2:]), len(chunk)):
                members = [chunk[j] for j in rows]
                if len(rows) < len(chunk):
                    picked = prediction.index_select(0, torch.tensor(rows, device=prediction.device))
                else:
                    picked = prediction
                flat = torch.stack([_is_flat(compact[i]) for i in members])
                raw, disparity, metres = self._finish(picked, tuple(compact[members[0]].shape[-2:]), flat,
                                                      percentile, gamma, invert)
                yield members, raw, disparity, metres

    def _wait_for_copies(self, target: torch.device) -> None:
        if target.type == "cpu" and self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def _settings(self, percentile, gamma, invert) -> Dict[str, Any]:
        return {
            "model_name": self.spec.name,
            "percentile": percentile,
            "gamma": gamma,
            "invert": invert,
            "net_size": tuple(self.preprocess.net_size),
            "keep_aspect_ratio": self.preprocess.keep_aspect_ratio,
            "predicts": self.spec.predicts,
            "max_depth": self.spec.max_depth,
        }

    def __repr__(self) -> str:
        return f"DepthEstimator({self.spec.name!r}, device={self.device}, dtype={self.dtype})"
