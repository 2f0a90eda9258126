"""The node pack inside the real ComfyUI engine (0.3.75, unmodified; see ``comfyui_engine.py``):
ComfyUI's own server loads the pack from a custom-nodes folder written by ``install-comfyui``,
validates prompts (``POST /prompt``), runs them in its prompt worker and frees memory (``POST /free``).

The repository itself is a node pack too: ``clone_server`` follows ComfyUI-Manager's steps (clone
into ``custom_nodes/``, ``pip install -r requirements.txt`` as a dry run, ``install.py``, start) in a Python where midas-diffusion
was never pip-installed (``python_without_midas_diffusion``: ``find_spec`` finds no
``midas_diffusion`` and no distribution is installed), so only the clone can provide the nodes.
The shim's server has a clone beside the shim: the nodes register once.

Offline, CPU, a tiny model whose weights the test writes. Skipped when the engine is not prepared
here (the reason says how); ``.ci/run`` prepares it and sets ``MIDAS_COMFYUI_REQUIRED=1``, which
turns a missing engine into a failure.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import comfyui_engine
from comfyui_engine import ComfyServer
from reference import recipe_init_

MODEL = "midas_v21_small_256"
H, W = 96, 128
NODES = {"MidasLoadDepthModel", "MidasEstimateDepth", "MidasDepthStylize", "MidasLDM3DTextToRGBD", "MidasMetricDepth",
         "MidasExportRGBD"}


def _write_model(folder: Path, seed: int = 0) -> str:
    """A reduced zoo model with recipe weights, saved as a folder (``model_path`` takes it)."""
    from midas_diffusion import DepthEstimator

    est = DepthEstimator.from_pretrained(MODEL, reduced=True)
    recipe_init_(est.model, seed=seed)
    return str(est.save_pretrained(folder))


def _require_engine():
    """Skip without the ComfyUI engine; fail instead where CI requires it (MIDAS_COMFYUI_REQUIRED=1)."""
    reason = comfyui_engine.why_unavailable()
    if reason:
        if os.environ.get("MIDAS_COMFYUI_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_engine()
    from midas_diffusion.ui.cli import install_comfyui

    work = tmp_path_factory.mktemp("comfyui")
    (work / "nodes" / "custom_nodes").mkdir(parents=True)
    install_comfyui(work / "nodes")  # what a user runs: the shim in a custom_nodes folder
    comfyui_engine.clone_repository(work / "nodes" / "custom_nodes" / "midas-diffusion")  # and a clone beside it
    shutil.copy(Path(__file__).with_name("comfyui_test_nodes.py"), work / "nodes" / "custom_nodes")
    engine = ComfyServer(comfyui_engine.engine_root(), work / "server", [work / "nodes" / "custom_nodes"])
    _write_photo(engine)
    with engine:
        yield engine


def _write_photo(engine):
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([x / W, y / H, 0.5 + 0.5 * np.sin(x / 9.0)], -1)
    rgb[30:70, 40:90] = [0.9, 0.2, 0.1]
    Image.fromarray((rgb * 255).astype("uint8")).save(engine.input_dir / "photo.png")


def _python_check(python, code: str, cwd) -> str:
    return subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True, cwd=cwd).stdout.strip()


@pytest.fixture(scope="module")
def clone_server(tmp_path_factory):
    """ComfyUI-Manager's "Install via Git URL" in a Python that never had midas-diffusion."""
    _require_engine()
    work = tmp_path_factory.mktemp("comfyui-clone")
    python = comfyui_engine.python_without_midas_diffusion(work / "python")
    assert _python_check(python, "import importlib.util, importlib.metadata as m\n"
                                 "print(importlib.util.find_spec('midas_diffusion'), "
                                 "[d.name for d in m.distributions() if 'midas' in (d.name or '').lower()])", work) == "None []"
    nodes = work / "ComfyUI" / "custom_nodes"
    nodes.mkdir(parents=True)
    pack = comfyui_engine.clone_repository(nodes / "midas-diffusion")  # 1. git clone into custom_nodes/
    pip = comfyui_engine.install_requirements(python, pack)  # 2. pip install -r requirements.txt
    assert pip.returncode == 0 and "Would install" not in pip.stdout, pip.stdout + pip.stderr
    script = subprocess.run([str(python), "install.py"], cwd=pack, capture_output=True, text=True)  # the Manager runs it too
    assert script.returncode == 0, script.stderr
    shutil.copy(Path(__file__).with_name("comfyui_test_nodes.py"), nodes)
    engine = ComfyServer(comfyui_engine.engine_root(), work / "server", [nodes], python=python)  # 3. start
    _write_photo(engine)
    with engine:
        engine.pack = pack
        yield engine


def depth_graph(model_path, *, frames=2, prefix="run", export=False, cancel_at=None, **estimate):
    """LoadImage -> (RepeatImageBatch) -> load + estimate -> SaveImage (depth, mask) [-> PLY, GLB] -> probe."""
    settings = {**dict(resolution=0, percentile_low=0.0, percentile_high=100.0, gamma=1.0, invert=False), **estimate}
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "11": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": frames}},
        "2": {"class_type": "MidasLoadDepthModel",
              "inputs": {"model": MODEL, "device": "auto", "dtype": "float32", "model_path": model_path,
                         "weights_dir": ""}},
        "3": {"class_type": "MidasEstimateDepth", "inputs": {"image": ["11", 0], "depth_model": ["2", 0], **settings}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": f"{prefix}_depth"}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 1]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": f"{prefix}_mask"}},
        "9": {"class_type": "MidasTestProbe",
              "inputs": {"label": prefix, "depth_model": ["2", 0], "image": ["3", 0], "mask": ["3", 1]}},
    }
    if export:
        for node, fmt in (("7", "ply"), ("8", "glb")):
            graph[node] = {"class_type": "MidasExportRGBD",
                           "inputs": {"image": ["11", 0], "disparity": ["3", 1], "format": fmt, "fov_deg": 60.0,
                                      "near": 1.0, "far": 10.0, "max_depth_jump": 0.1,
                                      "filename_prefix": f"{prefix}_{fmt}", "output_dir": ""}}
    if cancel_at is not None:
        graph["12"] = {"class_type": "MidasTestCancelAt", "inputs": {"image": ["11", 0], "steps": cancel_at}}
        graph["3"]["inputs"]["image"] = ["12", 0]
    return graph


def probe(run, node="9"):
    (report,) = run.ui(node)["probe"]
    return report


def test_comfyui_lists_the_node_pack(server):
    status, info = server.http("/object_info")
    assert status == 200 and NODES <= set(info)
    for name in NODES:
        assert info[name]["category"] == "MiDaS depth" and info[name]["python_module"].startswith("custom_nodes.")
    loader = info["MidasLoadDepthModel"]
    assert list(loader["input"]["required"]) == ["model", "device", "dtype"]
    assert list(loader["input"]["optional"]) == ["model_path", "weights_dir", "backend"]
    assert loader["output"] == ["MIDAS_DEPTH_MODEL"] and MODEL in loader["input"]["required"]["model"][0]
    assert not [line for line in server.log if "[midas-diffusion]" in line and "disabled" in line]


def _registrations(log):
    return [line for line in log if "[midas-diffusion]" in line and "registered" in line]


def test_beside_a_shim_the_nodes_register_once(server):
    registered, skipped = ([line for line in _registrations(server.log) if key in line]
                           for key in ("nodes registered by", "registered already"))
    assert len(registered) == 1 and len(skipped) == 1, _registrations(server.log)
    # the pip-installed copy, whichever entry ComfyUI loaded first (the clone's entry defers to it)
    assert "midas-diffusion at" in registered[0] or "installed in this Python" in registered[0]
    assert not [line for line in server.log if "IMPORT FAILED" in line and "midas" in line]


def test_a_clone_in_custom_nodes_is_the_node_pack(clone_server):
    status, info = clone_server.http("/object_info")
    assert status == 200 and NODES <= set(info)
    for name in NODES:
        assert info[name]["python_module"] == "custom_nodes.midas-diffusion"
    (line,) = _registrations(clone_server.log)
    assert re.search(rf"\d+ nodes registered by {re.escape(str(clone_server.pack))} ", line), line
    assert f"from the clone at {clone_server.pack.resolve()}" in line
    assert not [line for line in clone_server.log if ("IMPORT FAILED" in line and "midas" in line) or "disabled" in line]


def test_a_clone_runs_a_depth_graph(clone_server, tmp_path):
    run = clone_server.run(depth_graph(_write_model(tmp_path / "model"), prefix="clone"))
    assert run.status == "success", run.messages("execution_error")
    report = probe(run)
    assert report["depth_model"]["model_name"] == MODEL and report["mask"]["shape"] == [2, H, W]
    saved = run.ui("4")["images"]
    with Image.open(clone_server.output_dir / saved[0]["subfolder"] / saved[0]["filename"]) as image:
        assert image.size == (W, H) and image.getextrema()[0][1] == 255


def test_requirements_leave_comfyuis_own_packages_alone(clone_server):
    """requirements.txt names nothing ComfyUI requires itself (its torch, numpy, transformers ... stay)."""
    def names(path):
        lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
        return {re.split(r"[<>=!~\[; ]", line)[0].lower().replace("_", "-") for line in lines if line}

    ours = names(clone_server.pack / "requirements.txt")
    assert ours and not ours & (names(comfyui_engine.engine_root() / "requirements.txt") | {"torch", "torchvision"})


def test_load_estimate_save_and_export(server, tmp_path):
    run = server.run(depth_graph(_write_model(tmp_path / "model"), prefix="export", export=True))
    assert run.status == "success", run.messages("execution_error")
    report = probe(run)
    assert report["depth_model"]["class"] == "DepthEstimator" and report["depth_model"]["model_name"] == MODEL
    assert report["image"]["shape"] == [2, H, W, 3] and report["mask"]["shape"] == [2, H, W]
    assert report["mask"]["dtype"] == "torch.float32" and report["mask"]["max"] == 1.0
    assert report["held_by_comfy"] >= 1  # registered with ComfyUI's model management
    for node in ("4", "6"):
        saved = run.ui(node)["images"]
        assert len(saved) == 2
        with Image.open(server.output_dir / saved[0]["subfolder"] / saved[0]["filename"]) as image:
            assert image.size == (W, H) and image.mode == "RGB" and image.getextrema()[0][1] == 255
    assert run.progress("3") == [(1, 2), (2, 2)] and run.progress("7") == [(1, 2), (2, 2)]
    for fmt, magic in (("ply", b"ply\n"), ("glb", b"glTF")):
        files = sorted(server.output_dir.glob(f"export_{fmt}_*.{fmt}"))
        assert len(files) == 2 and all(f.read_bytes()[:4] == magic for f in files)


def test_loader_reloads_when_the_weights_file_changes(server, tmp_path):
    folder = _write_model(tmp_path / "model", seed=0)
    first = server.run(depth_graph(folder, prefix="changed"))
    again = server.run(depth_graph(folder, prefix="changed"))
    assert "2" in again.messages("execution_cached")[0]["nodes"]  # ComfyUI kept the loader's output
    assert probe(again)["depth_model"]["serial"] == probe(first)["depth_model"]["serial"]
    weights = Path(folder) / "model.safetensors"
    shutil.copy(Path(_write_model(tmp_path / "other", seed=1)) / "model.safetensors", weights)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    rewritten = server.run(depth_graph(folder, prefix="changed"))
    assert rewritten.status == "success" and "2" not in rewritten.messages("execution_cached")[0]["nodes"]
    assert probe(rewritten)["depth_model"]["serial"] != probe(first)["depth_model"]["serial"]
    assert probe(rewritten)["live"]["loads"] == probe(first)["live"]["loads"] + 1
    assert probe(rewritten)["mask"]["mean"] != probe(first)["mask"]["mean"]  # other weights, other depth


def test_free_releases_the_model_and_the_next_run_loads_again(server, tmp_path):
    folder = _write_model(tmp_path / "model")
    before = probe(server.run(depth_graph(folder, prefix="free")))
    kept = probe(server.run(depth_graph(folder, prefix="free")))
    assert kept["depth_model"]["serial"] == before["depth_model"]["serial"]
    assert kept["live"]["loads"] == before["live"]["loads"]  # a cache hit: the loader did not run again
    server.free(unload_models=True, free_memory=True)
    server.run(depth_graph(folder, prefix="free"))  # the worker applies /free before or right after this one
    after = probe(server.run(depth_graph(folder, prefix="free")))
    assert after["depth_model"]["serial"] != before["depth_model"]["serial"]
    assert after["live"]["loads"] == before["live"]["loads"] + 1
    assert before["depth_model"]["serial"] not in after["alive_seen"]  # freed: nothing of ours kept it
    assert after["live"]["depth"] == 1 and after["held_by_comfy"] == 1


def test_cancel_stops_the_batch_between_frames(server, tmp_path):
    folder = _write_model(tmp_path / "model")
    passes = probe(server.run(depth_graph(folder, frames=1, prefix="cancel")))["depth_model"]["forward_count"]
    run = server.run(depth_graph(folder, frames=8, prefix="cancel", cancel_at=2))
    assert run.status == "error" and run.messages("execution_interrupted")[0]["node_id"] == "3"
    assert run.progress("3") == [(1, 8), (2, 8)]
    after = probe(server.run(depth_graph(folder, frames=1, prefix="cancel")))["depth_model"]["forward_count"]
    assert after - passes == 2 + 1  # two frames before Cancel, then this run's one frame


def test_comfyui_refuses_invalid_inputs_before_running(server, tmp_path):
    folder = _write_model(tmp_path / "model")
    bad_name = depth_graph(folder)
    bad_name["2"]["inputs"]["model"] = "no_such_model"
    bad_gamma = depth_graph(folder, gamma=9.0)
    no_image = depth_graph(folder)
    del no_image["3"]["inputs"]["image"]
    for graph, node in ((bad_name, "2"), (bad_gamma, "3"), (no_image, "3")):
        run = server.run(graph)
        assert run.http_status == 400 and node in run.response["node_errors"], run.response
    missing = server.run(depth_graph(str(tmp_path / "missing"), prefix="missing"))
    (error,) = missing.messages("execution_error")
    assert error["node_type"] == "MidasLoadDepthModel" and "does not exist" in error["exception_message"]
