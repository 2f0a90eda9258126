"""The Gradio app, launched on a free local port: its HTTP API (gradio_client), a real browser
(Debian's chromium through Playwright), bad input, and four clients against a concurrency of one."""

import os
import resource
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reference import recipe_init_
from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

import midas_diffusion as md  # noqa: E402
from midas_diffusion.pipelines import MidasControlNetPipeline, clear_cache  # noqa: E402
from midas_diffusion.ui.gradio_app import AppConfig, build_app  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MAX_PIXELS = 50_000


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
    Image.fromarray((rng.random((300, 300, 3)) * 255).astype(np.uint8)).save(root / "huge.png")
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
    return (f, model, 0, 0, 100, 1, False, 0, None, "controlnet", "", prompt, "", 2, 7.5, 0.8, seed, export, [])


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


@pytest.fixture()
def page(served):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        outside = []
        page.on("request", lambda r: outside.append(r.url)
                if r.url.split(":", 1)[0] in ("http", "https", "ws", "wss")
                and r.url.split("/")[2].split(":")[0] not in ("127.0.0.1", "localhost") else None)
        page.goto(served[1])
        page.wait_for_selector("#run", timeout=60_000)
        page.outside_requests = outside
        yield page
        browser.close()


def test_browser_upload_stylize_and_see_result_and_slider(served, page):
    _, _, root = served
    page.locator("#photo input[type=file]").set_input_files(str(root / "photo.png"))
    page.wait_for_selector("#depth-preview img", timeout=60_000)
    page.locator("#prompt textarea").fill("a watercolor castle")
    page.locator("#run").click()
    page.wait_for_selector("#result img", timeout=120_000)
    assert page.locator("#before-after img").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gradio_app.png"), full_page=True)
    assert page.outside_requests == []  # no fonts, scripts or analytics from the internet


def test_browser_shows_errors_for_empty_prompt_and_non_image(served, page):
    _, _, root = served
    page.locator("#photo input[type=file]").set_input_files(str(root / "photo.png"))
    page.wait_for_selector("#depth-preview img", timeout=60_000)
    page.locator("#run").click()  # the prompt is still empty
    page.get_by_text("the prompt is empty").first.wait_for(timeout=60_000)
    page.locator("#photo input[type=file]").set_input_files(str(root / "huge.png"))
    page.locator("#prompt textarea").fill("a castle")
    page.locator("#run").click()
    page.get_by_text("over the limit").first.wait_for(timeout=60_000)
    page.locator("#photo input[type=file]").set_input_files(str(root / "notes.txt"))
    page.get_by_text("Invalid file type: notes.txt").first.wait_for(timeout=60_000)
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


def test_browser_cancel_stops_the_run_and_the_app_keeps_serving(served, page):
    _, _, root = served
    page.locator("#photo input[type=file]").set_input_files(str(root / "photo.png"))
    page.wait_for_selector("#depth-preview img", timeout=60_000)
    page.locator("#prompt textarea").fill("a castle")
    steps = page.locator("#steps input[type=number]")
    steps.fill("150")
    steps.press("Enter")
    page.locator("#run").click()
    page.get_by_text("denoising step").first.wait_for(timeout=60_000)
    page.locator("#cancel").click()
    assert served[0].service.wait_idle(timeout=120)
    assert served[0].service.last_steps_done < 150  # interrupted, not run to the end
    page.locator("#run").click()
    page.wait_for_selector("#result img", timeout=120_000)
