"""``evaluate``'s results on disk: one JSON per scored sample (written atomically, so a killed run
continues where it stopped), and the per-dataset means merged with those of earlier runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional

from .evaluate_report import MEANS, TABLE_ORDER


# --------------------------------------------------------------------------------------- storage
def model_label(model: str, resolution: Optional[int], square: bool) -> str:
    """How a model run is named in files and tables: the name, ``@RESOLUTION``, ``-square``."""
    name = Path(model).name if os.path.exists(model) else model
    return name + (f"@{resolution}" if resolution else "") + ("-square" if square else "")


def sample_path(store: Path, dataset: str, label: str, sample_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id)[-100:]
    digest = hashlib.sha1(sample_id.encode()).hexdigest()[:10]
    return store / dataset / re.sub(r"[^A-Za-z0-9@._-]+", "_", label) / f"{safe}-{digest}.json"


def write_json_atomic(path: Path, data) -> None:
    from ..io.writers import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def read_record(path: Path, protocol: Dict) -> Optional[Dict]:
    """A stored sample result, or ``None`` if absent, unreadable (a run killed mid-write leaves
    only a temporary file, never a partial one) or scored under another protocol."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("protocol") == protocol else None


def aggregate(records: List[Dict], protocol) -> Dict:
    """Means over the scored samples of one model on one dataset (each sample counts once)."""
    scored = [r for r in records if "value" in r]
    entry = {"metric": protocol.metric, "protocol": protocol.to_dict(), "samples": len(scored),
             "skipped": len(records) - len(scored), "value": None, "fps": None}
    if scored:
        entry["value"] = sum(r["value"] for r in scored) / len(scored)
        for key in MEANS:
            values = [r[key] for r in scored if key in r]
            if values:
                entry[key] = sum(values) / len(values)
        alignments = sorted({r["alignment"] for r in scored if "alignment" in r})
        if alignments:  # "scale_shift" (relative models) or "none" (metric models, scored on their metres)
            entry["alignment"] = ",".join(alignments)
        seconds = [r["seconds"] for r in scored if r.get("seconds")]
        entry["fps"] = len(seconds) / sum(seconds) if seconds else None
    return entry


def merge_summary(out: Path, entries: Dict[str, Dict], reference_label: str, reference: str) -> Dict:
    """This run's entries over those already in ``out``; then each model's improvement."""
    from ..evaluation.protocol import improvement

    models: Dict[str, Dict] = {}
    if out.is_file():
        try:
            models = json.loads(out.read_text()).get("models", {})
        except (OSError, ValueError):
            models = {}
    for label, entry in entries.items():
        kept = models.get(label, {}).get("datasets", {})
        models[label] = {**entry, "datasets": {**kept, **entry["datasets"]}}
    ref_label = reference_label if reference_label in models else reference
    errors = {label: {d: e["value"] for d, e in m["datasets"].items() if e.get("value") is not None}
              for label, m in models.items()}
    for label, m in models.items():
        m["improvement_pct"] = improvement(errors[label], errors[ref_label]) if ref_label in models else None
    present = [d for d in TABLE_ORDER if any(d in m["datasets"] for m in models.values())]
    return {"reference": ref_label if ref_label in models else reference, "reference_found": ref_label in models,
            "datasets": present, "models": models,
            "note": "per-dataset means of per-sample errors (lower is better); delta_bad and whdr are fractions"}
