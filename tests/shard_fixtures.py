"""Tiny WebDataset shards for the shard tests (tests/test_cli_shards.py, tests/test_ray.py)."""

import io
import tarfile

import numpy as np
from PIL import Image

SIZES = ((40, 64), (48, 64), (40, 64))


def image_bytes(rng, height, width, fmt="JPEG"):
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def write_tar(path, members):
    """``members``: (name, bytes) in order; headers as img2dataset-like writers leave them (an mtime, a user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for i, (name, data) in enumerate(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uname = len(data), 1_700_000_000 + i, 0o600, "crawler"
            tar.addfile(info, io.BytesIO(data))
    return path


def make_shards(folder, count=2, per_shard=3, seed=0):
    """``folder/00000.tar`` ...: samples ``KEY.jpg`` (one a png), ``KEY.txt`` (a caption), ``KEY.json``."""
    rng = np.random.default_rng(seed)
    paths = []
    for s in range(count):
        members = []
        for i in range(per_shard):
            key = f"{s:05d}{i:04d}"
            h, w = SIZES[i % len(SIZES)]
            ext, fmt = ("png", "PNG") if i == 1 else ("jpg", "JPEG")
            members += [(f"{key}.{ext}", image_bytes(rng, h, w, fmt)), (f"{key}.txt", f"a photo number {i}".encode()),
                        (f"{key}.json", b'{"url": "http://example.com/%d"}' % i)]
        paths.append(write_tar(folder / f"{s:05d}.tar", members))
    return paths


def members(path):
    """(TarInfo, bytes) of every member of a tar, in order."""
    with tarfile.open(path) as tar:
        return [(info, tar.extractfile(info).read()) for info in tar]


def extract_images(shards, folder):
    """Each sample's image as ``folder/KEY.EXT``, for the folder path on the same images."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard in shards:
        for info, data in members(shard):
            if info.name.endswith((".jpg", ".png")):
                (folder / info.name).write_bytes(data)
    return folder
