"""Finding weights: a local folder first, then the transformers hub copy, then the MiDaS release.

The folder is ``$MIDAS_DIFFUSION_WEIGHTS`` (default ``~/.cache/midas-diffusion/weights``). Downloads
go to ``<file>.part`` with a progress bar, resume from where they stopped, are verified against
their sha256 where one is published, and are renamed into place only when complete.
Offline (``HF_HUB_OFFLINE=1`` or ``MIDAS_DIFFUSION_OFFLINE=1``) nothing is fetched and a missing
file gives a one-line error naming the file and the folder to put it in.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from ..zoo.config import ModelSpec, WeightFile

ENV_WEIGHTS_DIR = "MIDAS_DIFFUSION_WEIGHTS"
ENV_OFFLINE = "MIDAS_DIFFUSION_OFFLINE"


class WeightsNotFoundError(FileNotFoundError):
    """The weights of a model are not on this machine and may not be downloaded."""


class DownloadError(OSError):
    """A download failed or its checksum did not match."""


def default_weights_dir() -> Path:
    env = os.environ.get(ENV_WEIGHTS_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "midas-diffusion" / "weights"


def is_offline() -> bool:
    truthy = ("1", "true", "yes", "on")
    return any(os.environ.get(v, "").lower() in truthy for v in ("HF_HUB_OFFLINE", ENV_OFFLINE))


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: Path, sha256: Optional[str] = None, progress: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` atomically (``dest.part`` then rename), resuming a partial file."""
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "midas-diffusion"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part file is already complete
            response = None
        else:
            raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from None
    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                have = 0
            total = response.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            with open(part, "ab" if resumed else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
                    bar.update(len(block))
    if not sha256:  # no published checksum: show ours, so the file can be pinned
        print(f"{dest.name}: no published sha256; downloaded file has sha256 {sha256_of(part)}", file=sys.stderr)
    if sha256:
        actual = sha256_of(part)
        if actual.lower() != sha256.lower():
            part.unlink(missing_ok=True)
            raise DownloadError(f"{dest.name}: sha256 {actual} does not match the published {sha256}; removed it")
    os.replace(part, dest)
    return dest


def _missing_message(spec: ModelSpec, folder: Path, reason: str) -> str:
    wf = spec.official_weights
    where = f" (from {wf.url})" if wf else ""
    filename = wf.filename if wf else f"{spec.name}.pt"
    return f"weights for {spec.name} not found{reason}: put {filename}{where} in {folder} or set ${ENV_WEIGHTS_DIR}"


def resolve_weights(
    spec: ModelSpec,
    weights_dir: Optional[os.PathLike] = None,
    allow_download: Optional[bool] = None,
    progress: bool = True,
) -> Path:
    """Local path of ``spec``'s weights, downloading them only if allowed and online."""
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    wf: Optional[WeightFile] = spec.official_weights
    names = [wf.filename] if wf else []
    names += [f"{spec.name}.safetensors", f"{spec.name}.pt"]
    for name in dict.fromkeys(names):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    offline = is_offline()
    hub_path = _from_hub_cache(spec, local_only=offline or allow_download is False)
    if hub_path is not None:
        return hub_path
    if allow_download is None:
        allow_download = not offline
    if not allow_download or wf is None:
        reason = " (offline)" if offline else ""
        raise WeightsNotFoundError(_missing_message(spec, folder, reason))
    try:
        return download_file(wf.url, folder / wf.filename, wf.sha256, progress=progress)
    except DownloadError as exc:
        raise WeightsNotFoundError(_missing_message(spec, folder, f" ({exc})")) from None


def _from_hub_cache(spec: ModelSpec, local_only: bool) -> Optional[Path]:
    """The transformers DPT copy of the model from the Hugging Face cache (or hub), if any."""
    if not spec.hf_hub_id:
        return None
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    try:
        return Path(hf_hub_download(spec.hf_hub_id, "model.safetensors", local_files_only=local_only))
    except Exception:  # not cached / offline / no such file: fall through to the release file
        return None
