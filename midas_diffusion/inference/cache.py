"""``ModelCache``: the one place loaded models are kept between calls.

Every front end (the CLI, ``pipeline()``, the Gradio app, ComfyUI, A1111) asks one cache object
for its models instead of keeping a module-level dict of its own. The cache is bounded per kind
(default: 1 diffusion pipeline, 2 depth models), evicts the least recently used entry *before*
loading a new one (so two pipelines never sit in memory at once), and can be emptied with
``clear()``. ``counts()`` tells what it holds and how often it loaded, hit and evicted.

``weak=True`` makes a cache that never keeps a model alive by itself: it only finds a model again
while someone else (a host's own cache of node outputs) still holds it, so the host decides when
the memory goes.

>>> cache = ModelCache(limits={"pipeline": 1, "depth": 2})
>>> est = cache.get("depth", ("dpt_swin2_tiny_256", "cpu"), lambda: object())   # loads once
>>> cache.counts()["depth"]
1
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, TypeVar

T = TypeVar("T")

DEFAULT_LIMITS: Mapping[str, int] = {"pipeline": 1, "depth": 2}


def release_memory() -> None:
    """Collect garbage and return cached accelerator memory, after models were dropped."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass


class ModelCache:
    """A bounded least-recently-used cache of loaded models, by kind.

    ``limits``: the most entries kept per kind (kinds not listed are unbounded only if listed with
    ``None``; an unknown kind is a ``ValueError``, so a typo cannot create an unbounded pool).
    ``weak``: hold entries by weak reference (see the module docstring).
    """

    def __init__(self, limits: Optional[Mapping[str, Optional[int]]] = None, *, weak: bool = False):
        self.limits: Dict[str, Optional[int]] = dict(DEFAULT_LIMITS if limits is None else limits)
        for kind, limit in self.limits.items():
            if limit is not None and (not isinstance(limit, int) or limit < 0):
                raise ValueError(f"the limit for {kind!r} must be a non-negative integer or None, got {limit!r}")
        self.weak = weak
        self._entries: Dict[str, "OrderedDict[Hashable, Any]"] = {kind: OrderedDict() for kind in self.limits}
        self._lock = threading.RLock()
        self._stats = {"loads": 0, "hits": 0, "evictions": 0}

    # ------------------------------------------------------------------ lookup
    def _check_kind(self, kind: str) -> "OrderedDict[Hashable, Any]":
        if kind not in self._entries:
            raise ValueError(f"unknown cache kind {kind!r}; this cache holds {', '.join(self._entries)}")
        return self._entries[kind]

    def _live(self, value: Any) -> Any:
        return value() if self.weak else value

    def peek(self, kind: str, key: Hashable) -> Optional[Any]:
        """The cached model for ``key`` or None; does not count as a use."""
        with self._lock:
            entry = self._check_kind(kind).get(key)
            return None if entry is None else self._live(entry)

    def get(self, kind: str, key: Hashable, load: Callable[[], T]) -> T:
        """The model cached under ``key``, or ``load()``'s result, cached. Loading happens under the
        cache's lock: two threads asking for the same model load it once."""
        with self._lock:
            entries = self._check_kind(kind)
            entry = entries.get(key)
            value = None if entry is None else self._live(entry)
            if value is not None:
                entries.move_to_end(key)
                self._stats["hits"] += 1
                return value
            entries.pop(key, None)  # a dead weak reference
            self._make_room(kind, 1)
            value = load()
            self._stats["loads"] += 1
            limit = self.limits[kind]
            if limit != 0:
                entries[key] = weakref.ref(value) if self.weak else value
            return value

    def put(self, kind: str, key: Hashable, value: Any) -> Any:
        """Cache an already loaded ``value`` under ``key`` (evicting as needed); returns it."""
        with self._lock:
            entries = self._check_kind(kind)
            entries.pop(key, None)
            self._make_room(kind, 1)
            if self.limits[kind] != 0:
                entries[key] = weakref.ref(value) if self.weak else value
            return value

    # ------------------------------------------------------------------ eviction
    def _make_room(self, kind: str, needed: int) -> None:
        entries = self._entries[kind]
        for key in [k for k, v in entries.items() if self._live(v) is None]:
            del entries[key]
        limit = self.limits[kind]
        if limit is None:
            return
        evicted = False
        while entries and len(entries) + needed > limit:
            entries.popitem(last=False)
            self._stats["evictions"] += 1
            evicted = True
        if evicted:
            release_memory()

    def evict(self, kind: str, key: Hashable) -> bool:
        """Drop one entry; True if it was there."""
        with self._lock:
            found = self._check_kind(kind).pop(key, None) is not None
        if found:
            self._stats["evictions"] += 1
            release_memory()
        return found

    def discard(self, value: Any) -> int:
        """Drop every entry holding ``value`` (e.g. a model a host unloads); returns how many."""
        with self._lock:
            dropped = 0
            for entries in self._entries.values():
                for key in [k for k, v in entries.items() if self._live(v) is value]:
                    del entries[key]
                    dropped += 1
        if dropped:
            self._stats["evictions"] += dropped
            release_memory()
        return dropped

    def clear(self, kind: Optional[str] = None) -> None:
        """Forget every model (of ``kind``, or all); their memory is freed once nothing else holds them."""
        with self._lock:
            for name, entries in self._entries.items():
                if kind is None or name == kind:
                    entries.clear()
            if kind is not None:
                self._check_kind(kind)
        release_memory()

    # ------------------------------------------------------------------ introspection
    def keys(self, kind: str) -> List[Hashable]:
        """The keys of the live entries of ``kind``, least recently used first."""
        with self._lock:
            return [k for k, v in self._check_kind(kind).items() if self._live(v) is not None]

    def values(self, kind: str) -> List[Any]:
        with self._lock:
            return [v for v in (self._live(e) for e in self._check_kind(kind).values()) if v is not None]

    def counts(self) -> Dict[str, int]:
        """Live entries per kind, plus ``loads``, ``hits`` and ``evictions`` so far."""
        with self._lock:
            counts = {kind: len(self.keys(kind)) for kind in self._entries}
            counts.update(self._stats)
            return counts

    def __repr__(self) -> str:
        counts = self.counts()
        held = ", ".join(f"{k}={counts[k]}/{self.limits[k]}" for k in self._entries)
        return f"ModelCache({held}{', weak' if self.weak else ''})"


_DEFAULT = ModelCache()


def default_cache() -> ModelCache:
    """The process-wide cache every front end uses unless given another one."""
    return _DEFAULT


def source_key(name_or_path: str) -> tuple:
    """How a depth model's source is keyed: a zoo name as it is; a file or folder by its absolute
    path, size and modification time (a file rewritten at the same path loads again)."""
    import os
    from pathlib import Path

    if os.path.exists(name_or_path):
        path = Path(name_or_path).resolve()
        target = path / "model.safetensors" if path.is_dir() else path
        stat = target.stat() if target.exists() else None
        return (str(path), stat.st_size if stat else 0, stat.st_mtime_ns if stat else 0)
    return (name_or_path,)


def load_depth_model(
    name_or_path: str,
    *,
    device: Any = None,
    dtype: Any = None,
    weights_dir: Any = None,
    cache: Optional[ModelCache] = None,
    **kwargs: Any,
):
    """A ``DepthEstimator`` for a zoo name, checkpoint file or saved folder, from ``cache`` (default:
    the process-wide one; use ``DepthEstimator.from_pretrained`` for an uncached model). It is on
    ``device`` (default: the CPU) in ``dtype`` (default ``"auto"``: the model's own rule there); a
    cached model that someone moved elsewhere is moved back, so the key and the model agree on where
    it is."""
    import os

    import torch

    from .estimator import DepthEstimator

    if not name_or_path:
        raise ValueError("no depth model given: pick a zoo model or give a checkpoint file or folder")
    cache = default_cache() if cache is None else cache
    dtype = "auto" if dtype is None else dtype  # one cache entry for both spellings of the default
    device_t = torch.device(device) if device is not None else None
    weights = str(weights_dir) if weights_dir else os.environ.get("MIDAS_DIFFUSION_WEIGHTS", "")
    key = (*weights_key(str(name_or_path), weights or None), str(device_t), str(dtype), weights,
           tuple(sorted(kwargs.items())))

    def load():
        # loaded in float32 and cast once on its device ("auto" resolves there, for this model)
        est = DepthEstimator.from_pretrained(str(name_or_path), weights_dir=weights_dir or None,
                                             dtype=torch.float32, **kwargs)
        return est.to(device_t, dtype)  # names resolve for device_t and this model

    est = cache.get("depth", key, load)
    if device_t is not None and torch.device(est.device) != device_t:
        est.to(device_t)
    return est


def weights_key(name_or_path: str, weights_dir: Any = None) -> tuple:
    """What identifies the weights a depth model loads: a file or folder by ``source_key`` (path,
    size, mtime); a zoo name by the weights file it would load from disk now, so a ``NAME.pt``
    replaced in the weights folder counts as new weights (the name and folder when none is there yet)."""
    import os

    from ..zoo.registry import get_model_spec
    from ..loading.weights import resolve_weights

    if os.path.exists(name_or_path):
        return source_key(name_or_path)
    try:
        found = resolve_weights(get_model_spec(name_or_path), weights_dir, allow_download=False, progress=False)
    except (KeyError, ValueError, TypeError, OSError):  # unknown name or no file: loading says so
        return (name_or_path, str(weights_dir))
    return (name_or_path, *source_key(str(found)))

