"""``midas-diffusion depth``: the parser and the run over files and videos (tar shards: ``depth_shards``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..zoo.registry import DEFAULT_MODEL
from .args import parse_export_formats, parse_formats, parse_percentile, positive_int
from .depth_video import run_video
from .inputs import collect_inputs, is_video, output_paths, read_file_list
from .image_loop import Counts, load_estimator, run_images
from .write import all_exist


def add_depth_parser(sub) -> None:
    p = sub.add_parser("depth", help="estimate depth for image files, folders, file lists, videos and tar shards")
    p.add_argument("inputs", nargs="*", help="images, videos and/or folders (searched recursively); or WebDataset "
                                             ".tar shards (shards/{00000..00099}.tar), written as shards to OUTPUT")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--files-from", action="append", default=[], metavar="LIST",
                   help="text file naming one input per line (relative to the current folder); repeatable")
    p.add_argument("--model", default=DEFAULT_MODEL, help="zoo model name, checkpoint file or saved folder")
    p.add_argument("--checkpoint", default=None, help="weights file for --model (default: weights folder)")
    p.add_argument("--weights-dir", default=None, help="folder holding the official .pt files")
    p.add_argument("--format", type=parse_formats, default=["png16"],
                   help="comma list of png16 (16-bit disparity), pfm (raw), npy (raw), preview (color); a metric "
                        "model (see `midas-diffusion models`) also writes NAME-metric.png (16-bit millimetres: "
                        "metres = value * 0.001) / .npy / .pfm (float32 metres) and NAME-metric.json stating the units")
    p.add_argument("--resolution", type=int, default=None, help="processing resolution (MiDaS --height)")
    p.add_argument("--square", action="store_true", help="resize to a square network input")
    p.add_argument("--percentile", type=parse_percentile, default=None, help="clip LOW,HIGH percentiles")
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--invert", action="store_true", help="near = dark")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:1, mps, auto (cuda, else mps, else cpu); under accelerate launch, cuda = this process's GPU")
    p.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto",
                   help="auto: bfloat16 on CPUs with native bf16 units, float16 on CUDA (bfloat16 for Swin), per model")
    p.add_argument("--batch-size", type=positive_int, default=1, help="images of equal network size per forward pass")
    p.add_argument("--read-ahead", type=int, default=2, help="batches decoded ahead in background threads (0: none)")
    p.add_argument("--decode-threads", type=positive_int, default=None,
                   help="threads decoding images ahead (default: up to 4, one core left for the main thread)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster convolutions on GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (slow first batch per size)")
    p.add_argument("--backend", choices=["auto", "torch", "openvino"], default="auto",
                   help="runtime of the network: auto (OpenVINO on a CPU where installed and measured faster, "
                        "exported in the background), torch, openvino (exports at the first image of each size)")
    p.add_argument("--tiles", action="store_true",
                   help="high resolution: overlapping tiles at the model's size aligned to a whole-image pass")
    p.add_argument("--tile-overlap", type=float, default=0.25, help="overlap of neighbouring tiles (fraction)")
    p.add_argument("--video-norm", choices=["sequence", "frame"], default="sequence",
                   help="videos: one range over a window of frames (no flicker) or per frame")
    p.add_argument("--window", type=positive_int, default=16, help="frames per range window (--video-norm sequence)")
    p.add_argument("--cut-threshold", type=float, default=0.2, help="scene-cut threshold (mean thumbnail change)")
    p.add_argument("--max-pixels", type=float, default=64e6, help="refuse larger images (default 64e6)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--export", type=parse_export_formats, default=[],
                   help="also write a 3D file per image: comma list of ply (points), glb (mesh)")
    p.add_argument("--fov", type=float, default=60.0, help="--export: field of view along the longer side, degrees")
    p.add_argument("--near", type=float, default=1.0, help="--export: distance of disparity 1")
    p.add_argument("--far", type=float, default=10.0, help="--export: distance of disparity 0")
    p.add_argument("--max-depth-jump", type=float, default=0.1, help="--export glb: cut triangles across larger jumps")
    p.add_argument("--panorama", action="store_true", help="--export: equirectangular unprojection")
    p.add_argument("--metric-from", default=None, metavar="POINTS",
                   help="known depths: CSV x,y,depth_m, 16-bit PNG in mm, NPY in metres, EXR (imageio), or a folder "
                        "of them named like the images; also writes NAME-metric.png (mm) / .npy / .pfm (metres) "
                        "and makes --export metric (a metric model needs none: it gives metres itself)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="tar shards: run here, or on Ray (ray.init(); RAY_ADDRESS names an existing cluster)")
    p.add_argument("--actors", type=positive_int, default=None,
                   help="--engine ray: model-holding actors (default: the cluster's GPUs with a GPU --device, else 1)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_depth)


def _predicts_metres(model: str) -> bool:
    """Whether ``--model`` names a metric zoo model (a checkpoint file or folder is known once loaded)."""
    from ..zoo.registry import get_model_spec

    try:
        return get_model_spec(model).predicts == "metres"
    except (ValueError, TypeError):
        return False


def _metric_from_problem(model: str) -> str:
    return (f"--metric-from fits a relative model to known depths; {model} predicts metres itself "
            "(its NAME-metric.* outputs are written without --metric-from)")


def with_metric_targets(targets: dict) -> dict:
    """An image's targets plus its ``NAME-metric.*`` files and their ``NAME-metric.json``."""
    from ..evaluation.metric_files import metric_sidecar, metric_targets

    metric = metric_targets(targets)
    return {**targets, **metric, **metric_sidecar(metric)}


def run_depth(args) -> int:
    from ..inference.devices import resolve_device
    from .depth_shards import run_here, run_shards, wants_shards
    from .parallel import current_shard, finish, process_device, sum_counts

    if wants_shards(args.inputs):
        if args.engine == "ray":
            from .depth_ray import run_on_ray

            return run_shards(args, run_on_ray)
        return run_shards(args, run_here)
    if args.engine == "ray":
        print("error: --engine ray runs tar shards (give .tar inputs)", file=sys.stderr)
        return 1
    inputs = list(args.inputs)
    for list_path in args.files_from:
        try:
            inputs.extend(read_file_list(list_path))
        except OSError as exc:
            print(f"error: cannot read file list {list_path}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if not inputs:
        print("error: no inputs (give files, folders or --files-from LIST)", file=sys.stderr)
        return 1
    if args.tiles and not 0 <= args.tile_overlap <= 0.9:
        print(f"error: --tile-overlap must be in [0, 0.9], got {args.tile_overlap}", file=sys.stderr)
        return 1
    pairs, missing = collect_inputs(inputs)
    shard = current_shard(cpu=args.device.startswith("cpu"))
    counts = Counts()
    if shard.is_main:
        for item in missing:
            print(f"error: {item}: no such file or folder", file=sys.stderr)
        counts.failed += len(missing)
    # two inputs that would write the same output: neither is processed
    by_stem: dict = {}
    for src, stem in pairs:
        by_stem.setdefault(stem, []).append(src)
    clashes = {stem for stem, srcs in by_stem.items() if len(srcs) > 1}
    if clashes and shard.is_main:
        for stem in sorted(clashes):
            names = ", ".join(str(s) for s in by_stem[stem])
            print(f"error: {names}: same output name {stem}; run them separately or give their folder", file=sys.stderr)
            counts.failed += len(by_stem[stem])
    pairs = shard.take([(src, stem) for src, stem in pairs if stem not in clashes])
    outdir = Path(args.output)
    images = [(src, output_paths(outdir, stem, args.format + args.export)) for src, stem in pairs if not is_video(src)]
    videos = [(src, stem) for src, stem in pairs if is_video(src)]
    metric_model = _predicts_metres(args.model)
    if getattr(args, "metric_from", None):
        from ..evaluation.metric_files import check_metric_request

        problem = _metric_from_problem(args.model) if metric_model else None
        problem = problem or check_metric_request(args.metric_from, len(images), len(videos), args.format, args.export)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            finish(shard)
            return 1
    if getattr(args, "metric_from", None) or metric_model:
        images = [(src, with_metric_targets(targets)) for src, targets in images]
    todo = []
    for src, targets in images:
        if not args.overwrite and all_exist(targets):
            counts.skipped += 1
        else:
            todo.append((src, targets))
    start = time.perf_counter()
    if todo or videos:
        try:
            est = load_estimator(args, resolve_device(process_device(args.device, shard)))
        except (ValueError, FileNotFoundError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            finish(shard)
            return 1
        if est.spec.predicts == "metres" and args.tiles:
            print(f"error: --tiles aligns tiles of relative depth; {est.spec.name} predicts metres (run it without --tiles)",
                  file=sys.stderr)
            finish(shard)
            return 1
        if est.spec.predicts == "metres" and not metric_model:  # a checkpoint file or folder of a metric model
            if getattr(args, "metric_from", None):
                print(f"error: {_metric_from_problem(est.spec.name)}", file=sys.stderr)
                finish(shard)
                return 1
            todo = [(src, with_metric_targets(targets)) for src, targets in todo]
        progress = not args.no_progress and shard.is_main
        run_images(est, todo, args, counts, progress)
        for src, stem in videos:
            run_video(est, src, outdir, stem, args, counts, progress)
    seconds = time.perf_counter() - start
    local = {"done": counts.done, "skipped": counts.skipped, "failed": counts.failed, "seconds": seconds}
    total = sum_counts(shard, local)
    if shard.is_main:
        # images per second of the whole run: all processes' images over the slowest wall time
        wall = total["seconds"] / shard.count if shard.count > 1 else seconds
        rate = total["done"] / wall if total["done"] and wall > 0 else 0.0
        procs = f" on {shard.count} processes" if shard.count > 1 else ""
        print(f"done {total['done']:.0f}, skipped {total['skipped']:.0f} (existing), failed {total['failed']:.0f}; "
              f"{rate:.2f} images/s{procs}")
    failed_any = total["failed"] > 0
    finish(shard)
    return 1 if failed_any else 0
