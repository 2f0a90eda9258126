"""Argument types shared by the subcommands (``depth``, ``evaluate``, and the plugins' ``stylize``/``rgbd``)."""

from __future__ import annotations

import argparse
from typing import List, Tuple


def parse_formats(text: str) -> List[str]:
    from ..io.writers import FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
    return formats


def parse_percentile(text: str) -> Tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("percentile is LOW,HIGH, e.g. 2,98") from None
    return low, high


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_export_formats(text: str) -> List[str]:
    """``--export ply,glb``: the 3D formats of ``midas_diffusion.io.rgbd.EXPORT_FORMATS`` (both CLIs)."""
    from ..io.rgbd import EXPORT_FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown export format(s) {bad}; choose from {', '.join(EXPORT_FORMATS)}")
    return formats
