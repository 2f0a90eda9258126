"""Reading the next batches of files ahead (the batches themselves: ``inference.batching.group_batches``)."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def peek_size(path: os.PathLike) -> Optional[Tuple[int, int]]:
    """``(height, width)`` of an image file as it will be read (EXIF rotation applied), from its
    header only; None if the file cannot be opened (the full read reports why)."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - any unreadable file is reported by the real read
        return None
    return (w, h) if orientation in _TRANSPOSING_ORIENTATIONS else (h, w)


def _load_one(item: T, load: Callable[[T], R]) -> object:
    try:
        return load(item)
    except Exception as exc:  # noqa: BLE001 - handed to the consumer, who reports it per file
        return exc


def default_decode_threads() -> int:
    """Decoding threads for read-ahead: up to 4, one core left to the main thread where there are few."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def read_ahead(
    batches: Iterable[Sequence[T]], load: Callable[[T], R], depth: int = 2, workers: int = 1
) -> Iterator[Tuple[Sequence[T], List[object]]]:
    """Yield ``(batch, loaded)`` in order while ``workers`` threads load the items of up to ``depth``
    batches ahead (Pillow decodes without the GIL, so threads decode in parallel while the caller
    computes). A file that fails to load appears in ``loaded`` as its exception."""
    if depth < 1:
        for batch in batches:
            yield batch, [_load_one(item, load) for item in batch]
        return
    pending: Deque[Tuple[Sequence[T], List[Future]]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="midas-read") as pool:
        for batch in batches:
            pending.append((batch, [pool.submit(_load_one, item, load) for item in batch]))
            if len(pending) > depth:
                batch0, futures = pending.popleft()
                yield batch0, [f.result() for f in futures]
        while pending:
            batch0, futures = pending.popleft()
            yield batch0, [f.result() for f in futures]
