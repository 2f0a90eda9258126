"""The reference data of ../shared/midas_reference: manifests, the weight recipe, fixtures."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

REFERENCE_DIR = Path(os.environ.get("MIDAS_REFERENCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "midas_reference"))


def manifest(name: str) -> dict:
    return json.loads((REFERENCE_DIR / "manifests" / f"{name}.json").read_text())


def fixture(name: str) -> dict:
    with np.load(REFERENCE_DIR / "fixtures" / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


def preprocessing() -> dict:
    return json.loads((REFERENCE_DIR / "preprocessing.json").read_text())


def recipe_tensor(key: str, shape: tuple, g: torch.Generator) -> torch.Tensor:
    """The recipe's rule for one tensor (the first rule that applies)."""
    if key.endswith("running_var"):
        return 1 + 0.5 * torch.rand(shape, generator=g)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g)
    if key.startswith("scratch.output_conv") and key.endswith(".bias"):
        return 0.5 + 0.02 * torch.randn(shape, generator=g)
    if len(shape) == 1 and key.endswith(".weight"):
        return 1 + 0.1 * torch.randn(shape, generator=g)
    if len(shape) <= 1:
        return 0.02 * torch.randn(shape, generator=g)
    if key.startswith("scratch.output_conv"):
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
        t = recipe_tensor(key, shape, g)
        out[key] = t
    return out


def official_key_shapes(name: str) -> dict:
    """Every entry of the official checkpoint (parameters and buffers) as meta tensors."""
    dtypes = {"float32": torch.float32, "int64": torch.int64, "float16": torch.float16}
    return {
        e["name"]: torch.empty(tuple(e["shape"]), dtype=dtypes.get(e["dtype"], torch.float32), device="meta")
        for e in manifest(name)["entries"]
    }


def official_checkpoint(name: str, seed: int = 0) -> dict:
    """A complete checkpoint in the official layout: the recipe's tensors, and every buffer the
    recipe skips (computed tables, ``num_batches_tracked``) present as zeros, as in a real file.
    Loaders must drop or ignore the computed ones; their values never reach the model."""
    dtypes = {"float32": torch.float32, "int64": torch.int64, "float16": torch.float16}
    weights = recipe_state_dict(name, seed)
    out = {}
    for e in manifest(name)["entries"]:
        key = e["name"]
        out[key] = weights[key] if key in weights else torch.zeros(tuple(e["shape"]), dtype=dtypes[e["dtype"]])
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
            shape = tuple(t.shape)
            v = recipe_tensor(key, shape, g)
            t.copy_(v)
    return model
