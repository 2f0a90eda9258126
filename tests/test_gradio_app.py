"""The Gradio app, launched on a free local port: its HTTP API (gradio_client), a real browser
(Debian's chromium through Playwright, at 1400x900 as an artist's laptop shows it), bad input, four
clients against a concurrency of one, and its one model cache.

The browser tests need Chromium at /usr/bin/chromium (``apt-get install chromium``, as ``.ci/run``
does) and the ``playwright`` package; without them they are skipped and say so. Screenshots go to
``test-artifacts/``."""

import os
import resource
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

from reference import recipe_init_
from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

import midas_diffusion as md  # noqa: E402
from midas_diffusion.inference.cache import default_cache  # noqa: E402
from midas_diffusion.pipelines import MidasControlNetPipeline, clear_cache  # noqa: E402
from midas_diffusion.ui.example import example_scene, save_example  # noqa: E402
from midas_diffusion.ui.gradio_app import AppConfig, StylizeService, build_app  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MAX_PIXELS = 300_000  # the example photo (640x448) fits; huge.png (600x600) does not


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    MidasControlNetPipeline(**sd15_components(), controlnet=tiny_controlnet(),
                            depth_estimator=tiny_depth_estimator()).save_pretrained(root / "base")
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    est.save_pretrained(root / "tiny")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((48, 80, 3)) * 255).astype(np.uint8)).save(root / "photo.png")
    Image.fromarray((rng.random((600, 600, 3)) * 255).astype(np.uint8)).save(root / "huge.png")
    example_scene(160, 112).save(root / "room.png")  # the app's example photo, small enough for the tiny pipeline
    (root / "notes.txt").write_text("this is not an image")
    config = AppConfig(depth_models={"tiny": str(root / "tiny"), "dpt_levit_224": "dpt_levit_224"},
                       default_depth_model="tiny", bases={"controlnet": str(root / "base")},
                       concurrency_limit=1, max_pixels=MAX_PIXELS, output_dir=str(root / "out"))
    clear_cache()
    app = build_app(config)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield app, f"http://127.0.0.1:{port}/", root
    app.service.wait_idle()  # a cancelled request's thread may still be finishing
    app.close()
    clear_cache()


def _client(url):
    return gradio_client.Client(url, verbose=False)


def _stylize_args(root, prompt="a castle", image="photo.png", model="tiny", seed=3, export="glb"):
    f = gradio_client.handle_file(str(root / image))
    return (f, model, 0, 0, 100, 1, False, 0, None, "controlnet", "", prompt, "", 2, 7.5, 0.8, seed, export)


def test_api_depth_preview_gives_a_16_bit_download(served):
    _, url, root = served
    preview, depth16 = _client(url).predict(gradio_client.handle_file(str(root / "photo.png")), "tiny", 0, 0, 100, 1,
                                            False, api_name="/depth_preview")
    with Image.open(depth16) as im:
        assert im.mode.startswith("I;16") and im.size == (80, 48)
        values = np.asarray(im)
    assert values.dtype == np.uint16 and values.max() == 65535 and len(np.unique(values)) > 256
    assert Image.open(preview).size == (80, 48)


def test_api_stylize_returns_result_slider_downloads_and_mesh(served):
    _, url, root = served
    slider, result, files, model3d, gallery = _client(url).predict(*_stylize_args(root), api_name="/stylize")
    assert Image.open(result).size == (80, 48)
    assert len(slider) == 2
    names = [Path(f).name for f in files]
    assert any(n.endswith("-depth16.png") for n in names) and model3d.endswith(".glb")
    assert len(gallery) == 1


def test_known_distances_make_the_mesh_metric(served):
    """Points read off the depth preview with a known inverse-depth law: the exported mesh has
    those distances in metres; known distances without an export, or a bad row, are clear errors."""
    trimesh = pytest.importorskip("trimesh")
    _, url, root = served
    client = _client(url)
    _, depth16 = client.predict(gradio_client.handle_file(str(root / "photo.png")), "tiny", 0, 0, 100, 1, False,
                                api_name="/depth_preview")
    disparity = np.asarray(Image.open(depth16), dtype=np.float64) / 65535
    truth = 1.0 / (0.3 * disparity + 0.1)  # metres
    picks = [(5, 5), (70, 40), (40, 24), (12, 36), (60, 10), (30, 44)]
    known = "\n".join(f"{x}, {y}, {truth[y, x]:.6f}" for x, y in picks)
    model3d = client.predict(*_stylize_args(root, export="ply"), known, api_name="/stylize")[3]
    vertices = np.asarray(trimesh.load(model3d).vertices).reshape(48, 80, 3)
    for x, y in picks:
        assert abs(float(np.linalg.norm(vertices[y, x])) / truth[y, x] - 1) < 0.25  # distance along the ray
    assert abs(vertices[..., 2]).max() <= truth.max() * 1.01
    with pytest.raises(Exception, match="choose GLB or PLY"):
        client.predict(*_stylize_args(root, export=""), known, api_name="/stylize")
    with pytest.raises(Exception, match="known distances:2: '4, 5' is not 'x,y,depth_m'"):
        client.predict(*_stylize_args(root, export="ply"), "1, 2, 3\n4, 5", api_name="/stylize")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(prompt="   "), "the prompt is empty"),
        (dict(image="huge.png"), "over the limit"),
        (dict(model="dpt_levit_224"), "weights for dpt_levit_224 not found"),
    ],
)
def test_api_bad_input_gives_a_message_and_the_app_keeps_serving(served, kwargs, message):
    _, url, root = served
    client = _client(url)
    with pytest.raises(Exception, match=message):
        client.predict(*_stylize_args(root, **kwargs), api_name="/stylize")
    result = client.predict(*_stylize_args(root, export=""), api_name="/stylize")[1]
    assert Path(result).exists()


def test_four_clients_with_concurrency_one(served):
    _, url, root = served
    _client(url).predict(*_stylize_args(root, seed=100, export=""), api_name="/stylize")
    after_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results, errors = [], []

    def one(seed):
        try:
            results.append(_client(url).predict(*_stylize_args(root, seed=seed, export=""), api_name="/stylize")[1])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(results) == 4 and all(Path(r).exists() for r in results)
    after_all = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after_all <= after_first * 1.10


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture()
def page(served):
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip("browser tests need Chromium at /usr/bin/chromium: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport=VIEWPORT)
        outside = []
        page.on("request", lambda r: outside.append(r.url)
                if r.url.split(":", 1)[0] in ("http", "https", "ws", "wss")
                and r.url.split("/")[2].split(":")[0] not in ("127.0.0.1", "localhost") else None)
        page.goto(served[1])
        page.wait_for_selector("#run", timeout=60_000)
        # the editor drops a file given before its canvas is set up: wait for its empty state
        page.locator("#photo canvas").first.wait_for(state="visible", timeout=60_000)
        page.locator("#photo").get_by_text("Upload an image").wait_for(timeout=60_000)
        page.outside_requests = outside
        yield page
        browser.close()


def _upload(page, path, accepted=True):
    """Give the photo editor a file, as its upload button does; wait until it shows the photo."""
    page.locator("#photo input[type=file]").set_input_files(str(path))
    if accepted:
        page.locator("#photo").get_by_text("Upload an image").wait_for(state="hidden", timeout=60_000)


def _inside_viewport(page, selector):
    box = page.locator(selector).first.bounding_box()
    inside = (box is not None and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"]
              and box["y"] + box["height"] <= VIEWPORT["height"])
    return inside, box


def _paint_stroke(page, dx=(-0.08, 0.08), dy=(-0.06, 0.06)):
    """Pick the editor's brush and drag across the middle of the canvas (the photo is centred)."""
    page.locator("#photo").get_by_role("button", name="Brush").first.click()
    box = page.locator("#photo canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx + dx[0] * box["width"], cy + dy[0] * box["height"])
    page.mouse.down()
    page.mouse.move(cx + dx[1] * box["width"], cy + dy[1] * box["height"], steps=12)
    page.mouse.up()


def _newest(folder, pattern):
    return max(Path(folder).glob(pattern), key=lambda f: f.stat().st_mtime_ns)


def test_browser_paint_the_mask_on_the_photo_and_see_result_and_depth_at_1400x900(served, page):
    """One upload: the subject is painted on the photo itself; after Stylize the result and the
    depth preview are on the first screen of a 1400x900 window, beside the photo."""
    app, _, root = served
    _upload(page, root / "room.png")
    page.wait_for_selector("#depth-preview img", timeout=60_000)
    _paint_stroke(page)
    page.locator("#prompt textarea").fill("a watercolor room")
    steps = page.locator("#steps input[type=number]")  # below the fold
    steps.fill("2")
    steps.press("Enter")
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#run").click()
    page.wait_for_selector("#result img", timeout=120_000)
    page.evaluate("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gradio_app_1400x900.png"))  # the viewport, as the artist sees it
    page.screenshot(path=str(ARTIFACTS / "gradio_app.png"), full_page=True)
    for selector in ("#result img", "#depth-preview img", "#photo canvas", "#run", "#prompt textarea"):
        inside, box = _inside_viewport(page, selector)
        assert inside, f"{selector} is not inside the 1400x900 viewport: {box}"
    result_box, photo_box = page.locator("#result").bounding_box(), page.locator("#photo").bounding_box()
    # the result is beside the photo (same band of the screen, to its right), as large as the photo
    assert result_box["x"] >= photo_box["x"] + photo_box["width"] and abs(result_box["y"] - photo_box["y"]) < 50
    assert result_box["height"] >= 0.9 * photo_box["height"]
    run_box = page.locator("#run").bounding_box()
    assert 0 <= run_box["y"] - (photo_box["y"] + photo_box["height"]) < 250  # Stylize sits under the photo
    assert run_box["x"] < photo_box["x"] + photo_box["width"]
    assert page.locator("#before-after img").count() >= 1
    # the painted stroke reached the pipeline as the subject mask: the background was flattened
    depth16 = np.asarray(Image.open(_newest(app.service.output_dir, "result-*-depth16.png")))
    assert depth16.shape == (112, 160)
    h, w = depth16.shape
    assert (depth16 == 0).mean() > 0.5 and depth16[h // 2 - 3:h // 2 + 3, w // 2 - 6:w // 2 + 6].min() > 0
    assert page.outside_requests == []  # no fonts, scripts or analytics from the internet


def test_browser_example_photo_loads_with_one_click(served, page):
    page.locator("#examples").get_by_role("button").first.click()
    page.wait_for_selector("#depth-preview img", timeout=60_000)
    inside, box = _inside_viewport(page, "#depth-preview img")
    assert inside, box


def test_browser_shows_errors_for_non_image_empty_prompt_and_huge_image(served, page):
    _, _, root = served
    _upload(page, root / "notes.txt", accepted=False)  # the editor refuses it
    page.locator("#prompt textarea").fill("a castle")
    page.locator("#run").click()
    page.get_by_text("upload or paste an image first").first.wait_for(timeout=60_000)
    _upload(page, root / "photo.png")
    page.wait_for_selector("#depth-preview img", timeout=60_000)
    page.locator("#prompt textarea").fill("")
    page.locator("#run").click()
    page.get_by_text("the prompt is empty").first.wait_for(timeout=60_000)
    _upload(page, root / "huge.png")
    page.locator("#prompt textarea").fill("a castle")
    page.locator("#run").click()
    page.get_by_text("over the limit").first.wait_for(timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gradio_errors.png"), full_page=True)


def test_api_alpha_channel_flattens_the_background(served):
    _, url, root = served
    rgba = np.array(Image.open(root / "photo.png").convert("RGBA"))
    rgba[:, :40, 3] = 0  # left half transparent = background
    Image.fromarray(rgba).save(root / "cutout.png")
    files = _client(url).predict(*_stylize_args(root, image="cutout.png", export=""), api_name="/stylize")[2]
    depth16 = next(f for f in files if f.endswith("-depth16.png"))
    values = np.asarray(Image.open(depth16))
    assert (values[:, :40] == 0).all() and values[:, 40:].max() > 0


def test_api_progress_by_step_and_cancel(served):
    _, url, root = served
    client = _client(url)
    args = list(_stylize_args(root, export=""))
    args[13] = 150  # steps: long enough to cancel in the middle
    job = client.submit(*args, api_name="/stylize")
    progress = None
    for _ in range(600):
        status = job.status()
        if status.progress_data:
            progress = status.progress_data[-1]
            break
        if job.done():
            break
        threading.Event().wait(0.05)
    assert progress is not None and "denoising step" in (progress.desc or "")
    job.cancel()
    for _ in range(600):
        if job.done() or job.status().code.name in ("CANCELLED", "FINISHED"):
            break
        threading.Event().wait(0.05)
    assert job.status().code.name == "CANCELLED"
    # the app keeps serving after a cancel
    assert Path(client.predict(*_stylize_args(root, export=""), api_name="/stylize")[1]).exists()
    assert served[0].service.wait_idle(timeout=300)


def _observe_runs(service, monkeypatch, hold=None):
    """Record each stylization's start, denoising steps and end in a list; ``hold(run, token)`` (optional)
    is called at each step of a run, in its worker thread, before the step's progress is shown."""
    real, log = service.stylize, []

    def observed(*args, progress=None, cancel=None, **kwargs):
        run = args[11]  # the prompt names the run

        def step(fraction, desc=""):
            log.append((run, desc))
            if hold is not None:
                hold(run, cancel)
            if progress is not None:
                progress(fraction, desc=desc)

        log.append((run, "start"))
        try:
            out = real(*args, progress=step, cancel=cancel, **kwargs)
        except BaseException as exc:
            log.append((run, type(exc).__name__))
            raise
        log.append((run, "done"))
        return out

    monkeypatch.setattr(service, "stylize", observed)
    return log


def test_a_cancelled_api_call_stops_at_the_next_step_and_the_queued_one_runs_next(served, monkeypatch):
    """Cancel ends the worker's denoising loop one step after it arrives; nothing of the cancelled run is
    written, and the request queued behind it runs next (concurrency 1), to the end."""
    app, url, root = served
    reached, cancelled = threading.Event(), threading.Event()

    def hold(run, token):
        if run == "long":  # keep the long run in its first step until the cancel reached its token
            if not token.cancelled:
                reached.set()
                real_cancel = token.cancel
                token.cancel = lambda: (real_cancel(), cancelled.set())
                assert cancelled.wait(120)

    log = _observe_runs(app.service, monkeypatch, hold)
    before = set(os.listdir(app.service.output_dir))
    client = _client(url)
    long_args, short_args = list(_stylize_args(root, export="")), list(_stylize_args(root, export=""))
    long_args[11], long_args[13], short_args[11] = "long", 150, "short"
    long_job = client.submit(*long_args, api_name="/stylize")
    assert reached.wait(120)
    short_job = _client(url).submit(*short_args, api_name="/stylize")
    for _ in range(2400):  # until the short request waits in the queue behind the long one
        if short_job.status().code.name == "IN_QUEUE":
            break
        threading.Event().wait(0.05)
    assert short_job.status().code.name == "IN_QUEUE"
    long_job.cancel()
    result = short_job.result()
    assert log == [("long", "start"), ("long", "denoising step 1/150"), ("long", "Cancelled"),
                   ("short", "start"), ("short", "denoising step 1/2"), ("short", "denoising step 2/2"),
                   ("short", "done")]
    assert long_job.status().code.name == "CANCELLED"
    written = set(os.listdir(app.service.output_dir)) - before
    stem = Path(result[1]).stem
    assert f"{stem}.png" in written and all(f.startswith(stem) for f in written)  # nothing of the cancelled run
    assert app.service.wait_idle(timeout=300)


def test_browser_cancel_stops_the_run_and_the_app_keeps_serving(served, page):
    _, _, root = served
    _upload(page, root / "room.png")  # larger than photo.png: 150 steps outlast a slow browser's click
    page.wait_for_selector("#depth-preview img", timeout=60_000)
    page.locator("#prompt textarea").fill("a castle")
    steps = page.locator("#steps input[type=number]")
    steps.fill("150")
    steps.press("Enter")
    page.locator("#run").click()
    # the run's progress, shown over the result (the Steps slider's help also says "denoising steps")
    page.locator("#result").get_by_text("denoising step").first.wait_for(timeout=60_000)
    page.locator("#cancel").click()
    assert served[0].service.wait_idle(timeout=120)
    assert 1 <= served[0].service.last_steps_done < 150  # it ran, and was interrupted before the end
    page.get_by_text("cancelled").first.wait_for(timeout=60_000)  # the app says so
    # the page has taken the cancel in (a click on Run while its last run still shows as pending is ignored)
    page.locator("#result").get_by_text("denoising step").first.wait_for(state="hidden", timeout=60_000)
    steps.fill("2")  # the app keeps serving: a short run completes
    steps.press("Enter")
    page.locator("#run").click()
    page.wait_for_selector("#result img", timeout=120_000)


def test_app_keeps_its_models_in_one_bounded_cache(served):
    """No per-object model dict: the preview and the pipeline share one cached depth model."""
    app, url, root = served
    service = app.service
    assert not hasattr(service, "_components")
    service.cache.clear()  # (each test has its own MIDAS_DIFFUSION_WEIGHTS, part of a depth model's key)
    client = _client(url)
    client.predict(gradio_client.handle_file(str(root / "photo.png")), "tiny", 0, 0, 100, 1, False,
                   api_name="/depth_preview")
    client.predict(*_stylize_args(root, export=""), api_name="/stylize")
    counts = service.cache.counts()
    assert counts["depth"] == 1 and counts["pipeline"] == 1
    assert service.cache.limits == {"pipeline": 1, "depth": 2}
    (depth_model,) = service.cache.values("depth")
    (pipe,) = service.cache.values("pipeline")
    assert pipe.depth_estimator.estimator is depth_model  # wrapped, not a second copy
    assert service.depth_model("tiny") is depth_model
    assert default_cache().counts()["pipeline"] == 0  # the app's models are in the app's cache


def test_mask_from_the_editor_or_an_image():
    size = (12, 20)
    layer = np.zeros((12, 20, 4), np.uint8)
    layer[3:9, 5:15] = (255, 45, 85, 153)  # a half-transparent brush stroke
    editor = {"background": Image.new("RGBA", (20, 12)), "layers": [Image.fromarray(layer)], "composite": None}
    mask = StylizeService.read_mask(editor, size)
    assert mask.shape == size and mask[3:9, 5:15].all() and mask.sum() == 6 * 10
    assert StylizeService.read_mask({"background": None, "layers": [Image.new("RGBA", (20, 12))]}, size) is None
    grey = np.zeros((6, 10), np.uint8)
    grey[:, 5:] = 255  # white = subject, at another resolution than the photo
    np.testing.assert_array_equal(StylizeService.read_mask(Image.fromarray(grey).convert("RGBA"), size)[:, 10:], 1)
    assert StylizeService.read_mask(Image.fromarray(grey).convert("RGBA"), size)[:, :10].sum() == 0


def test_example_photo_is_drawn_by_the_package(tmp_path):
    scene = example_scene()
    assert scene.size == (640, 448) and scene.mode == "RGB"
    assert np.array_equal(np.asarray(scene), np.asarray(example_scene()))  # deterministic
    pixels = np.asarray(scene).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 1000  # a shaded scene, not a flat fill
    path = save_example(tmp_path)
    assert path.exists() and save_example(tmp_path) == path
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im), np.asarray(scene))
    with pytest.raises(ValueError, match="width"):
        example_scene(8, 8)


def test_cli_builds_a_frozen_config_from_its_json_options(monkeypatch):
    import argparse
    import dataclasses

    from midas_diffusion.ui import gradio_app, gradio_cli

    parser = argparse.ArgumentParser()
    gradio_cli.add_parsers(parser.add_subparsers())
    args = parser.parse_args(["ui", "--concurrency", "2", "--depth-models", '{"mine": "/models/mine.pt"}',
                              "--bases", '{"controlnet": "/bases/sd15"}'])
    launched = []
    monkeypatch.setattr(gradio_app, "launch", lambda config, **kw: launched.append((config, kw)))
    assert args.func(args) == 0
    ((config, kw),) = launched
    assert config.depth_models == {"mine": "/models/mine.pt"} and config.bases == {"controlnet": "/bases/sd15"}
    assert config.concurrency_limit == 2 and kw["host"] == "127.0.0.1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.device = "cuda"


def test_the_apps_pixel_limit_and_backend_reach_its_depth_models(tmp_path):
    """`midas-diffusion ui --max-pixels N --backend torch`: the depth model refuses what the app refuses, no
    more, and runs on the backend the app was started with."""
    from midas_diffusion.inference.cache import ModelCache

    model = md.create_model("midas_v21_small_256", reduced=True)
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    config = AppConfig(depth_models={"tiny": str(tmp_path / "tiny.pt")}, default_depth_model="tiny",
                       max_pixels=MAX_PIXELS, output_dir=str(tmp_path / "out"), backend="torch")
    original = md.DepthEstimator.from_pretrained
    service = StylizeService(config, cache=ModelCache())
    with pytest.MonkeyPatch.context() as mp:  # the test's checkpoint is of the tiny model of the family
        mp.setattr(md.DepthEstimator, "from_pretrained",
                   lambda path, **kw: original(path, model="midas_v21_small_256", **{**kw, "reduced": True}))
        est = service.depth_model("tiny")
    assert est.max_pixels == MAX_PIXELS and est.backend == "torch"


def _joined(job):
    """Wait until the server has the request (queued or running), so submissions keep their order."""
    for _ in range(2400):
        if job.status().code.name not in ("STARTING", "JOINING_QUEUE"):
            return
        threading.Event().wait(0.05)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_four_clients_at_once_each_get_their_own_result_in_queue_order(served, monkeypatch, concurrency):
    """Four users, each with a photo, mask and settings of their own: each gets what they would get alone,
    the requests start in the order they were queued, and the app's model cache stays within its limits."""
    app, _, root = served
    rng = np.random.default_rng(concurrency)
    users = []
    for i in range(4):
        Image.fromarray((rng.random((48, 80, 3)) * 255).astype(np.uint8)).save(root / f"user{i}.png")
        mask = np.zeros((48, 80), np.uint8)
        mask[:, 20 * i:20 * i + 30] = 255
        Image.fromarray(mask).save(root / f"mask{i}.png")
        args = list(_stylize_args(root, prompt=f"user {i}", image=f"user{i}.png", seed=10 + i, export=""))
        args[7], args[8], args[13] = 0.2 * i, gradio_client.handle_file(str(root / f"mask{i}.png")), 1 + i % 2
        users.append(args)
    config = AppConfig(**{**app.service.config.__dict__, "concurrency_limit": concurrency})
    other = build_app(config)
    port = _free_port()
    other.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        alone = [np.asarray(Image.open(_client(url).predict(*args, api_name="/stylize")[1])) for args in users]
        second_running = threading.Event()

        def hold(run, token):  # with two workers, user 0's first step waits until user 1 runs beside it
            if run == "user 1":
                second_running.set()
            elif run == "user 0" and concurrency == 2:
                assert second_running.wait(120)

        log = _observe_runs(other.service, monkeypatch, hold)
        jobs = []
        for args in users:
            jobs.append(_client(url).submit(*args, api_name="/stylize"))
            _joined(jobs[-1])
        together = [np.asarray(Image.open(job.result()[1])) for job in jobs]
        for mine, single in zip(together, alone):
            np.testing.assert_array_equal(mine, single)
        assert len({a.tobytes() for a in alone}) == 4  # four different inputs, four different results
        assert [run for run, what in log if what == "start"] == [f"user {i}" for i in range(4)]
        counts = other.service.cache.counts()
        assert counts["pipeline"] <= 1 and counts["depth"] <= 2
        assert other.service.wait_idle(timeout=300)
    finally:
        other.close()
