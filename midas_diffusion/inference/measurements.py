"""What was measured on CPUs and decides the ``auto`` choices: each model's bf16 error
(``precision``) and OpenVINO's speed-up over torch (``openvino_backend``), kept as data in
``cpu_measurements.json`` beside this module. ``bench/bf16_accuracy.py --update`` and
``bench/cpu_backends.py --update`` rewrite their part of it."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict

MEASUREMENTS_FILE = Path(__file__).with_name("cpu_measurements.json")


@lru_cache(maxsize=1)
def cpu_measurements() -> Dict[str, Any]:
    """The measurements file as read once per process (``{"bf16_error": ..., "openvino_speedup": ...}``)."""
    return json.loads(MEASUREMENTS_FILE.read_text())


def update_measurements(part: str, entries: Dict[str, Any]) -> Path:
    """Merge ``entries`` (per model) into ``part`` of the measurements file (for the benches)."""
    data = json.loads(MEASUREMENTS_FILE.read_text())
    data.setdefault(part, {}).update(entries)
    MEASUREMENTS_FILE.write_text(json.dumps(data, indent=1) + "\n")
    cpu_measurements.cache_clear()
    return MEASUREMENTS_FILE
