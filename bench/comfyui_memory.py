"""How much of the memory our nodes take ComfyUI gets back with its own ``POST /free``.

    python tests/comfyui_engine.py prepare                     # the real engine, once (see there)
    python bench/comfyui_memory.py                             # dpt_beit_base_384, random weights
    python bench/comfyui_memory.py --model dpt_swin2_tiny_256 --stylize

Runs ComfyUI 0.3.75's own server (CPU) with the node pack, and reads the server process's resident
memory (RSS): idle, after a depth graph (LoadImage -> load -> estimate -> save, preview, PLY and GLB
export), after ``/free`` (unload_models + free_memory, the "Free model and node cache" button), and
after the same graph again (which must load the model again). ``--stylize`` does the same with the
stylize node on a tiny random diffusion model (``tests/tiny_sd.py``). The acceptance figure: at
least 70% of what the depth graph took is given back. Weights are random (nothing is downloaded).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import comfyui_engine  # noqa: E402
from comfyui_engine import ComfyServer  # noqa: E402

PROBE = "10"  # the probe node's id in every graph


def rss_mib(server: ComfyServer) -> float:
    import psutil

    return psutil.Process(server.process.pid).memory_info().rss / 2**20


def settled_rss(server: ComfyServer, samples: int = 4, every_s: float = 0.5, limit_s: float = 30) -> float:
    """RSS once it stops changing (the prompt worker applies /free and collects on its own thread)."""
    values, start = [rss_mib(server)], time.monotonic()
    while time.monotonic() - start < limit_s:
        time.sleep(every_s)
        values.append(rss_mib(server))
        recent = values[-samples:]
        if len(recent) == samples and max(recent) - min(recent) < 2:
            break
    return values[-1]


def depth_graph(model: str, weights_dir: str, prefix: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "MidasLoadDepthModel", "inputs": {"model": model, "device": "auto", "dtype": "float32",
                                                              "model_path": "", "weights_dir": weights_dir}},
        "3": {"class_type": "MidasEstimateDepth",
              "inputs": {"image": ["1", 0], "depth_model": ["2", 0], "resolution": 0, "percentile_low": 0.0,
                         "percentile_high": 100.0, "gamma": 1.0, "invert": False}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": f"{prefix}_depth"}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        "6": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 1]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"{prefix}_mask"}},
        "8": {"class_type": "MidasExportRGBD", "inputs": {"image": ["1", 0], "disparity": ["3", 1], "format": "ply",
                                                          "fov_deg": 60.0, "near": 1.0, "far": 10.0,
                                                          "max_depth_jump": 0.1, "filename_prefix": f"{prefix}_ply",
                                                          "output_dir": ""}},
        "9": {"class_type": "MidasExportRGBD", "inputs": {"image": ["1", 0], "disparity": ["3", 1], "format": "glb",
                                                          "fov_deg": 60.0, "near": 1.0, "far": 10.0,
                                                          "max_depth_jump": 0.1, "filename_prefix": f"{prefix}_glb",
                                                          "output_dir": ""}},
        PROBE: {"class_type": "MidasTestProbe", "inputs": {"label": prefix, "depth_model": ["2", 0]}},
    }


def stylize_graph(base: str, prefix: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "3": {"class_type": "MidasDepthStylize",
              "inputs": {"image": ["1", 0], "prompt": "a red house", "method": "controlnet", "base": base,
                         "negative_prompt": "", "steps": 2, "guidance": 7.5, "strength": 0.8, "seed": 0,
                         "resolution": 0, "percentile_low": 0.0, "percentile_high": 100.0, "gamma": 1.0,
                         "invert": False, "device": "auto", "dtype": "float32"}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
        PROBE: {"class_type": "MidasTestProbe", "inputs": {"label": prefix}},
    }


def given_back(row: dict) -> str:
    """The share of the graph's memory that /free gave back ('-' when the graph took none)."""
    return "-" if row["given_back"] is None else f"{row['given_back']:.0%}"


def probe(run) -> dict:
    if run.status != "success":
        raise SystemExit(f"prompt failed: {run.http_status} {run.response} {run.messages('execution_error')}")
    (report,) = run.ui(PROBE)["probe"]
    return report


def measure(server: ComfyServer, name: str, graph: dict) -> dict:
    server.free(unload_models=True, free_memory=True)  # idle: nothing of an earlier graph held
    idle = settled_rss(server)
    first = probe(server.run(graph))
    loaded = settled_rss(server)
    server.free(unload_models=True, free_memory=True)
    freed = settled_rss(server)
    again = probe(server.run(graph))
    reloaded = settled_rss(server)
    taken = loaded - idle
    row = {"graph": name, "idle_mib": round(idle), "after_graph_mib": round(loaded), "after_free_mib": round(freed),
           "after_next_run_mib": round(reloaded),
           "given_back": round((loaded - freed) / taken, 3) if taken > 0 else None,
           "next_run_loaded_again": again["live"]["loads"] > first["live"]["loads"]}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dpt_beit_base_384")
    parser.add_argument("--stylize", action="store_true", help="also the stylize node on a tiny diffusion model")
    parser.add_argument("--workdir", help="default: a temporary folder")
    args = parser.parse_args(argv)
    reason = comfyui_engine.why_unavailable()
    if reason:
        raise SystemExit(reason)

    import numpy as np
    import torch
    from PIL import Image

    import midas_diffusion as md
    from midas_diffusion.ui.cli import install_comfyui

    work = Path(args.workdir or tempfile.mkdtemp(prefix="comfyui-memory-"))
    weights = work / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    if not (weights / f"{args.model}.pt").is_file():
        torch.manual_seed(0)
        torch.save(md.create_model(args.model).state_dict(), weights / f"{args.model}.pt")
    nodes = work / "nodes" / "custom_nodes"
    nodes.mkdir(parents=True, exist_ok=True)
    install_comfyui(work / "nodes", overwrite=True)
    shutil.copy(ROOT / "tests" / "comfyui_test_nodes.py", nodes)
    server = ComfyServer(comfyui_engine.engine_root(), work / "server", [nodes])
    y, x = np.mgrid[0:384, 0:512]
    rgb = np.stack([x / 512, y / 384, 0.5 + 0.5 * np.sin(x / 9.0)], -1)
    Image.fromarray((rgb * 255).astype("uint8")).save(server.input_dir / "photo.png")
    base = None
    if args.stylize:
        from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator

        from midas_diffusion.pipelines import MidasControlNetPipeline

        base = work / "tiny-controlnet"
        MidasControlNetPipeline(**sd15_components(), controlnet=tiny_controlnet(),
                                depth_estimator=tiny_depth_estimator()).save_pretrained(base)
    with server:
        rows = [measure(server, f"depth ({args.model})", depth_graph(args.model, str(weights), "depth"))]
        if base is not None:
            rows.append(measure(server, "stylize (tiny SD 1.5 + ControlNet)", stylize_graph(str(base), "stylize")))
    print(f"{'graph':40s} {'idle':>7s} {'graph':>7s} {'/free':>7s} {'again':>7s} {'given back':>10s}")
    for r in rows:
        print(f"{r['graph']:40s} {r['idle_mib']:7d} {r['after_graph_mib']:7d} {r['after_free_mib']:7d} "
              f"{r['after_next_run_mib']:7d} {given_back(r):>10s}  (MiB; next run loaded again: "
              f"{r['next_run_loaded_again']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
