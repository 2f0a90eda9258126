"""The node pack inside the real ComfyUI engine (0.3.75, unmodified; see ``comfyui_engine.py``):
ComfyUI's own server loads the pack from a custom-nodes folder written by ``install-comfyui``,
validates prompts (``POST /prompt``), runs them in its prompt worker and frees memory (``POST /free``).

Offline, CPU, a tiny model whose weights the test writes. Skipped when the engine is not prepared
here (the reason says how); ``.ci/run`` prepares it and sets ``MIDAS_COMFYUI_REQUIRED=1``, which
turns a missing engine into a failure.
"""

import os
import shutil
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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = comfyui_engine.why_unavailable()
    if reason:
        if os.environ.get("MIDAS_COMFYUI_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from midas_diffusion.ui.cli import install_comfyui

    work = tmp_path_factory.mktemp("comfyui")
    (work / "nodes" / "custom_nodes").mkdir(parents=True)
    install_comfyui(work / "nodes")  # what a user runs: the shim in a custom_nodes folder
    shutil.copy(Path(__file__).with_name("comfyui_test_nodes.py"), work / "nodes" / "custom_nodes")
    engine = ComfyServer(comfyui_engine.engine_root(), work / "server", [work / "nodes" / "custom_nodes"])
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([x / W, y / H, 0.5 + 0.5 * np.sin(x / 9.0)], -1)
    rgb[30:70, 40:90] = [0.9, 0.2, 0.1]
    Image.fromarray((rgb * 255).astype("uint8")).save(engine.input_dir / "photo.png")
    with engine:
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
    assert list(loader["input"]["optional"]) == ["model_path", "weights_dir"]
    assert loader["output"] == ["MIDAS_DEPTH_MODEL"] and MODEL in loader["input"]["required"]["model"][0]
    assert not [line for line in server.log if "[midas-diffusion]" in line and "disabled" in line]


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
