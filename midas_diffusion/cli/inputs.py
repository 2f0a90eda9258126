"""The ``depth`` command's inputs and output names: files, folders (searched recursively, mirrored), file lists, videos."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Sequence, Tuple

from ..io.images import IMAGE_SUFFIXES
from ..io.video import VIDEO_SUFFIXES


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in VIDEO_SUFFIXES


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def read_file_list(list_path: str) -> List[str]:
    """Paths from a text file, one per line (blank lines and lines starting with # ignored);
    relative paths are relative to the current folder, as ``tar -T``."""
    lines = Path(list_path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def collect_inputs(inputs: Sequence[str]) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """(file, output stem relative to OUTDIR) pairs, and the inputs that do not exist.

    Folders are searched recursively for images and videos and mirrored; a file gives its own
    name (a relative path with folders, e.g. from a file list, is mirrored as given)."""
    pairs: List[Tuple[Path, Path]] = []
    missing: List[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file() and _is_media(p)):
                pairs.append((f, f.relative_to(path).with_suffix("")))
        elif path.is_file():
            safe = not path.is_absolute() and ".." not in path.parts
            pairs.append((path, path.with_suffix("") if safe else Path(path.stem)))
        else:
            missing.append(item)
    return pairs, missing


def output_paths(outdir: Path, stem: Path, formats: Iterable[str]) -> dict:
    from ..io.writers import SUFFIXES

    return {fmt: outdir / stem.parent / (stem.name + SUFFIXES[fmt]) for fmt in formats}


def frame_stem(stem: Path, index: int) -> Path:
    """A video's frame ``index`` is written as ``OUTDIR/<video stem>/<index:06d>.<fmt>``."""
    return stem / f"{index:06d}"
