"""Peak memory of loading a zoo model, as a multiple of one copy of its weights.

    python bench/load_memory.py [--model dpt_beit_large_384] [--formats pt,safetensors] [--paths lean,component,saved,copy]

Writes a random-weights checkpoint of the model to a temporary folder (``.pt`` and
``.safetensors``), then loads it in a fresh Python process per measurement and reports that
process's peak resident memory (RSS): the figure is (peak RSS - RSS before loading) / (bytes of one
copy of the weights). The RSS before loading is the process after ``import midas_diffusion``
(torch, timm), which is the same for every row; the total peak is printed too.

Paths: ``lean`` is ``midas_diffusion.loading.factory.load_model`` (``create_model(name, checkpoint)`` and
``DepthEstimator.from_pretrained`` use it): built on the meta device, tensors read into memory the
model then owns. ``component`` is ``MidasDepthEstimator.from_zoo`` (the diffusers component of the
pipelines, which wraps the loaded estimator without a second network). ``saved`` is
``MidasDepthEstimator.from_pretrained`` on what its ``save_pretrained`` wrote (a pipeline's
``depth_estimator`` folder; safetensors only). ``copy`` is what loading did before: a randomly
initialized model that the checkpoint is copied into (two copies at the peak).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _write(name: str, folder: Path) -> None:
    """Child: a random-weights checkpoint of ``name`` as .pt and .safetensors, and its size."""
    import torch
    from safetensors.torch import save_file

    import midas_diffusion as md

    model = md.create_model(name)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, folder / "weights.pt")
    save_file(state, str(folder / "weights.safetensors"))
    nbytes = sum(v.numel() * v.element_size() for v in state.values())
    try:  # the pipelines' saved depth component (needs diffusers)
        from midas_diffusion.pipelines.components import MidasDepthEstimator

        est = md.DepthEstimator(model, md.get_model_spec(name))  # the same weights as the files
        MidasDepthEstimator.from_estimator(est).save_pretrained(folder / "component")
    except ImportError:
        pass
    (folder / "weights.json").write_text(json.dumps({"bytes": nbytes}))


def _load(name: str, path: Path, how: str) -> None:
    """Child: load ``path`` the ``how`` way and print the RSS figures as JSON."""
    import midas_diffusion  # noqa: F401  (torch, timm: part of the baseline, like in any host)
    from midas_diffusion.loading.checkpoints import load_into
    from midas_diffusion.loading.factory import create_model, load_model

    if how in ("component", "saved"):  # diffusers is part of the baseline here (a pipeline process imports it anyway)
        from midas_diffusion.pipelines.components import MidasDepthEstimator
    before = _peak_rss_bytes()
    if how == "lean":
        model = load_model(name, path)
    elif how == "component":  # the pipelines' depth component: wraps the loaded estimator, no copy
        model = MidasDepthEstimator.from_zoo(name, checkpoint=path).net
    elif how == "saved":  # a saved component folder: read once, taken by the model without a copy
        model = MidasDepthEstimator.from_pretrained(path).net
    else:
        model = load_into(create_model(name), path, model_name=name)
    assert not any(p.is_meta for p in model.parameters())
    print(json.dumps({"before": before, "peak": _peak_rss_bytes()}))


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"child {' '.join(args)} failed:\n{out.stderr}")
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dpt_beit_large_384")
    parser.add_argument("--formats", default="pt,safetensors")
    parser.add_argument("--paths", default="lean,component,saved,copy")
    parser.add_argument("--_write", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_load", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._write:
        return _write(args._write[0], Path(args._write[1]))
    if args._load:
        return _load(args._load[0], Path(args._load[1]), args._load[2])

    from midas_diffusion.zoo.registry import resolve_name

    name = resolve_name(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        _child("--_write", name, tmp)
        weights = json.loads((Path(tmp) / "weights.json").read_text())["bytes"]
        print(f"{name}: one copy of the weights = {weights / MIB:.0f} MiB; one fresh process per row")
        print(f"{'format':13s} {'path':9s} {'RSS before':>10s} {'peak RSS':>9s} {'(peak-before)/weights':>22s} "
              f"{'peak/weights':>13s}")
        for how in args.paths.split(","):
            for fmt in ["safetensors"] if how == "saved" else args.formats.split(","):
                path = Path(tmp) / ("component" if how == "saved" else f"weights.{fmt}")
                if not path.exists():
                    print(f"{'.' + fmt:13s} {how:9s} (not written: diffusers is not installed)")
                    continue
                rss = _child("--_load", name, str(path), how)
                grown = (rss["peak"] - rss["before"]) / weights
                print(
                    f"{'.' + fmt:13s} {how:9s} {rss['before'] / MIB:7.0f} MiB {rss['peak'] / MIB:5.0f} MiB "
                    f"{grown:21.2f}x {rss['peak'] / weights:12.2f}x"
                )


if __name__ == "__main__":
    main()
