"""Reading and writing video frames with PyAV (``pip install av``; imported only when used)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

# the video files we read (one set)
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})


def _av():
    try:
        import av
    except ImportError:
        raise ImportError("video input needs PyAV: pip install 'midas-diffusion[video]' (or pip install av)") from None
    return av


def frame_count(path: os.PathLike) -> Optional[int]:
    """The container's frame count, or None where it does not say."""
    av = _av()
    with av.open(str(path)) as container:
        n = container.streams.video[0].frames
    return int(n) or None


def read_frames(path: os.PathLike) -> Iterator[Tuple[int, np.ndarray]]:
    """``(index, HxWx3 uint8 RGB)`` for every frame of the first video stream, in order."""
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot read video {path}: {exc}") from None
    with container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                yield index, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise ValueError(f"cannot decode video {path}: {exc}") from None


def write_video(path: os.PathLike, frames: Sequence[np.ndarray], fps: float = 24, codec: str = "libx264", **options) -> Path:
    """Write HxWx3 uint8 RGB frames (atomically: temporary name, then rename)."""
    from fractions import Fraction

    from .writers import atomic_path

    av = _av()
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=_container_format(path)) as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            h, w = frames[0].shape[:2]
            stream.width, stream.height = w, h
            # lossless codecs keep RGB (ffv1: bgr0); the others get the widely playable yuv420p
            stream.pix_fmt = {"ffv1": "bgr0", "png": "rgb24", "libx264rgb": "rgb24"}.get(codec, "yuv420p")
            if options:
                stream.options = {k: str(v) for k, v in options.items()}
            for arr in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def _container_format(path: Path) -> Optional[str]:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}.get(
        path.suffix.lower()
    )
