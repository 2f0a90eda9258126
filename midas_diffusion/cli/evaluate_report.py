"""``evaluate``'s summary as a CSV, the paper's kind of table, and a speed-quality plot."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Optional

# the per-sample figures averaged per dataset (and written to the CSV)
MEANS = ("absrel", "delta_bad", "delta1", "delta2", "delta3", "rmse", "whdr")


TABLE_ORDER = ("diw", "eth3d", "sintel", "tum", "kitti", "nyu", "folder")


DATASET_LABELS = {"diw": "DIW", "eth3d": "ETH3D", "sintel": "Sintel", "tum": "TUM", "kitti": "KITTI", "nyu": "NYU",
                  "folder": "folder"}


def write_csv(path: Path, summary: Dict) -> None:
    from ..io.writers import atomic_path

    columns = ["label", "model", "dataset", "metric", "value", "samples", "skipped", "fps", *MEANS, "improvement_pct"]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for label, m in summary["models"].items():
                for dataset in summary["datasets"]:
                    if dataset in m["datasets"]:
                        writer.writerow({"label": label, "model": m["model"], "dataset": dataset,
                                         "improvement_pct": m.get("improvement_pct"), **m["datasets"][dataset]})


def _cell(entry: Optional[Dict]) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    if entry["metric"] == "delta_bad":
        return f"{100 * entry['value']:.2f}"
    return f"{entry['value']:.4f}"


def _best_first(models: Dict[str, Dict]):
    """Models by improvement, best first (as the paper orders its table); those without one last, by name."""
    return sorted(models.items(), key=lambda item: (item[1].get("improvement_pct") is None,
                                                    -(item[1].get("improvement_pct") or 0.0), item[0]))


def format_table(summary: Dict) -> str:
    """The paper's kind of table: one row per model, the dataset's metric per column, Imp % and FPS."""
    from ..evaluation.protocol import METRIC_LABELS

    datasets = summary["datasets"]
    metric_of = {}
    for m in summary["models"].values():
        for d, e in m["datasets"].items():
            metric_of.setdefault(d, e["metric"])
    headers = ["model"] + [f"{DATASET_LABELS[d]} {METRIC_LABELS[metric_of[d]]}" for d in datasets] + ["Imp %", "FPS"]
    rows = []
    for label, m in _best_first(summary["models"]):
        imp = m.get("improvement_pct")
        fps = [e["fps"] for e in m["datasets"].values() if e.get("fps")]
        rows.append([label] + [_cell(m["datasets"].get(d)) for d in datasets]
                    + ["-" if imp is None else f"{round(imp):d}", f"{sum(fps) / len(fps):.1f}" if fps else "-"])
    widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    counts = ", ".join(
        f"{DATASET_LABELS[d]} {max(m['datasets'][d]['samples'] for m in summary['models'].values() if d in m['datasets'])}"
        for d in datasets)
    lines.append(f"lower is better; samples: {counts}")
    if not summary.get("reference_found"):
        lines.append(f"Imp %: needs the reference model {summary['reference']} on the same data (--reference NAME)")
    else:
        lines.append(f"Imp % = 100 * (1 - mean over datasets of error / error of {summary['reference']})")
    return "\n".join(lines)


def plot_speed_quality(summary: Dict, path: Path) -> Path:
    """Frames per second against improvement over the reference, one labelled point per model."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("needs matplotlib: pip install 'midas-diffusion[plot]'") from None
    points = []
    for label, m in summary["models"].items():
        fps = [e["fps"] for e in m["datasets"].values() if e.get("fps")]
        if fps and m.get("improvement_pct") is not None:
            points.append((label, sum(fps) / len(fps), m["improvement_pct"]))
    if not points:
        raise ValueError(f"no model has both a speed and an improvement over {summary['reference']}")
    fig, ax = plt.subplots(figsize=(7, 5))
    for label, fps, imp in points:
        ax.scatter(fps, imp)
        ax.annotate(label, (fps, imp), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("frames per second (this machine)")
    ax.set_ylabel(f"improvement over {summary['reference']} (%)")
    ax.grid(True, alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path
