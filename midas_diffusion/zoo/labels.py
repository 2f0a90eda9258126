"""What a user sees of a model beside its name where they pick it: what it predicts and its licence.

One definition for every listing (``midas-diffusion models``, the app's model list, the ComfyUI
and A1111 names and tooltips), read only from the spec (``predicts``, ``max_depth``, ``license``).
"""

from __future__ import annotations

from typing import List

from .config import ModelSpec

PLAIN_LICENSE = "MIT"  # the MiDaS zoo's licence: not repeated beside every name


def predicts_label(spec: ModelSpec) -> str:
    """``"relative"`` (disparity, up to scale and shift) or ``"metric 0-20 m"``."""
    if spec.predicts != "metres":
        return "relative"
    return f"metric 0-{spec.max_depth:g} m" if spec.max_depth else "metric"


def model_tags(spec: ModelSpec) -> List[str]:
    """What to show beside the name: ``"metric 0-20 m"`` for a metric model, the licence when it is not
    MIT (``"licence CC-BY-NC-4.0"``); none for a relative MIT model."""
    tags = []
    if spec.predicts == "metres":
        tags.append(predicts_label(spec))
    if spec.license != PLAIN_LICENSE:
        tags.append(f"licence {spec.license}")
    return tags


def model_label(spec: ModelSpec) -> str:
    """The name with its tags: ``"name"`` or ``"name [metric 0-20 m, licence CC-BY-NC-4.0]"``."""
    tags = model_tags(spec)
    return f"{spec.name} [{', '.join(tags)}]" if tags else spec.name


def model_notes(specs) -> str:
    """One line per model with tags (for a tooltip listing a whole choice); empty when none has any."""
    return "\n".join(model_label(s) for s in specs if model_tags(s))
