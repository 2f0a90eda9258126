"""ComfyUI nodes, called the way ComfyUI calls them, without ComfyUI (offline, tiny models)."""

import gc
import inspect
import os
import sys
import weakref

import numpy as np
import pytest
import torch

import comfy_stubs
from midas_diffusion import DepthEstimator
from reference import recipe_init_
from midas_diffusion.ui import comfyui

B, H, W = 2, 48, 80


def _frames(b=B, h=H, w=W, seed=0):
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, w)[None, None, :, None].expand(b, h, w, 3)
    return (ramp + 0.1 * torch.randn(b, h, w, 3, generator=g)).clamp(0, 1).float()


def _node_kwargs(cls, links):
    """Like ComfyUI: widget values are INPUT_TYPES defaults, links are given; kwargs only."""
    kwargs = {}
    for section in ("required", "optional"):
        for name, entry in cls.INPUT_TYPES().get(section, {}).items():
            if name in links:
                kwargs[name] = links[name]
            elif len(entry) > 1 and "default" in entry[1]:
                kwargs[name] = entry[1]["default"]
            elif section == "required":
                raise AssertionError(f"{cls.__name__}: required link {name} not given")
    return kwargs


def _call(cls, **links):
    return getattr(cls(), cls.FUNCTION)(**_node_kwargs(cls, links))


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    est = DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    return str(est.save_pretrained(tmp_path_factory.mktemp("tiny") / "midas_small"))


@pytest.fixture()
def depth_model(tiny_folder):
    return _call(comfyui.MidasLoadDepthModel, model_path=tiny_folder)[0]


def test_every_node_declares_a_valid_contract():
    classes, names = comfyui.load_nodes()
    assert set(classes) == {n for n, _, _ in comfyui.NODES} and not comfyui.DISABLED
    for node_id, cls in classes.items():
        assert names[node_id] and isinstance(cls.CATEGORY, str)
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"} and spec["required"]
        params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                assert name in params, (node_id, name)
                kind = entry[0]
                assert isinstance(kind, str) or (isinstance(kind, list) and all(isinstance(c, str) for c in kind))
                options = entry[1] if len(entry) > 1 else {}
                if isinstance(kind, list):
                    assert options["default"] in kind
                elif kind in ("INT", "FLOAT"):
                    assert options["min"] <= options["default"] <= options["max"] and options["step"] > 0
                    assert isinstance(options["default"], int if kind == "INT" else float)
                elif kind == "BOOLEAN":
                    assert isinstance(options["default"], bool)
        assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES)
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
    assert comfyui.NODE_CLASS_MAPPINGS.keys() == classes.keys()


def test_estimate_returns_image_and_float_mask_for_a_batch(depth_model):
    frames = _frames()
    image, mask = _call(comfyui.MidasEstimateDepth, image=frames, depth_model=depth_model)
    assert image.shape == (B, H, W, 3) and image.dtype == torch.float32
    assert mask.shape == (B, H, W) and mask.dtype == torch.float32
    assert 0 <= float(mask.min()) and float(mask.max()) <= 1 and float(mask.max()) == 1.0
    torch.testing.assert_close(image, mask[..., None].expand(-1, -1, -1, 3))
    assert len(torch.unique(mask)) > 256  # float precision, not 8-bit levels
    # frame by frame: each frame equals a single-frame run, normalized on its own
    single = _call(comfyui.MidasEstimateDepth, image=frames[1:], depth_model=depth_model)[1]
    torch.testing.assert_close(mask[1:], single)
    # the same numbers as midas_diffusion for the same settings
    reference = depth_model(frames[0].permute(2, 0, 1), percentile=(2.0, 98.0), gamma=0.5, invert=True).disparity[0]
    node = comfyui.MidasEstimateDepth().estimate(frames, depth_model, 0, 2.0, 98.0, 0.5, True)[1]
    torch.testing.assert_close(node[0], reference[0])


def test_estimate_resolution_and_bad_input(depth_model):
    out = comfyui.MidasEstimateDepth().estimate(_frames(), depth_model, resolution=128)[1]
    assert out.shape == (B, H, W)
    with pytest.raises(ValueError, match="gamma"):
        comfyui.MidasEstimateDepth().estimate(_frames(), depth_model, gamma=0)
    with pytest.raises(ValueError, match=r"\(B,H,W,C\)"):
        comfyui.MidasEstimateDepth().estimate(_frames()[0], depth_model)


def test_model_is_loaded_once_across_executions(tiny_folder):
    loads = comfyui.model_cache().counts()["loads"]
    first = _call(comfyui.MidasLoadDepthModel, model_path=tiny_folder)[0]
    for _ in range(3):
        model = _call(comfyui.MidasLoadDepthModel, model_path=tiny_folder)[0]
        _call(comfyui.MidasEstimateDepth, image=_frames(1), depth_model=model)
        assert model is first
    assert comfyui.model_cache().counts()["loads"] == loads + 1
    other = comfyui.MidasLoadDepthModel().load("dpt_beit_large_512", dtype="bfloat16", model_path=tiny_folder)[0]
    assert other is not first and other.dtype == torch.bfloat16
    assert comfyui.model_cache().counts()["loads"] == loads + 2


def test_loader_backend_choice_reaches_the_estimator(tiny_folder):
    """The loader's optional ``backend`` (default auto, as every estimator) is set on the model it returns."""
    assert comfyui.MidasLoadDepthModel.INPUT_TYPES()["optional"]["backend"][0] == ["auto", "torch", "openvino"]
    default = _call(comfyui.MidasLoadDepthModel, model_path=tiny_folder)[0]
    torch_only = comfyui.MidasLoadDepthModel().load("dpt_beit_large_512", model_path=tiny_folder, backend="torch")[0]
    assert default.backend == "auto" and torch_only.backend == "torch" and torch_only is not default
    with pytest.raises(ValueError, match="backend must be one of"):
        comfyui.MidasLoadDepthModel().load("dpt_beit_large_512", model_path=tiny_folder, backend="tensorrt")


def _reduced_folder(tmp_path, name="small", seed=0):
    est = DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model, seed=seed)
    return str(est.save_pretrained(tmp_path / name))


def test_a_dropped_loader_output_frees_the_model(tmp_path):
    """ComfyUI owns the model: once its output cache drops the loader's output, the network is freed
    (nothing of ours keeps it), and the next run loads it again."""
    folder = _reduced_folder(tmp_path)
    loads = comfyui.model_cache().counts()["loads"]
    est = _call(comfyui.MidasLoadDepthModel, model_path=folder)[0]
    _call(comfyui.MidasEstimateDepth, image=_frames(1), depth_model=est)
    network, estimator = weakref.ref(est.model), weakref.ref(est)
    assert comfyui.model_cache().counts()["depth"] >= 1
    del est
    gc.collect()
    assert network() is None and estimator() is None
    again = _call(comfyui.MidasLoadDepthModel, model_path=folder)[0]
    assert comfyui.model_cache().counts()["loads"] == loads + 2 and again.model_name == "midas_v21_small_256"


def test_loader_reloads_a_weights_file_rewritten_at_the_same_path(tmp_path):
    """IS_CHANGED follows the weights file's size and mtime, and so does the loader: a file rewritten
    at the same path loads again even while ComfyUI still holds the old output."""
    folder = _reduced_folder(tmp_path, "a", seed=0)
    before = comfyui.MidasLoadDepthModel.IS_CHANGED("midas_v21_small_256", model_path=folder)
    assert before == comfyui.MidasLoadDepthModel.IS_CHANGED("midas_v21_small_256", model_path=folder)
    old = comfyui.MidasLoadDepthModel().load("midas_v21_small_256", model_path=folder)[0]
    weights = os.path.join(folder, "model.safetensors")
    os.replace(os.path.join(_reduced_folder(tmp_path, "b", seed=1), "model.safetensors"), weights)
    stat = os.stat(weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later write, whatever the clock
    assert comfyui.MidasLoadDepthModel.IS_CHANGED("midas_v21_small_256", model_path=folder) != before
    new = comfyui.MidasLoadDepthModel().load("midas_v21_small_256", model_path=folder)[0]
    assert new is not old
    assert not torch.equal(next(new.model.parameters()), next(old.model.parameters()))
    # a zoo name: the weights file found in weights_dir, by name
    (tmp_path / "w").mkdir()
    missing = comfyui.MidasLoadDepthModel.IS_CHANGED("midas_v21_small_256", weights_dir=str(tmp_path / "w"))
    (tmp_path / "w" / "midas_v21_small_256.pt").write_bytes(b"12345")
    found = comfyui.MidasLoadDepthModel.IS_CHANGED("midas_v21_small_256", weights_dir=str(tmp_path / "w"))
    (tmp_path / "w" / "midas_v21_small_256.pt").write_bytes(b"123456")
    assert len({missing, found, comfyui.MidasLoadDepthModel.IS_CHANGED(
        "midas_v21_small_256", weights_dir=str(tmp_path / "w"))}) == 3


def test_depth_model_is_registered_with_comfys_model_management(tmp_path, monkeypatch):
    """Inside ComfyUI the estimator owns one ModelPatcher over its own network (no copy), loaded
    through load_models_gpu before each run; the patcher lives and dies with the estimator."""
    host = comfy_stubs.install(monkeypatch)
    folder = _reduced_folder(tmp_path)
    est = _call(comfyui.MidasLoadDepthModel, model_path=folder)[0]
    assert len(host.patchers) == 1
    patcher = host.patchers[0]
    assert patcher.model.net is est.model and patcher.load_device == torch.device("cpu")
    assert _call(comfyui.MidasLoadDepthModel, model_path=folder)[0] is est
    assert len(host.patchers) == 1  # a second loader run shares the model and its patcher
    _call(comfyui.MidasEstimateDepth, image=_frames(2), depth_model=est)
    assert host.loads == [[patcher]] and host.full_loads == [True]
    assert host.bars[-1].total == 2 and host.bars[-1].values == [1, 2]
    del est, patcher
    gc.collect()
    assert host.patchers == [] and host.loads == [[None]]


def test_estimate_and_export_stop_at_cancel(tmp_path, monkeypatch):
    host = comfy_stubs.install(monkeypatch, interrupt_at=2)  # Cancel pressed during the first frame
    est = _call(comfyui.MidasLoadDepthModel, model_path=_reduced_folder(tmp_path))[0]
    runs = est.forward_count
    with pytest.raises(comfy_stubs.InterruptProcessingException):
        _call(comfyui.MidasEstimateDepth, image=_frames(4), depth_model=est)
    assert est.forward_count == runs + 1 and host.bars[-1].values == [1]
    host.interrupt_checks, host.interrupt_at = 0, 2
    with pytest.raises(comfy_stubs.InterruptProcessingException):
        comfyui.MidasExportRGBD().export(_frames(3), _frames(3).mean(-1), output_dir=str(tmp_path / "out"))
    assert len(list((tmp_path / "out").iterdir())) == 1 and host.bars[-1].values == [1]


def test_load_accepts_zoo_name_checkpoint_file_and_folder(tmp_path):
    from safetensors.torch import save_file

    from midas_diffusion import get_model_spec

    spec = get_model_spec("midas_v21_small_256")
    torch.manual_seed(0)
    net = spec.build(spec.arch)
    path = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    (from_file,) = comfyui.MidasLoadDepthModel().load("dpt_beit_large_512", model_path=str(path))
    assert from_file.model_name == "midas_v21_small_256"  # identified from the keys; model_path wins
    folder = from_file.save_pretrained(tmp_path / "saved")
    (from_folder,) = comfyui.MidasLoadDepthModel().load("dpt_beit_large_512", model_path=str(folder))
    torch.testing.assert_close(from_folder.model.state_dict(), from_file.model.state_dict())
    with pytest.raises(ValueError, match="does not exist"):
        comfyui.MidasLoadDepthModel().load("midas_v21_small_256", model_path=str(tmp_path / "missing.pt"))
    # a zoo name goes through the weights lookup: offline and without the file, one clear line
    with pytest.raises(Exception) as info:
        comfyui.MidasLoadDepthModel().load("midas_v21_small_256", weights_dir=str(tmp_path / "empty"))
    assert "midas_v21_small_256" in str(info.value)


def test_missing_optional_dependency_disables_one_node(monkeypatch):
    monkeypatch.setitem(sys.modules, "trimesh", None)  # import fails
    classes, _ = comfyui.load_nodes()
    assert "MidasExportRGBD" not in classes and set(comfyui.DISABLED) == {"MidasExportRGBD"}
    assert {"MidasLoadDepthModel", "MidasEstimateDepth", "MidasDepthStylize", "MidasLDM3DTextToRGBD"} <= set(classes)
    monkeypatch.undo()
    import midas_diffusion.pipelines as pipelines

    # the package imports its names on first use: the LDM3D module fails to import
    monkeypatch.delattr(pipelines, "MidasLDM3DPipeline", raising=False)
    monkeypatch.setitem(sys.modules, "midas_diffusion.pipelines.pipeline_midas_ldm3d", None)
    classes, _ = comfyui.load_nodes()
    assert set(comfyui.DISABLED) == {"MidasLDM3DTextToRGBD"} and "MidasExportRGBD" in classes
    monkeypatch.undo()
    for name in ("midas_diffusion.pipelines", "midas_diffusion.pipelines.api"):  # no diffusers: depth and export nodes still load
        monkeypatch.setitem(sys.modules, name, None)
    classes, _ = comfyui.load_nodes()
    assert set(comfyui.DISABLED) == {"MidasDepthStylize", "MidasLDM3DTextToRGBD"}
    assert set(classes) == {"MidasLoadDepthModel", "MidasEstimateDepth", "MidasMetricDepth", "MidasExportRGBD"}


def test_export_writes_one_file_per_frame(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    frames = _frames()
    disparity = frames.mean(-1)
    for fmt in ("ply", "glb"):
        (paths,) = comfyui.MidasExportRGBD().export(frames, disparity, format=fmt, output_dir=str(tmp_path))
        files = paths.split("\n")
        assert len(files) == B and all(f.endswith("." + fmt) for f in files)
        loaded = trimesh.load(files[1])
        assert loaded is not None
    # defaults as ComfyUI sends them; a single mask for a batch is reused
    (paths,) = _call(comfyui.MidasExportRGBD, image=frames, disparity=disparity[:1], output_dir=str(tmp_path / "d"))
    assert len(paths.split("\n")) == B


def test_metric_depth_node_recovers_metres_and_feeds_the_export(tmp_path):
    """Known distances of a scene whose inverse depth is 0.2 * disparity + 0.05: the node gives its
    depth in metres (a wrong point is ignored) and the export writes that geometry."""
    disparity = _frames(1).mean(-1)  # (1,H,W) in [0,1]
    truth = 1.0 / (0.2 * disparity[0] + 0.05)
    rows = [(x, y, float(truth[y, x])) for x, y in [(3, 4), (70, 40), (40, 20), (10, 30), (60, 8), (25, 44)]]
    rows.append((50, 10, 99.0))  # a wrong measurement
    text = "x, y, metres\n" + "\n".join(f"{x}, {y}, {z:.6f}" for x, y, z in rows)
    depth, fit = _call(comfyui.MidasMetricDepth, disparity=disparity, known_depths=text)
    assert depth.shape == (1, H, W) and depth.dtype == torch.float32
    torch.testing.assert_close(depth[0], truth, rtol=1e-3, atol=0)
    assert "6 of 7 points kept" in fit
    with pytest.raises(ValueError, match="known_depths:2"):
        _call(comfyui.MidasMetricDepth, disparity=disparity, known_depths="x,y,m\n1,2")
    with pytest.raises(ValueError, match="at least min_points"):
        _call(comfyui.MidasMetricDepth, disparity=disparity, known_depths="1,2,3")
    trimesh = pytest.importorskip("trimesh")
    (paths,) = _call(comfyui.MidasExportRGBD, image=_frames(1), disparity=disparity, metric_depth=depth,
                     output_dir=str(tmp_path))
    cloud = trimesh.load(paths)
    distances = np.linalg.norm(np.asarray(cloud.vertices), axis=1)
    assert distances.max() <= float(truth.max()) * 1.5 and distances.min() >= float(truth.min()) * 0.99
    with pytest.raises(ValueError, match="metric_depth is"):
        _call(comfyui.MidasExportRGBD, image=_frames(1), disparity=disparity, metric_depth=depth[:, :10],
              output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="metric_depth has 2 frames but image has 3"):
        _call(comfyui.MidasExportRGBD, image=_frames(3), disparity=disparity, metric_depth=depth.expand(2, -1, -1),
              output_dir=str(tmp_path))


# stylize and LDM3D on tiny diffusers components ---------------------------------------------------
diffusers = pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def tiny_controlnet_base(tmp_path_factory):
    from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator

    from midas_diffusion.pipelines import MidasControlNetPipeline

    pipe = MidasControlNetPipeline(**sd15_components(), controlnet=tiny_controlnet(), depth_estimator=tiny_depth_estimator())
    folder = tmp_path_factory.mktemp("sd") / "controlnet"
    pipe.save_pretrained(folder)
    return str(folder)


def test_stylize_node_returns_images_and_conditioning(tiny_controlnet_base, depth_model):
    from midas_diffusion.pipelines import clear_cache

    clear_cache()
    frames = _frames()
    links = dict(image=frames, prompt="a red house", base=tiny_controlnet_base)
    cls = comfyui.MidasDepthStylize
    image, mask = _call(cls, **links, steps=1)
    assert image.shape == (B, H, W, 3) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert mask.shape == (B, H, W) and mask.dtype == torch.float32 and 0 <= mask.min() <= mask.max() <= 1
    again = _call(cls, **links, steps=1)[0]
    torch.testing.assert_close(image, again)  # seeded: reproducible
    # a loaded depth model from the Load node conditions instead of the base's own
    image2, mask2 = _call(cls, **links, steps=1, depth_model=depth_model)
    assert image2.shape == (B, H, W, 3)
    reference = depth_model(frames[0].permute(2, 0, 1)).disparity[0, 0]
    torch.testing.assert_close(mask2[0], reference)
    with pytest.raises(ValueError, match="method"):
        _call(cls, **links, method="nope")
    # Load Image's placeholder mask (64x64 zeros, for an image without alpha) means "no mask"
    placeholder, _ = _call(cls, **links, steps=1, subject_mask=torch.zeros(1, 64, 64))
    torch.testing.assert_close(placeholder, image)
    clear_cache()


def test_ldm3d_node_returns_rgb_and_depth(tmp_path):
    from tiny_sd import sd15_components

    from midas_diffusion.pipelines import MidasLDM3DPipeline, clear_cache

    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(block_out_channels=[32, 64], in_channels=4, out_channels=4,
                                  down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                                  latent_channels=4, norm_num_groups=16).eval()
    MidasLDM3DPipeline(**{**sd15_components(), "vae": vae}).save_pretrained(tmp_path / "ldm3d")
    clear_cache()
    rgb, depth = _call(comfyui.MidasLDM3DTextToRGBD, prompt="a room", base=str(tmp_path / "ldm3d"), width=96,
                       height=64, batch_size=2, steps=1)
    assert rgb.shape == (2, 64, 96, 3) and rgb.dtype == torch.float32 and 0 <= rgb.min() <= rgb.max() <= 1
    assert depth.shape == (2, 64, 96) and depth.dtype == torch.float32 and 0 <= depth.min() <= depth.max() <= 1
    with pytest.raises(ValueError, match="prompt"):
        comfyui.MidasLDM3DTextToRGBD().generate("  ", base=str(tmp_path / "ldm3d"))
    clear_cache()
    assert np.isfinite(depth.numpy()).all()


def test_stylize_node_takes_a_checkpoint_from_comfyuis_models_folder(tmp_path, depth_model, monkeypatch):
    """A base typed as ComfyUI lists it (a file name in models/checkpoints), with a config folder and a
    control model folder; the node's result equals the same components loaded as diffusers folders."""
    import types

    from ldm_checkpoint import save_config_folder, save_ldm_checkpoint
    from tiny_sd import sd15_components, tiny_controlnet

    from midas_diffusion.pipelines import MidasControlNetPipeline, MidasDepthEstimator, clear_cache

    comp = sd15_components()
    checkpoints = tmp_path / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    save_ldm_checkpoint(checkpoints / "my_sd15.safetensors", comp["unet"], comp["vae"], comp["text_encoder"])
    save_config_folder(tmp_path / "sd15-config", diffusers.StableDiffusionPipeline, comp, safety_checker=None,
                       feature_extractor=None, requires_safety_checker=False)
    tiny_controlnet().save_pretrained(tmp_path / "depth-controlnet")
    folder = MidasControlNetPipeline(**comp, controlnet=tiny_controlnet(),
                                     depth_estimator=MidasDepthEstimator.from_estimator(depth_model))
    folder.save_pretrained(tmp_path / "as-folder")
    host = types.ModuleType("folder_paths")
    host.get_full_path = lambda kind, name: str(checkpoints / name) if kind == "checkpoints" and (checkpoints / name).exists() else None
    monkeypatch.setitem(sys.modules, "folder_paths", host)
    clear_cache()
    try:
        frames = _frames(b=1)
        links = dict(image=frames, prompt="a red house", steps=1, depth_model=depth_model)
        image, _ = _call(comfyui.MidasDepthStylize, base="my_sd15.safetensors", single_file_config=str(tmp_path / "sd15-config"),
                         control_model=str(tmp_path / "depth-controlnet"), **links)
        expected, _ = _call(comfyui.MidasDepthStylize, base=str(tmp_path / "as-folder"), **links)
        torch.testing.assert_close(image, expected)
        with pytest.raises(ValueError, match="single_file_config '.*nowhere' is not a local diffusers folder"):
            _call(comfyui.MidasDepthStylize, base="my_sd15.safetensors", single_file_config=str(tmp_path / "nowhere"),
                  control_model=str(tmp_path / "depth-controlnet"), **links)
    finally:
        clear_cache()


def _run_in_fake_comfy(graph):
    """Run ``graph`` ({node id: (class, links)}, in order; a link is (node id, output index)) the way
    ComfyUI's executor holds things: node objects in an object cache, outputs in an output cache.
    Returns both caches (emptying them is what ComfyUI's /free with free_memory does)."""
    objects, outputs = {}, {}
    for node_id, (cls, links) in graph.items():
        inputs = {k: outputs[v[0]][v[1]] if isinstance(v, tuple) else v for k, v in links.items()}
        objects.setdefault(node_id, cls())
        outputs[node_id] = getattr(objects[node_id], cls.FUNCTION)(**_node_kwargs(cls, inputs))
    return objects, outputs


def test_comfyuis_caches_own_every_model_the_nodes_load(tiny_controlnet_base, tmp_path, monkeypatch):
    """Emptying ComfyUI's caches frees the depth model and the stylize node's pipeline: nothing of
    ours keeps them. While the caches hold them, the next run reuses them."""
    from midas_diffusion.pipelines import clear_cache

    clear_cache()
    comfy_stubs.install(monkeypatch)
    graph = {"load": (comfyui.MidasLoadDepthModel, dict(model_path=_reduced_folder(tmp_path))),
             "style": (comfyui.MidasDepthStylize, dict(image=_frames(1), prompt="a red house", steps=1,
                                                       base=tiny_controlnet_base, depth_model=("load", 0)))}
    objects, outputs = _run_in_fake_comfy(graph)
    est, pipe = outputs["load"][0], objects["style"]._pipeline
    assert pipe.depth_estimator.estimator is est and pipe.comfy_patcher.model.unet is pipe.unet
    assert not hasattr(pipe.comfy_patcher.model, "depth_estimator")  # the estimator has its own patcher
    loads = comfyui.model_cache().counts()["loads"]
    style = comfyui.MidasDepthStylize()
    style.stylize(_frames(1), "a red house", base=tiny_controlnet_base, steps=1, depth_model=est)
    assert style._pipeline is pipe and comfyui.model_cache().counts()["loads"] == loads  # reused
    refs = [weakref.ref(x) for x in (est, est.model, pipe, pipe.unet, pipe.comfy_patcher)]
    del est, pipe, style
    objects.clear(), outputs.clear()
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
    assert comfyui.model_cache().counts()["pipeline"] == comfyui.model_cache().counts()["depth"] == 0


def test_stylize_shows_denoising_progress_and_stops_at_cancel(tiny_controlnet_base, monkeypatch):
    from midas_diffusion.pipelines import clear_cache

    host = comfy_stubs.install(monkeypatch)
    node = comfyui.MidasDepthStylize()
    node.stylize(_frames(2), "a red house", base=tiny_controlnet_base, steps=2)
    bar = host.bars[-1]
    assert bar.total == 4 and bar.values[-1] == 4 and {1, 2, 3, 4} <= set(bar.values)
    assert bar.values == sorted(bar.values)
    assert host.loads[-1] == [node._pipeline.comfy_patcher] and host.full_loads[-1]
    host.interrupt_checks, host.interrupt_at = 0, 3  # before frame 0, after step 1, after step 2: Cancel
    with pytest.raises(comfy_stubs.InterruptProcessingException):
        node.stylize(_frames(2), "a red house", base=tiny_controlnet_base, steps=2)
    assert host.bars[-1].values == [1]
    clear_cache()


def test_freed_models_return_their_heap_at_the_next_collection(monkeypatch):
    """glibc keeps freed heap pages: once a model the nodes loaded is freed, the next garbage collection
    (ComfyUI collects right after /free) calls malloc_trim, and only then."""
    from midas_diffusion.ui import comfyui_host

    trims = []
    monkeypatch.setattr(comfyui_host, "_malloc_trim", lambda: trims.append)
    monkeypatch.setattr(comfyui_host, "_trim_pending", False)  # models freed by earlier tests

    class Model:
        pass

    model = Model()
    comfyui_host.return_memory_when_freed(model)
    assert comfyui_host._trim_after_collection in gc.callbacks
    gc.collect()
    assert trims == []  # still held: nothing to give back
    del model
    gc.collect()
    gc.collect()
    assert trims == [0]
