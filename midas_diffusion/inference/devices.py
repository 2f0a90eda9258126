"""Which device a model runs on: ``"auto"`` and the device names users write, checked before loading.

    resolve_device("auto")     # cuda if present, else mps, else cpu
    resolve_device("cuda:1")   # torch.device('cuda:1'), or a ValueError naming what this machine has
"""

from __future__ import annotations

from typing import Union

import torch

__all__ = ["mps_available", "resolve_device"]


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(device: Union[str, torch.device, None] = "auto") -> torch.device:
    """``None``, ``""`` or ``"auto"``: CUDA where present, else MPS, else the CPU. Any other name or
    ``torch.device`` is returned as a ``torch.device`` once it is known to exist here: a misspelled
    name, a CUDA index beyond the GPUs found or MPS on a machine without it raise ``ValueError``."""
    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu")
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use e.g. 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index is not None and dev.index >= count):
            raise ValueError(f"device {str(device)!r} is not available here ({count} CUDA device(s) found); use 'cpu'")
    if dev.type == "mps" and not mps_available():
        raise ValueError(f"device {str(device)!r} is not available here (no MPS); use 'cpu'")
    return dev
