"""``midas-diffusion evaluate``: the MiDaS zero-shot protocol on local copies of the datasets.

    midas-diffusion evaluate --model dpt_swin2_tiny_256,dpt_large_384 --dataset nyu --root ~/data/nyu
    midas-diffusion evaluate --model dpt_beit_large_512 --dataset nyu,kitti --root ~/data   # ~/data/nyu, ~/data/kitti

Relative models are aligned to the ground truth by scale and shift (the paper's protocol);
metric models (``midas-diffusion models`` lists which) are scored on their metres as they are,
after the dataset's depth cap. Every sample's record says which (``"alignment"``).

Every sample's score is written on its own as soon as it is known (``RESULTS.samples/DATASET/
MODEL/ID.json``, atomically), so a killed run continues where it stopped and a run with
``--limit`` is extended by running again without it. ``RESULTS.json`` and ``RESULTS.csv`` hold the
per-dataset means; entries of earlier runs (other models or datasets) are kept, so the table and
the improvement over the reference model (the paper's "Imp") cover everything evaluated so far.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

from .args import positive_int
from .evaluate_report import DATASET_LABELS, format_table, plot_speed_quality, write_csv
from .evaluate_store import (
    aggregate,
    merge_summary,
    model_label,
    read_record,
    sample_path,
    write_json_atomic,
)


def _comma_list(text: str) -> List[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one name")
    if len(set(items)) != len(items):
        raise argparse.ArgumentTypeError(f"a name is repeated in {text!r}")
    return items


def _datasets(text: str) -> List[str]:
    from ..evaluation.datasets import DATASETS

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
    from ..evaluation.protocol import METRICS

    p = sub.add_parser("evaluate", help="score zoo models on your RGB-D data with the MiDaS zero-shot protocol",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=_comma_list, help="comma list of zoo names (or saved folders)")
    p.add_argument("--dataset", required=True, type=_datasets,
                   help="comma list of diw, eth3d, sintel, tum, kitti, nyu, folder")
    p.add_argument("--root", required=True,
                   help="the dataset's folder; with several datasets, a folder holding one sub-folder per dataset name")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N samples of each dataset")
    p.add_argument("--resolution", type=int, default=None, help="processing resolution (MiDaS --height)")
    p.add_argument("--square", action="store_true", help="square network input (the paper's □ rows)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, auto (cuda, else mps, else cpu)")
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


# ------------------------------------------------------------------------------------ prediction
def _predict(est, image):
    """The (H,W) raw prediction for one image array, at the image's size: disparity for a relative
    model, metres for a metric one (``est.spec.predicts``)."""
    return est(image).raw[0, 0]


def _prediction(est, raw) -> Dict:
    """``evaluate_sample``'s prediction arguments: a metric model's metres are scored without alignment."""
    if est.spec.predicts == "metres":
        from ..inference.outputs import MIN_METRES

        return {"pred_disparity": None, "pred_metres": raw.clamp(min=MIN_METRES)}
    return {"pred_disparity": raw}


def load_estimator(model: str, args):
    import torch

    from ..inference.devices import resolve_device
    from ..inference.estimator import DepthEstimator

    device = resolve_device(args.device)
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
    from ..evaluation.datasets import LayoutError, open_dataset
    from ..evaluation.protocol import protocol_for

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
            stored = {ref.id: read_record(paths[ref.id], proto) for ref in refs}  # each file read once
            todo = [ref for ref in refs if stored[ref.id] is None]
            if todo and est is None:
                try:
                    est = load_estimator(model, args)
                except (ValueError, FileNotFoundError, OSError) as exc:
                    print(f"error: {model}: {exc}", file=sys.stderr)
                    return 1
            lost, warm = _score(est, reader, todo, paths, proto, protocol, dataset, label, model, args, warm, stored)
            failed += lost
            entry = aggregate([r for r in stored.values() if r is not None], protocol)
            entries.setdefault(label, {"model": model, "resolution": args.resolution, "square": args.square,
                                       "datasets": {}})["datasets"][dataset] = entry
            print(f"{DATASET_LABELS[dataset]} / {label}: {len(todo)} scored now, {len(refs) - len(todo)} reused, "
                  f"{entry['skipped']} skipped as degenerate")
    summary = merge_summary(out, entries, model_label(args.reference, args.resolution, args.square), args.reference)
    write_json_atomic(out, summary)
    write_csv(out.with_suffix(".csv"), summary)
    print(format_table(summary))
    if args.plot:
        try:
            plot_speed_quality(summary, Path(args.plot))
        except (ImportError, ValueError) as exc:
            print(f"error: --plot: {exc}", file=sys.stderr)
            return 1
    return 1 if failed else 0


def _score(est, reader, todo, paths, proto, protocol, dataset, label, model, args, warm: bool,
           stored: Dict) -> Tuple[int, bool]:
    """Score ``todo`` one sample at a time, storing each result on disk and in ``stored`` (id -> record);
    returns how many could not be read, and whether the model has run (``warm``)."""
    from tqdm.auto import tqdm

    from ..evaluation.datasets import LayoutError
    from ..evaluation.protocol import evaluate_sample

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
            record.update(evaluate_sample(gt_depth=sample.depth, protocol=protocol, pairs=sample.pairs,
                                          **_prediction(est, raw)))
        except ValueError as exc:  # a property of the data (e.g. no valid depth): stored, not retried
            record["skipped"] = str(exc)
        write_json_atomic(paths[ref.id], record)
        stored[ref.id] = record
        bar.update(1)
    bar.close()
    return failed, warm
