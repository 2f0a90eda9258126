"""The ControlNet / Union ControlNet / T2I-Adapter of a pipeline: loaded, or a given model cast."""

from __future__ import annotations

import os
from typing import Optional, Union

import torch

from .compat import dtype_kwargs

ControlModelArg = Union[str, os.PathLike, torch.nn.Module]


def cast(module: torch.nn.Module, dtype: Optional[torch.dtype]) -> torch.nn.Module:
    """``module`` in ``dtype``; untouched when it already is (diffusers warns on every ``.to(dtype)``)."""
    if dtype is not None and any(p.dtype != dtype for p in module.parameters()):
        module.to(dtype=dtype)
    return module


def load_control_model(kind: str, source: ControlModelArg, dtype: Optional[torch.dtype], local_only: bool):
    """``kind`` ("controlnet" | "controlnet_union" | "adapter") from a hub id or folder; a loaded
    model joins the pipeline in the pipeline's dtype."""
    if isinstance(source, torch.nn.Module):
        return cast(source, dtype)
    import diffusers

    cls = {"controlnet": diffusers.ControlNetModel, "controlnet_union": diffusers.ControlNetUnionModel,
           "adapter": diffusers.T2IAdapter}[kind]
    try:
        return cls.from_pretrained(str(source), local_files_only=local_only, **dtype_kwargs(dtype))
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ValueError(f"cannot load the {kind} {source!r}: {str(exc).splitlines()[0]}") from None
