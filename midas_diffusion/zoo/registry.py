"""One registry, one canonical name per model (MiDaS' snake_case names); hub names are aliases."""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import Dict, Iterator, List

from .config import ModelSpec

DEFAULT_MODEL = "dpt_beit_large_512"  # the best of the zoo; every front end's default depth model

_BY_NAME: Dict[str, ModelSpec] = {}
_ALIASES: Dict[str, str] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _BY_NAME or spec.name in _ALIASES:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _BY_NAME[spec.name] = spec
    for alias in spec.aliases:
        if alias in _BY_NAME or alias in _ALIASES:
            raise ValueError(f"alias {alias!r} of {spec.name!r} is taken")
        _ALIASES[alias] = spec.name
    return spec


def list_models() -> List[str]:
    """Canonical names of every zoo model: the MiDaS zoo best quality first (MiDaS README order), then
    Depth Anything V2 (relative, then metric; large to small)."""
    return sorted(_BY_NAME, key=lambda n: (_BY_NAME[n].quality_rank, n))


def resolve_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    if name in _BY_NAME:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    lowered = {k.lower(): v for k, v in {**{n: n for n in _BY_NAME}, **_ALIASES}.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name, list(_BY_NAME) + list(_ALIASES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(list_models())}")


def get_model_spec(name: str) -> ModelSpec:
    return _BY_NAME[resolve_name(name)]


@contextmanager
def registered(spec: ModelSpec) -> Iterator[ModelSpec]:
    """``spec`` in the registry for the ``with`` block only (tests and experiments; the zoo's own
    models are registered once at import)."""
    register_model(spec)
    try:
        yield spec
    finally:
        del _BY_NAME[spec.name]
        for alias in spec.aliases:
            _ALIASES.pop(alias, None)
