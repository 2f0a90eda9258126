"""Bases as single original-layout checkpoints (``.safetensors`` / ``.ckpt``, as A1111 and ComfyUI
keep them), described by a local diffusers folder of the same model family. Nothing is fetched."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Type, Union

from .bases import cached_folder
from .compat import dtype_kwargs
from .methods import get_method


def cached_base_config(method: str) -> Optional[str]:
    """The folder of ``method``'s default base in the Hugging Face cache, if its configs are there.

    It describes single-file checkpoints of that family when no ``single_file_config`` is given;
    only the cache is read, nothing is fetched.
    """
    return cached_folder(get_method(method).default_base)


def single_file_config(base: str, method: str, config: Optional[Union[str, os.PathLike]]) -> str:
    """The local diffusers folder describing the single-file ``base``: ``config``, else the
    method's default base from the Hugging Face cache; a ``ValueError`` when there is none."""
    config = config if config is not None else cached_base_config(method)
    if config is None:
        default = get_method(method).default_base
        raise ValueError(
            f"base {base!r} is a single-file checkpoint: pass single_file_config= (a local diffusers "
            f"folder of the same model family, e.g. a saved pipeline), since nothing can be fetched; "
            f"or put the configs of {default} in the Hugging Face cache once: "
            f"hf download {default} --include '*.json' '*.txt'"
        )
    if not (Path(config) / "model_index.json").is_file():
        raise ValueError(
            f"single_file_config {str(config)!r} is not a local diffusers folder (no model_index.json in it); "
            "point it at a saved pipeline or a downloaded base of the same family as the checkpoint"
        )
    return str(config)


def from_single_file(cls: Type, base: str, method: str, config: str, dtype, extra: Dict[str, Any]):
    """``cls.from_single_file`` on an original-layout checkpoint described by the folder ``config``.

    The depth estimator and the control model are always passed in (``extra``): the file holds
    the base only. Nothing is fetched; every failure becomes one ``ValueError`` naming the file.
    """
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    try:
        return cls.from_single_file(base, config=str(config), local_files_only=True, **dtype_kwargs(dtype), **extra)
    except (SingleFileComponentError, KeyError, RuntimeError, ValueError) as exc:
        # missing components, or shapes that do not fit the config (another model family)
        raise ValueError(
            f"cannot load single-file base {base!r} for {method} with the config folder {str(config)!r}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from None
