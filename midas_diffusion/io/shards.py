"""WebDataset tar shards: reading a shard's samples, writing one atomically, expanding ``{00000..00099}``.

A shard is a plain tar; its members are grouped into samples the webdataset way: a member
``dir/000042.depth.png`` belongs to the sample with key ``dir/000042`` (the path up to the first dot of
the file name) as its field ``depth.png`` (the rest). Written shards keep every member of a sample as
it was read (name, bytes and header) and add fields after it; added members carry fixed header
values, so writing the same samples again gives the same bytes.
"""

from __future__ import annotations

import glob
import io
import itertools
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from .images import IMAGE_SUFFIXES
from .writers import ENCODERS, RAW_FORMATS, SUFFIXES, atomic_path

# the image fields looked for in a sample, in this order (img2dataset writes jpg)
IMAGE_FIELDS = ("jpg", "jpeg", "png", "webp") + tuple(sorted(s[1:] for s in IMAGE_SUFFIXES - {".jpg", ".jpeg", ".png", ".webp"}))
SHARD_SUFFIXES = (".tar",)
SETTINGS_FIELD = "midas.json"


class ShardError(ValueError):
    """A shard that cannot be read (missing, not a tar, truncated), with the reason."""


@dataclass
class Sample:
    """One sample of a shard: its key and its members in shard order (``TarInfo``, bytes or None)."""

    key: str
    members: List[Tuple[tarfile.TarInfo, Optional[bytes]]] = field(default_factory=list)

    def fields(self) -> Dict[str, bytes]:
        """field name (``jpg``, ``txt``, ``json`` ...) -> bytes, for the regular-file members."""
        return {split_name(info.name)[1]: data for info, data in self.members if data is not None}

    def image_field(self) -> Optional[str]:
        """The field holding the sample's image (``IMAGE_FIELDS`` order), None if it has none."""
        names = {name.lower(): name for name in self.fields()}
        return next((names[f] for f in IMAGE_FIELDS if f in names), None)


def split_name(name: str) -> Tuple[str, str]:
    """``dir/000042.depth.png`` -> ``("dir/000042", "depth.png")``; a name without a dot has field ``""``."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext


def is_shard(path: os.PathLike) -> bool:
    return str(path).lower().endswith(SHARD_SUFFIXES)


def read_shard(path: os.PathLike) -> List[Sample]:
    """Every member of a tar shard, grouped into samples by key in shard order (members of one key must
    follow each other, as webdataset requires; a key seen again later starts a new sample)."""
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"{path}: no such shard")
    samples: List[Sample] = []
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                data = tar.extractfile(info).read() if info.isfile() else None
                key = split_name(info.name)[0]
                if not samples or samples[-1].key != key:
                    samples.append(Sample(key))
                samples[-1].members.append((info, data))
            end = tar.offset
        with open(path, "rb") as f:  # cut at a member's boundary, a tar reads as a shorter one: look for its end
            f.seek(end)
            if f.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):
                raise tarfile.ReadError("it ends without the end-of-archive blocks: truncated")
    except (tarfile.TarError, EOFError, OSError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(":")  # tarfile's reasons run on for lines
        raise ShardError(f"{path}: not a readable tar shard ({reason})") from None
    return samples


def depth_fields(disparity, raw, formats: Sequence[str]) -> Dict[str, bytes]:
    """The depth fields of one sample in ``formats`` order: ``depth.png`` (png16), ``depth.pfm``,
    ``depth.npy`` (raw prediction), ``depth-preview.png``: the bytes the folder path writes to files."""
    return {"depth" + SUFFIXES[fmt]: ENCODERS[fmt](raw if fmt in RAW_FORMATS else disparity) for fmt in formats}


def _added_member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, 0, 0o644, 0, 0, "", ""
    return info


def write_shard(path: os.PathLike, samples: Iterable[Tuple[Sample, Mapping[str, bytes]]]) -> Path:
    """Write ``(sample, added fields)`` pairs as a tar at ``path``: each sample's members unchanged, then
    its added fields (``KEY.FIELD``). Written under a temporary name in the same folder and renamed into
    place, so ``path`` exists only once complete; stale temporary files of ``path`` are removed first."""
    path = Path(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for sample, added in samples:
                for info, data in sample.members:
                    tar.addfile(info, io.BytesIO(data) if data is not None else None)
                for name, data in added.items():
                    tar.addfile(_added_member(f"{sample.key}.{name}", len(data)), io.BytesIO(data))
    return path


_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_braces(pattern: str) -> List[str]:
    """``shards/{00000..00003}.tar`` -> the four names, zero-padded to the width written (``{0..3}``:
    unpadded); several ranges give their product; a pattern without ranges is itself."""
    parts = _BRACES.split(pattern)
    texts, ranges = parts[0::3], list(zip(parts[1::3], parts[2::3]))
    choices = []
    for low, high in ranges:
        width = len(low) if low.startswith("0") else 0  # {00000..00099}: padded; {0..99}, {8..10}: not
        if int(high) < int(low):
            raise ValueError(f"{pattern}: the range {{{low}..{high}}} runs backwards")
        choices.append([str(i).zfill(width) for i in range(int(low), int(high) + 1)])
    out = []
    for combo in itertools.product(*choices):
        out.append("".join(t + c for t, c in itertools.zip_longest(texts, combo, fillvalue="")))
    return out


def iter_expanded(patterns: Iterable[str]) -> Iterator[str]:
    for pattern in patterns:
        yield from expand_braces(pattern)
