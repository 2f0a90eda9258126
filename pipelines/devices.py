"""Checking a requested device before anything is loaded."""

from __future__ import annotations

from typing import Optional, Union

import torch


def check_device(device: Optional[Union[str, torch.device]]) -> None:
    """A ``ValueError`` for a device that is misspelled or not present, before anything is loaded."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index is not None and dev.index >= count):
            raise ValueError(f"device {str(device)!r} is not available here ({count} CUDA device(s) found); use 'cpu'")
    if dev.type == "mps" and not mps_available():
        raise ValueError(f"device {str(device)!r} is not available here; use 'cpu'")


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()
