"""Reading checkpoints and loading them strictly into zoo models.

Official MiDaS files hold the module's ``state_dict`` (old training files wrap it as
``{"model": ..., "optimizer": ...}``). Each encoder family converts the 0.6-era timm layout with
its own named rules, by key name (never by key order: safetensors files and rebuilt dicts sort
their keys); computed buffers and unused classifier heads are dropped by explicit rules.
Everything else must match exactly, or the error names the keys. ``num_batches_tracked`` may be
absent, as PyTorch's own strict ``load_state_dict`` allows for BatchNorm.

Memory: files are read tensor by tensor into memory the model then owns, and a model built on the
``meta`` device takes those tensors as they are (``load_state_dict(..., assign=True)``), so loading
holds one copy of the weights, not two (see ``factory.load_model``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from ..zoo.backbones.base import compute_buffers
from .convert_transformers import convert_transformers_dpt, is_transformers_dpt
from ..zoo.state_dicts import CheckpointError, StateDict, add_prefix, rename_by_rules, show_keys, strip_prefix

__all__ = [
    "CheckpointError",
    "CheckpointLike",
    "OwnedStateDict",
    "StateDict",
    "check_fit",
    "convert_official",
    "identify_checkpoint",
    "is_transformers_dpt",
    "load_into",
    "read_key_shapes",
    "read_state_dict",
    "to_model_layout",
]

CheckpointLike = Union[str, os.PathLike, Mapping[str, torch.Tensor]]


class OwnedStateDict(dict):
    """A state dict handed over to the loader: nobody else uses its tensors, so a model built on
    ``meta`` may take them as they are instead of copying them (one copy of the weights in memory,
    not two). A plain mapping's tensors are always copied: they stay the caller's."""

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")

# Buffers a strict load may lack: PyTorch's BatchNorm fills a missing counter itself.
OPTIONAL_SUFFIXES = (".num_batches_tracked",)

# CPU tensors whose data starts off this boundary can take other kernel paths than the model's
# own allocations do (results then differ in the last bits), so such tensors are copied.
_ALIGNMENT = 64

_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    **{name: getattr(torch, attr) for name, attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"))
       if hasattr(torch, attr)},
}
_MAX_HEADER = 100 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Reading.
# ---------------------------------------------------------------------------------------------


def _not_safetensors(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"cannot read {path}: not a valid safetensors file ({why})")


def _safetensors_header(path: Path) -> Tuple[Dict[str, Tuple[torch.dtype, Tuple[int, ...], int, int]], int]:
    """``({name: (dtype, shape, begin, end)}, data_start)`` of a safetensors file, every entry
    checked against the format and the file's size (offsets relative to ``data_start``)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise _not_safetensors(path, "shorter than its 8-byte header length")
        length = int.from_bytes(prefix, "little")
        if length > min(size - 8, _MAX_HEADER):
            raise _not_safetensors(path, f"header length {length} exceeds the file")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _not_safetensors(path, f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise _not_safetensors(path, "header is not a JSON object")
    header.pop("__metadata__", None)
    data_size = size - 8 - length
    entries = {}
    for name, entry in header.items():
        try:
            dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
            shape = tuple(int(s) for s in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _not_safetensors(path, f"bad or unsupported entry for {name!r}: {entry!r}") from None
        numel = 1
        for s in shape:
            numel *= s
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= data_size or end - begin != nbytes:
            raise _not_safetensors(path, f"{name!r} does not fit its place in the file")
        entries[name] = (dtype, shape, begin, end)
    return entries, 8 + length


def _read_safetensors(path: Path) -> StateDict:
    """Every tensor of a safetensors file, each read straight into memory of its own.

    Not memory-mapped on purpose: the format packs tensors without alignment, and a model computing
    on misaligned weights gave other last bits than one on its own allocations (measured ~1e-6); a
    mapping would also tie the model to a file that may be rewritten in place. Reading each tensor
    into its final buffer holds one copy of the weights and no mapped pages.
    """
    entries, data_start = _safetensors_header(path)
    if sys.byteorder != "little":  # the format is little-endian; let the library convert
        from safetensors.torch import load_file

        return {k: v.clone() for k, v in load_file(str(path)).items()}
    out: StateDict = {}
    with open(path, "rb", buffering=0) as f:
        for name, (dtype, shape, begin, end) in sorted(entries.items(), key=lambda item: item[1][2]):
            raw = torch.empty(end - begin, dtype=torch.uint8)
            view = memoryview(raw.numpy())
            f.seek(data_start + begin)
            filled = 0
            while filled < len(view):
                got = f.readinto(view[filled:])
                if not got:
                    raise _not_safetensors(path, f"{name!r} is cut short")
                filled += got
            out[name] = raw.view(dtype).reshape(shape)
    return {name: out[name] for name in entries}


def _read_pickle(path: Path, mmap: bool = False):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises several types for corrupt/unsafe pickles
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read {path}: {first_line}") from None


def _checked_path(source: Union[str, os.PathLike]) -> Path:
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix != ".safetensors" and path.suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(f"unsupported checkpoint format {path.suffix!r} for {path} (use .pt, .pth or .safetensors)")
    return path


def _unwrap(state_dict) -> StateDict:
    """The state dict inside a training file's ``{"model": ..., "optimizer": ...}``; checked to be tensors."""
    for wrapper in ("model", "state_dict"):
        inner = state_dict.get(wrapper) if isinstance(state_dict, Mapping) else None
        if isinstance(inner, Mapping) and ("optimizer" in state_dict or len(state_dict) <= 3):
            state_dict = dict(inner)
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError("checkpoint is not a state dict of tensors")
    return dict(state_dict)


def read_state_dict(source: CheckpointLike) -> StateDict:
    """A flat ``{name: tensor}`` dict from a path (``.pt``/``.pth``/``.safetensors``) or a mapping.

    Tensors read from a file are CPU tensors in memory of their own (nothing stays mapped).
    """
    if isinstance(source, Mapping):
        return _unwrap(dict(source))
    path = _checked_path(source)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _unwrap(_read_pickle(path))


def read_key_shapes(source: CheckpointLike) -> StateDict:
    """The checkpoint's keys with ``meta`` tensors of their shapes and dtypes, without reading the
    weights (a safetensors header; a ``.pt`` file memory-mapped and never touched): enough for
    ``identify_checkpoint``."""

    def meta(state: Mapping[str, torch.Tensor]) -> StateDict:
        return {k: torch.empty(tuple(v.shape), dtype=v.dtype, device="meta") for k, v in state.items()}

    if isinstance(source, Mapping):
        return meta(_unwrap(dict(source)))
    path = _checked_path(source)
    if path.suffix == ".safetensors":
        entries, _ = _safetensors_header(path)
        return {k: torch.empty(shape, dtype=dtype, device="meta") for k, (dtype, shape, _, _) in entries.items()}
    try:
        state = _read_pickle(path, mmap=True)
    except CheckpointError:  # legacy (non-zip) pickles cannot be mapped: read them whole
        state = _read_pickle(path)
    return meta(_unwrap(state))


# ---------------------------------------------------------------------------------------------
# Converting and checking.
# ---------------------------------------------------------------------------------------------


def convert_official(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> StateDict:
    """Official layout -> this model's layout: the model's own renames (``checkpoint_rules``, for
    layouts such as Depth Anything's ``depth_head.*``), then the encoder family's filter."""
    rules = getattr(model.config, "checkpoint_rules", ())
    if rules:
        state_dict = rename_by_rules(state_dict, rules)
    encoder_part = strip_prefix(state_dict, "pretrained.")
    rest = {k: v for k, v in state_dict.items() if not k.startswith("pretrained.")}
    encoder_part = model.config.encoder.filter_checkpoint(encoder_part, model.pretrained)
    return {**add_prefix(encoder_part, "pretrained."), **rest}


def check_fit(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Optional[str]:
    """None if ``state_dict`` fills exactly ``model``'s state (a missing BatchNorm
    ``num_batches_tracked`` is fine); else a message naming the keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or wrong):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {show_keys(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {show_keys(unexpected)}")
    if wrong:
        parts.append(f"{len(wrong)} with other shapes: {show_keys(wrong)}")
    return "; ".join(parts)


def to_model_layout(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> StateDict:
    """Convert any supported checkpoint layout (official MiDaS, transformers DPT) to ``model``'s keys."""
    if is_transformers_dpt(state_dict):
        state_dict = convert_transformers_dpt(state_dict, model)
    return convert_official(state_dict, model)


def identify_checkpoint(state_dict: Mapping[str, torch.Tensor], exclude: str = "") -> Optional[str]:
    """The zoo model whose layout ``state_dict`` fits, built cheaply on the meta device.

    Only key names and shapes matter: ``read_key_shapes(path)`` is enough."""
    from ..zoo.registry import get_model_spec, list_models

    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    for name in list_models():
        if name == exclude:
            continue
        spec = get_model_spec(name)
        with torch.device("meta"):
            candidate = spec.build(spec.arch)
        meta_sd = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
        try:
            converted = to_model_layout(meta_sd, candidate)
        except (CheckpointError, KeyError, ValueError, RuntimeError):
            continue
        if check_fit(converted, candidate) is None:
            return name
    return None


# ---------------------------------------------------------------------------------------------
# Loading.
# ---------------------------------------------------------------------------------------------


def _model_tensor(value: torch.Tensor, like: torch.Tensor, copy: bool) -> torch.Tensor:
    """``value`` as the CPU tensor in ``like``'s dtype that a meta-built model will own: contiguous,
    aligned, and a copy when ``copy`` (a caller's tensors are never shared with the model)."""
    tensor = value.detach().to(device="cpu", dtype=like.dtype)
    shares = tensor.untyped_storage().data_ptr() == value.untyped_storage().data_ptr()
    if (copy and shares) or not tensor.is_contiguous() or tensor.data_ptr() % _ALIGNMENT:
        tensor = tensor.clone(memory_format=torch.contiguous_format)
    return tensor


def _assign(model: nn.Module, state_dict: Mapping[str, torch.Tensor], owned: bool) -> None:
    """Load into a model built on ``meta``: the tensors become the model's own, computed buffers
    are computed. ``owned``: the tensors were read for this load and may be taken as they are."""
    expected = model.state_dict()
    tensors: StateDict = {}
    storages = set()
    for key, value in state_dict.items():
        if value.is_meta:  # a shapes-only check: the model stays on meta
            tensors[key] = value
            continue
        storage = value.untyped_storage().data_ptr()
        tensors[key] = _model_tensor(value, expected[key], copy=not owned or storage in storages)
        storages.add(storage)
    model.load_state_dict(tensors, strict=True, assign=True)
    if not any(t.is_meta for t in tensors.values()):
        compute_buffers(model)


def load_into(model: nn.Module, source: CheckpointLike, model_name: str = "") -> nn.Module:
    """Strictly load ``source`` into ``model``; a mismatch raises ``CheckpointError`` naming keys.

    When the checkpoint belongs to another zoo model, the error names both models. A model built on
    the ``meta`` device takes the checkpoint's tensors without a second copy (a mapping's tensors
    are copied, never shared, unless it is an ``OwnedStateDict``) and gets its computed buffers;
    any other model is copied into.
    """
    state_dict = read_state_dict(source)
    where = f" ({source})" if isinstance(source, (str, os.PathLike)) else ""
    try:
        converted = to_model_layout(state_dict, model)
        problem = check_fit(converted, model)
    except CheckpointError as exc:
        converted, problem = None, str(exc)
    if problem is not None:
        other = identify_checkpoint(state_dict, exclude=model_name) if model_name else None
        if other:
            raise CheckpointError(
                f"checkpoint{where} is for {other!r}, not for {model_name!r}; "
                f"use create_model({other!r}, checkpoint=...) or pick the {model_name!r} weights"
            )
        target = f" for {model_name!r}" if model_name else ""
        raise CheckpointError(f"checkpoint{where} does not fit the model{target}: {problem}")
    del state_dict
    if any(t.is_meta for t in model.state_dict().values()):
        _assign(model, converted, owned=isinstance(source, OwnedStateDict) or not isinstance(source, Mapping))
    else:
        model.load_state_dict(converted, strict=True)
    return model
