"""The reference data of the original MiDaS code (``tests/reference_data``): manifests, the weight
recipe, the preprocessing table and the output fixtures. See ``tests/reference_data/README.md``."""

from __future__ import annotations

import functools
import io
import json
import lzma
import math
from pathlib import Path

import numpy as np
import torch

REFERENCE_DIR = Path(__file__).resolve().parent / "reference_data"

_DTYPES = {"float32": torch.float32, "int64": torch.int64, "float16": torch.float16}


@functools.lru_cache(maxsize=None)
def _manifests() -> dict:
    return json.loads(lzma.decompress((REFERENCE_DIR / "manifests.json.xz").read_bytes()))


def manifest(name: str) -> dict:
    """``model_type``, ``net_w``, ``net_h`` and ``entries`` (the original model's ``state_dict()`` in
    order: ``name``, ``shape``, ``dtype``, ``kind``); for a Depth Anything model its manifest
    (``depth_anything_manifest``), which has the same ``entries``."""
    if name in _manifests():
        return _manifests()[name]
    return depth_anything_manifest(name)


def midas_models() -> list:
    """The zoo models of the original MiDaS code (those with fixtures in ``reference_data/fixtures``)."""
    return list(_manifests())


def fixture_input(seed: int, h: int, w: int) -> torch.Tensor:
    """The network input of a fixture, regenerated from its seed (bit-identical to what the
    original code was run on)."""
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1


def _stored_fixture(path: Path) -> dict:
    packed = lzma.decompress(path.read_bytes())
    with np.load(io.BytesIO(packed)) as data:
        stored = {k: data[k] for k in data.files}
    seed, h, w = int(stored["seed"]), int(stored["h"]), int(stored["w"])
    y = stored["y"]
    # y64 is stored as its exact float64 difference from y (y64 - y is exact in float64), which
    # compresses better than y64 itself; the sum restores y64 bit for bit.
    y64 = y.astype(np.float64) + stored["y64_minus_y"]
    return {"x": fixture_input(seed, h, w).numpy(), "y": y, "y64": y64, "seed": seed, "h": h, "w": w}


def fixture(name: str) -> dict:
    """``x`` (1,3,H,W float32), ``y`` (the original's float32 output), ``y64`` (its float64 output),
    ``seed``, ``h``, ``w``; arrays are numpy. Any zoo model (Depth Anything: ``depth_anything_fixture``)."""
    if name not in _manifests():
        return depth_anything_fixture(name)
    return _stored_fixture(REFERENCE_DIR / "fixtures" / f"{name}.npz.xz")


def preprocessing() -> dict:
    return json.loads((REFERENCE_DIR / "preprocessing.json").read_text())


def _midas_head(key: str) -> bool:
    return key.startswith("scratch.output_conv")


def recipe_tensor(key: str, shape: tuple, g: torch.Generator, is_head=_midas_head) -> torch.Tensor:
    """The recipe's rule for one tensor (the first rule that applies); ``is_head(key)``: whether the
    positive head rule applies (MiDaS: names starting with ``scratch.output_conv``)."""
    head = is_head(key)
    if key.endswith("running_var"):
        return 1 + 0.5 * torch.rand(shape, generator=g)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g)
    if head and key.endswith(".bias"):
        return 0.5 + 0.02 * torch.randn(shape, generator=g)
    if len(shape) == 1 and key.endswith(".weight"):
        return 1 + 0.1 * torch.randn(shape, generator=g)
    if len(shape) <= 1:
        return 0.02 * torch.randn(shape, generator=g)
    if head:
        return torch.randn(shape, generator=g).abs() / math.sqrt(math.prod(shape[1:]))
    return torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))


def recipe_state_dict(name: str, seed: int = 0, device: str = "cpu") -> dict:
    """Deterministic weights for a manifest, exactly as the reference README describes."""
    entries = sorted(manifest(name)["entries"], key=lambda e: e["name"])
    g = torch.Generator().manual_seed(seed)
    out = {}
    for e in entries:
        key, shape = e["name"], tuple(e["shape"])
        if e["kind"] == "buffer" and not (key.endswith("running_mean") or key.endswith("running_var")):
            continue
        out[key] = recipe_tensor(key, shape, g)
    return out


def official_key_shapes(name: str) -> dict:
    """Every entry of the official checkpoint (parameters and buffers) as meta tensors, in file order."""
    return {
        e["name"]: torch.empty(tuple(e["shape"]), dtype=_DTYPES.get(e["dtype"], torch.float32), device="meta")
        for e in manifest(name)["entries"]
    }


def official_checkpoint(name: str, seed: int = 0) -> dict:
    """A complete checkpoint in the official layout and key order: the recipe's tensors, and every
    buffer the recipe skips (computed tables, ``num_batches_tracked``) present as zeros, as in a real
    file. Loaders must drop or ignore the computed ones; their values never reach the model.
    Depth Anything models: ``depth_anything_checkpoint`` (no buffers)."""
    if name not in _manifests():
        return depth_anything_checkpoint(name, seed)
    weights = recipe_state_dict(name, seed)
    out = {}
    for e in manifest(name)["entries"]:
        key = e["name"]
        out[key] = weights[key] if key in weights else torch.zeros(tuple(e["shape"]), dtype=_DTYPES[e["dtype"]])
    return out


def recipe_init_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill a (reduced) model's parameters and BN statistics by the recipe's rules, in place, so
    that random models give informative outputs (the positive head keeps the last ReLU open)."""
    g = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for key in sorted(state):
            t = state[key]
            if not t.is_floating_point():
                continue
            t.copy_(recipe_tensor(key, tuple(t.shape), g))
    return model


# ---------------------------------------------------------------------------------------------
# Depth Anything V2 (``reference_data/depth_anything``): the same recipe with two differences.
# ---------------------------------------------------------------------------------------------

DEPTH_ANYTHING_DIR = REFERENCE_DIR / "depth_anything"


@functools.lru_cache(maxsize=None)
def _depth_anything_manifests() -> dict:
    return json.loads(lzma.decompress((DEPTH_ANYTHING_DIR / "manifests.json.xz").read_bytes()))


def depth_anything_manifest(name: str) -> dict:
    """``name``, ``encoder``, ``features``, ``out_channels``, ``max_depth`` (None: relative) and ``entries``."""
    return _depth_anything_manifests()[name]


def depth_anything_fixture(name: str) -> dict:
    """As ``fixture``: ``x``, ``y``, ``y64``, ``seed``, ``h``, ``w`` (196x266)."""
    return _stored_fixture(DEPTH_ANYTHING_DIR / "fixtures" / f"{name}.npz.xz")


def depth_anything_preprocessing() -> dict:
    return json.loads((DEPTH_ANYTHING_DIR / "preprocessing.json").read_text())


def _depth_anything_head(key: str) -> bool:
    return "scratch.output_conv" in key


def _no_head(key: str) -> bool:
    return False


def depth_anything_checkpoint(name: str, seed: int = 0) -> dict:
    """The recipe's weights in the official ``DepthAnythingV2`` layout and key order: the head rule
    for every name containing ``scratch.output_conv``, except for the metric models (plain rules)."""
    manifest = depth_anything_manifest(name)
    is_head = _no_head if manifest["max_depth"] is not None else _depth_anything_head
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for e in sorted(manifest["entries"], key=lambda e: e["name"]):
        key = e["name"]
        if e["kind"] == "buffer" and not (key.endswith("running_mean") or key.endswith("running_var")):
            continue
        weights[key] = recipe_tensor(key, tuple(e["shape"]), g, is_head)
    return {e["name"]: weights[e["name"]] for e in manifest["entries"] if e["name"] in weights}
