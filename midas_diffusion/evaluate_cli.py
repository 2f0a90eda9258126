"""``midas-diffusion evaluate``: the MiDaS zero-shot protocol on local copies of the datasets.

    midas-diffusion evaluate --model dpt_swin2_tiny_256,dpt_large_384 --dataset nyu --root ~/data/nyu
    midas-diffusion evaluate --model dpt_beit_large_512 --dataset nyu,kitti --root ~/data   # ~/data/nyu, ~/data/kitti

Every sample's score is written on its own as soon as it is known (``RESULTS.samples/DATASET/
MODEL/ID.json``, atomically), so a killed run continues where it stopped and a run with
``--limit`` is extended by running again without it. ``RESULTS.json`` and ``RESULTS.csv`` hold the
per-dataset means; entries of earlier runs (other models or datasets) are kept, so the table and
the improvement over the reference model (the paper's "Imp") cover everything evaluated so far.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .cli import _positive_int  # the depth command's own check

TABLE_ORDER = ("diw", "eth3d", "sintel", "tum", "kitti", "nyu", "folder")
DATASET_LABELS = {"diw": "DIW", "eth3d": "ETH3D", "sintel": "Sintel", "tum": "TUM", "kitti": "KITTI", "nyu": "NYU",
                  "folder": "folder"}
MEANS = ("absrel", "delta_bad", "delta1", "delta2", "delta3", "rmse", "whdr")


def _comma_list(text: str) -> List[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one name")
    if len(set(items)) != len(items):
        raise argparse.ArgumentTypeError(f"a name is repeated in {text!r}")
    return items


def _datasets(text: str) -> List[str]:
    from .datasets import DATASETS

    items = _comma_list(text)
    bad = [d for d in items if d not in DATASETS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown dataset(s) {bad}; choose from {', '.join(DATASETS)}")
    return items


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_evaluate_parser(sub) -> None:
    from .evaluation import METRICS

    p = sub.add_parser("evaluate", help="score zoo models on your RGB-D data with the MiDaS zero-shot protocol",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=_comma_list, help="comma list of zoo names (or saved folders)")
    p.add_argument("--dataset", required=True, type=_datasets,
                   help="comma list of diw, eth3d, sintel, tum, kitti, nyu, folder")
    p.add_argument("--root", required=True,
                   help="the dataset's folder; with several datasets, a folder holding one sub-folder per dataset name")
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N samples of each dataset")
    p.add_argument("--resolution", type=int, default=None, help="processing resolution (MiDaS --height)")
    p.add_argument("--square", action="store_true", help="square network input (the paper's □ rows)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.add_argument("--out", default="results.json", help="summary JSON (a CSV and a .samples folder go beside it)")
    p.add_argument("--reference", default="dpt_large_384", help="model the improvement (Imp %%) is measured against")
    p.add_argument("--metric", choices=METRICS, default=None, help="override the dataset's metric (not for diw)")
    p.add_argument("--depth-cap", type=_positive_float, default=None,
                   help="override the dataset's depth cap in metres (default: per dataset, see the README)")
    p.add_argument("--depth-scale", type=_positive_float, default=None,
                   help="folder layout: metres per stored depth unit (default 0.001 for PNG, 1 for NPY/PFM/EXR)")
    p.add_argument("--sintel-pass", choices=["final", "clean"], default="final")
    p.add_argument("--weights-dir", default=None, help="folder holding the official .pt files")
    p.add_argument("--plot", default=None, metavar="PNG", help="also draw speed vs. improvement (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_evaluate)


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
    from .writers import atomic_path

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


# ------------------------------------------------------------------------------------ prediction
def _predict(est, image):
    """The (H,W) raw prediction for one image array, at the image's size."""
    return est(image).raw[0, 0]


def _load_estimator(model: str, args):
    import torch

    from .estimator import DepthEstimator

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available here")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: MPS is not available here")
    est = DepthEstimator.from_pretrained(model, weights_dir=args.weights_dir, resolution=args.resolution,
                                         square=args.square or None, progress=not args.no_progress,
                                         dtype=torch.float32)  # cast once, below, for the device it runs on
    est = est.at_resolution(args.resolution)  # a saved folder keeps its own resolution otherwise
    return est.to(device, args.dtype)


# ---------------------------------------------------------------------------------------- run
def _roots(args) -> Dict[str, Path]:
    root = Path(args.root).expanduser()
    if len(args.dataset) == 1:
        return {args.dataset[0]: root}
    return {d: root / d for d in args.dataset}


def run_evaluate(args) -> int:
    from .datasets import LayoutError, open_dataset
    from .evaluation import protocol_for

    out = Path(args.out)
    store = out.parent / (out.stem + ".samples")
    prepared = []
    try:
        for dataset, root in _roots(args).items():
            protocol = protocol_for(dataset, metric=args.metric, depth_cap=args.depth_cap)
            reader = open_dataset(dataset, root, depth_scale=args.depth_scale if dataset == "folder" else None,
                                  render_pass=args.sintel_pass)
            refs = reader.samples()[: args.limit]
            prepared.append((dataset, protocol, reader, refs))
    except (LayoutError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    failed = 0
    entries: Dict[str, Dict] = {}
    for model in args.model:
        label = model_label(model, args.resolution, args.square)
        est, warm = None, False
        for dataset, protocol, reader, refs in prepared:
            proto = protocol.to_dict()
            paths = {ref.id: sample_path(store, dataset, label, ref.id) for ref in refs}
            todo = [ref for ref in refs if read_record(paths[ref.id], proto) is None]
            if todo and est is None:
                try:
                    est = _load_estimator(model, args)
                except (ValueError, FileNotFoundError, OSError) as exc:
                    print(f"error: {model}: {exc}", file=sys.stderr)
                    return 1
            lost, warm = _score(est, reader, todo, paths, proto, protocol, dataset, label, model, args, warm)
            failed += lost
            records = [read_record(paths[ref.id], proto) for ref in refs]
            entry = _aggregate([r for r in records if r is not None], protocol)
            entries.setdefault(label, {"model": model, "resolution": args.resolution, "square": args.square,
                                       "datasets": {}})["datasets"][dataset] = entry
            print(f"{DATASET_LABELS[dataset]} / {label}: {len(todo)} scored now, {len(refs) - len(todo)} reused, "
                  f"{entry['skipped']} skipped as degenerate")
    summary = _merge(out, entries, model_label(args.reference, args.resolution, args.square), args.reference)
    write_json_atomic(out, summary)
    _write_csv(out.with_suffix(".csv"), summary)
    print(format_table(summary))
    if args.plot:
        try:
            plot_speed_quality(summary, Path(args.plot))
        except (ImportError, ValueError) as exc:
            print(f"error: --plot: {exc}", file=sys.stderr)
            return 1
    return 1 if failed else 0


def _score(est, reader, todo, paths, proto, protocol, dataset, label, model, args, warm: bool) -> Tuple[int, bool]:
    """Score ``todo`` one sample at a time, storing each result; returns how many could not be read,
    and whether the model has run (``warm``)."""
    from tqdm.auto import tqdm

    from .datasets import LayoutError
    from .evaluation import evaluate_sample

    failed = 0
    total = len(paths)
    bar = tqdm(total=total, initial=total - len(todo), desc=f"{dataset} {label}", unit="img",
               disable=args.no_progress)
    for ref in todo:
        record = {"id": ref.id, "dataset": dataset, "model": model, "label": label, "protocol": proto}
        try:
            sample = reader.load(ref)
            if not warm:  # a model's first call (allocations, kernel choice) is not timed
                _predict(est, sample.image)
                warm = True
            start = time.perf_counter()
            raw = _predict(est, sample.image)
            record["seconds"] = time.perf_counter() - start
        except (LayoutError, ValueError, OSError) as exc:  # the user's files: reported, not stored, retried next run
            failed += 1
            tqdm.write(f"error: {dataset} {ref.id}: {exc}", file=sys.stderr)
            bar.update(1)
            continue
        try:
            record.update(evaluate_sample(raw, sample.depth, None, protocol, pairs=sample.pairs))
        except ValueError as exc:  # a property of the data (e.g. no valid depth): stored, not retried
            record["skipped"] = str(exc)
        write_json_atomic(paths[ref.id], record)
        bar.update(1)
    bar.close()
    return failed, warm


def _aggregate(records: List[Dict], protocol) -> Dict:
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
        seconds = [r["seconds"] for r in scored if r.get("seconds")]
        entry["fps"] = len(seconds) / sum(seconds) if seconds else None
    return entry


def _merge(out: Path, entries: Dict[str, Dict], reference_label: str, reference: str) -> Dict:
    """This run's entries over those already in ``out``; then each model's improvement."""
    from .evaluation import improvement

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


def _write_csv(path: Path, summary: Dict) -> None:
    from .writers import atomic_path

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
    from .evaluation import METRIC_LABELS

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
