"""Batches of equal network input size: images of one size share a forward pass.

``DepthEstimator.estimate_each`` and the ``depth`` command both cut their images this way; the key
is the network input size (``network_input_size``), or anything else that must not share a batch.
"""

from __future__ import annotations

from typing import Callable, Dict, Hashable, List, Sequence, TypeVar

__all__ = ["group_batches"]

T = TypeVar("T")


def group_batches(items: Sequence[T], key: Callable[[T], Hashable], batch_size: int) -> List[List[T]]:
    """Items of equal ``key`` in batches of at most ``batch_size``, groups in order of first appearance."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    groups: Dict[Hashable, List[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [group[i : i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]
