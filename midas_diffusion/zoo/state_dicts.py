"""What checkpoint loaders and encoder families share: the state-dict type, the error, renaming rules.

This module depends on nothing else in the package, so ``checkpoints``, ``convert_transformers``
and every ``backbones/<family>.py`` can use it without importing each other.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

StateDict = Dict[str, torch.Tensor]

# (full-match pattern, replacement template or a function of the match)
Rule = Tuple[str, Union[str, Callable[[re.Match], str]]]


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model it was given to."""


def show_keys(keys: Sequence[str], limit: int = 5) -> str:
    """``a, b, c (+N more)``: the first ``limit`` keys of a list, for error messages."""
    keys = list(keys)
    return ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """The entries under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def add_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    return {prefix + k: v for k, v in state_dict.items()}


def drop_keys(state_dict: Mapping[str, torch.Tensor], prefixes: Tuple[str, ...] = (), suffixes: Tuple[str, ...] = ()):
    """Remove classifier heads (by prefix) and computed buffers (by suffix)."""
    return {
        k: v
        for k, v in state_dict.items()
        if not any(k.startswith(p) for p in prefixes) and not any(k.endswith(s) for s in suffixes)
    }


def apply_rules(key: str, rules: Sequence[Rule]) -> Optional[str]:
    """The new name of ``key`` by the first rule whose pattern matches all of it; None if none does."""
    for pattern, replacement in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return replacement(match) if callable(replacement) else match.expand(replacement)
    return None


def rename_by_rules(state_dict: Mapping[str, torch.Tensor], rules: Sequence[Rule]) -> StateDict:
    """Rename every key a rule matches; other keys keep their name (a strict load then names them).

    The result depends on names only, never on the order of the keys. Two tensors that would get
    the same name are a ``CheckpointError``.
    """
    out: StateDict = {}
    sources: Dict[str, str] = {}
    for key, value in state_dict.items():
        new_key = apply_rules(key, rules) or key
        if new_key in out:
            raise CheckpointError(f"checkpoint tensors {sources[new_key]} and {key} both map to {new_key}")
        out[new_key] = value
        sources[new_key] = key
    return out


def indexed(names: Sequence[str], sub_rules: Sequence[Rule] = ()) -> Callable[[re.Match], str]:
    """A rule replacement for patterns with the groups ``n`` (a flat index, as in ``blocks.7.``) and
    ``rest``: ``names[n] + "." + rest``, ``rest`` renamed by the first of ``sub_rules`` that matches
    it (else kept). An index beyond ``names`` keeps the whole key, which a strict load then reports."""

    def replace(match: re.Match) -> str:
        n = int(match.group("n"))
        if n >= len(names):
            return match.group(0)
        rest = match.group("rest")
        return f"{names[n]}.{apply_rules(rest, sub_rules) or rest}"

    return replace
