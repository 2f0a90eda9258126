"""Where a base pipeline comes from: a local diffusers folder or a hub id, checked before anything
loads; what the Hugging Face cache holds (only the cache is read here, nothing is fetched)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional


def local_only(local_files_only: Optional[bool]) -> bool:
    """``local_files_only`` as given, else whether ``HF_HUB_OFFLINE=1`` forbids fetching."""
    return local_files_only if local_files_only is not None else os.environ.get("HF_HUB_OFFLINE") == "1"


def is_single_file(base: str) -> bool:
    """An original-layout checkpoint file (A1111 / ComfyUI), not a diffusers folder."""
    return Path(base).suffix in (".safetensors", ".ckpt") and Path(base).is_file()


def check_base(base: str, local_only: bool = False) -> None:
    """A base must be a diffusers folder, or a hub id (``owner/name``), cached when nothing may be fetched."""
    path = Path(base)
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ValueError(f"base {base!r} is a folder without model_index.json: not a diffusers pipeline folder")
        return
    if path.exists():
        raise ValueError(f"base {base!r} is a file but not a .safetensors/.ckpt checkpoint")
    if "/" not in base or base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise ValueError(f"unknown base {base!r}: not a local folder, file or hub id")
    if local_only and cached_folder(base) is None:
        raise ValueError(
            f"base {base!r} is not in the Hugging Face cache and nothing may be fetched "
            "(HF_HUB_OFFLINE=1 or local_files_only=True): download it once, or pass a local folder"
        )


def cached_folder(repo_id: str) -> Optional[str]:
    """The cached snapshot folder of the pipeline ``repo_id`` (its ``model_index.json``), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "model_index.json")
    return os.path.dirname(found) if isinstance(found, str) else None


def folder_components(base: str) -> set:
    """The component subfolders of a local pipeline folder (empty for anything else)."""
    path = Path(base)
    return {p.name for p in path.iterdir() if p.is_dir()} if path.is_dir() else set()


def own_depth_model(base: str) -> Optional[str]:
    """The zoo name of the depth component a local pipeline folder carries, or None."""
    config = Path(base) / "depth_estimator" / "config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text()).get("model_name")
    except (OSError, ValueError):
        return None


def load_error(base: str, what: str, exc: Exception) -> ValueError:
    return ValueError(f"cannot load base {base!r} for {what}: {str(exc).splitlines()[0]}")
