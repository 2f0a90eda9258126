"""``midas-diffusion`` command line.

    midas-diffusion models
    midas-diffusion depth INPUT... -o OUTDIR [--model NAME] [--format png16,pfm,npy,preview] [--metric-from POINTS]
    midas-diffusion evaluate --model A,B --dataset nyu,kitti,... --root DIR [--limit N] [--out results.json]
    accelerate launch -m midas_diffusion.cli depth ...   # the same run split across processes/GPUs

Other subcommands (``stylize``, ``rgbd``, ``ui``) come from the ``pipelines`` and ``ui`` packages
through the ``midas_diffusion.cli`` entry-point group.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from .depth import add_depth_parser
from .evaluate import add_evaluate_parser
from .models import run_models


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="midas-diffusion", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_depth_parser(sub)
    models = sub.add_parser("models", help="list the zoo")
    models.set_defaults(func=run_models)
    add_evaluate_parser(sub)
    for extension in _extensions():
        extension(sub)
    return parser


def _extensions():
    """Subcommands contributed by other packages through the ``midas_diffusion.cli`` entry point
    group (each entry is a function ``add_parsers(subparsers)``), so this package never imports them."""
    from importlib.metadata import entry_points

    found = []
    for entry in entry_points(group="midas_diffusion.cli"):
        try:
            found.append(entry.load())
        except ImportError:  # an optional dependency of that package is missing
            continue
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)
