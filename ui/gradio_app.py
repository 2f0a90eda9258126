"""The Gradio app: restyle a photo while keeping its 3D shape.

    midas-diffusion ui [--host 127.0.0.1] [--port 7860] [--concurrency 1]

The first screen (laid out for 1400x900) holds what an artist works with: the photo, on which the
subject mask is painted directly (one upload: ``gr.ImageEditor``, photo = background, brush layer =
mask), the prompt and the Stylize button under it, the result beside it, and a live depth preview
(no diffusion) with the depth model and method. Below: the depth and stylize controls (all drawn
from ``ui.params``), a before/after slider, downloads (result, 16-bit depth, PLY/GLB), a 3D viewer
and this session's gallery. An example photo (``ui.example``, drawn by this package) is one click
away. Every function is also an HTTP API endpoint (``gradio_client``): ``/depth_preview``,
``/stylize`` (photo and mask as separate images), ``/models``. Models load through one bounded
``ModelCache`` owned by the app. No share link unless asked, no analytics, no fonts or scripts
from the internet.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from midas_diffusion import DepthEstimator, get_model_spec, list_models
from midas_diffusion.zoo.labels import model_tags
from midas_diffusion.inference.cache import ModelCache
from midas_diffusion.io.images import DEFAULT_MAX_PIXELS, ImageError, load_image_file
from midas_diffusion.loading.weights import WeightsNotFoundError, resolve_weights

from . import params as P
from . import runtime
from .example import save_example

# the first screen is laid out for a 1400x900 window: photo, result and depth preview side by side
EDITOR_HEIGHT = 470
PREVIEW_HEIGHT = 280
MASK_BRUSH = ("#ff2d55", 0.6)  # the subject is painted half transparent, so the photo stays visible

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@dataclass(frozen=True)
class AppConfig:
    """What the app serves. ``depth_models`` maps a picker name to a zoo name, checkpoint or saved
    folder (default: the whole zoo); ``bases`` overrides the base of a method (hub id, folder or
    single-file checkpoint); ``single_file_config`` is the local diffusers folder that describes
    single-file bases (default: the method's default base from the Hugging Face cache)."""

    depth_models: Dict[str, str] = field(default_factory=lambda: {n: n for n in list_models()})
    default_depth_model: Optional[str] = None
    bases: Dict[str, str] = field(default_factory=dict)
    weights_dir: Optional[str] = None
    concurrency_limit: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    device: str = "cpu"
    output_dir: Optional[str] = None
    single_file_config: Optional[str] = None
    backend: str = "auto"  # what runs the depth network (openvino_backend): auto, torch or openvino


class StylizeService:
    """Host-free logic behind the app (loading, writing result files). Depth models and pipelines
    live in ``cache`` (default: a bounded ``ModelCache()`` of its own: 1 pipeline, 2 depth models);
    the depth preview and the pipeline share one depth model object."""

    def __init__(self, config: AppConfig, cache: Optional[ModelCache] = None):
        self.config = config
        self.cache = cache if cache is not None else ModelCache()
        self._running = 0
        self._idle = threading.Condition()
        self.last_steps_done = 0  # denoising steps the latest run executed (fewer when cancelled)
        self.output_dir = Path(config.output_dir or tempfile.mkdtemp(prefix="midas-diffusion-ui-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- models
    def model_status(self, name: str) -> Tuple[bool, str]:
        """(present, one-line hint) for a picker entry."""
        source = self.config.depth_models.get(name)
        if source is None:
            return False, f"unknown depth model {name!r}"
        if os.path.exists(source):
            return True, "local file"
        spec = get_model_spec(source)
        try:
            resolve_weights(spec, self.config.weights_dir, allow_download=False, progress=False)
            return True, "weights present"
        except WeightsNotFoundError as exc:
            return False, str(exc)

    def model_choices(self) -> List[Tuple[str, str]]:
        out = []
        for name, source in self.config.depth_models.items():
            present, _ = self.model_status(name)
            hint = ""
            if not os.path.exists(source):
                spec = get_model_spec(source)
                fps = f", {spec.reference_fps:g} FPS on a 3090" if spec.reference_fps else ""
                tags = model_tags(spec)  # metric models and licences other than MIT
                hint = (f" [{', '.join(tags)}]" if tags else "") + f" — {spec.description}{fps}"
            mark = "" if present else " [weights missing]"
            out.append((f"{name}{hint}{mark}", name))
        return out

    def depth_model(self, name: str) -> DepthEstimator:
        """The picker entry ``name`` as a ``DepthEstimator`` on the app's device, from the cache."""
        present, hint = self.model_status(name)
        if not present:
            raise ValueError(hint)
        return runtime.load_estimator(self.config.depth_models[name], device=self.config.device,
                                      weights_dir=self.config.weights_dir, cache=self.cache,
                                      max_pixels=self.config.max_pixels, backend=self.config.backend)

    # ---------------------------------------------------------------- runs
    def wait_idle(self, timeout: float = 600) -> bool:
        """Block until no stylization runs (gradio cancels the request, not a running thread)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    # ---------------------------------------------------------------- inputs
    def read_image(self, image: Any):
        """The uploaded photo as (rgb uint8 HxWx3, alpha mask or None)."""
        if image is None:
            raise ValueError("upload or paste an image first")
        if isinstance(image, (str, os.PathLike)):
            image = load_image_file(image, self.config.max_pixels)
        from PIL import Image

        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        if image.width * image.height > self.config.max_pixels:
            raise ValueError(
                f"image is {image.width}x{image.height} = {image.width * image.height / 1e6:.1f} MP, over the limit of "
                f"{self.config.max_pixels / 1e6:.1f} MP"
            )
        alpha = None
        if image.mode in ("RGBA", "LA") and np.asarray(image.getchannel("A")).min() < 255:
            alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255
        return np.asarray(image.convert("RGB")), alpha

    @staticmethod
    def read_mask(mask: Any, size: Tuple[int, int]) -> Optional[np.ndarray]:
        """A painted mask -> (H,W) float32 with 1 = subject, at ``size``; None when nothing is
        painted. ``mask``: the editor's value (its brush layers: painted = subject), an image with
        transparency (opaque = subject) or a grey/RGB image (bright = subject)."""
        if mask is None:
            return None
        if isinstance(mask, dict):
            layers = [np.asarray(layer) for layer in mask.get("layers") or [] if layer is not None]
            if not layers:
                return None
            arr = np.max([layer[..., 3] if layer.ndim == 3 and layer.shape[-1] == 4 else layer for layer in layers],
                         axis=0)
        else:
            arr = np.asarray(mask)
        if arr.ndim == 3:
            has_alpha = arr.shape[-1] in (2, 4) and arr[..., -1].min() < 255
            arr = arr[..., -1] if has_alpha else arr[..., :3].mean(-1)
        arr = arr.astype(np.float32)
        if arr.max() <= 0:
            return None
        from PIL import Image

        arr = np.asarray(Image.fromarray((arr / arr.max() * 255).astype(np.uint8)).resize((size[1], size[0])))
        return (arr > 127).astype(np.float32)

    # ---------------------------------------------------------------- work
    def depth(self, image, model, resolution, low, high, gamma, invert):
        rgb, _ = self.read_image(image)
        settings = P.depth_settings(resolution, low, high, gamma, invert)
        return rgb, runtime.disparity_map(self.depth_model(model), rgb, **settings)

    def write_depth_files(self, disparity: np.ndarray, stem: str) -> Tuple[str, str]:
        from PIL import Image

        from midas_diffusion.io.writers import atomic_path, write_png16

        preview = self.output_dir / f"{stem}-depth-preview.png"
        with atomic_path(preview) as tmp:
            Image.fromarray((disparity * 255 + 0.5).astype(np.uint8)).save(tmp, format="PNG")
        depth16 = write_png16(self.output_dir / f"{stem}-depth16.png", disparity)
        return str(preview), str(depth16)

    def stylize(self, image, model, resolution, low, high, gamma, invert, background_weight, mask, method, base,
                prompt, negative_prompt, steps, guidance, strength, seed, export, progress=None,
                known_depths="", cancel=None):
        """One stylization; ``cancel`` (a ``CancelToken``; the app's event sets it when gradio cancels the
        event) stops it at the next denoising step with ``Cancelled``, before any file is written."""
        from midas_diffusion.pipelines.cancel import CancelToken

        token = cancel if cancel is not None else CancelToken()
        with self._idle:
            self._running += 1
        self.last_steps_done = 0
        try:
            return self._stylize(image, model, resolution, low, high, gamma, invert, background_weight, mask, method,
                                 base, prompt, negative_prompt, steps, guidance, strength, seed, export, progress, token,
                                 known_depths)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _stylize(self, image, model, resolution, low, high, gamma, invert, background_weight, mask, method, base,
                 prompt, negative_prompt, steps, guidance, strength, seed, export, progress, cancel, known_depths=""):
        from midas_diffusion.pipelines import load_pipeline
        from midas_diffusion.pipelines.components import DepthSettings

        if not prompt or not str(prompt).strip():
            raise ValueError("the prompt is empty: describe the style you want")
        method = P.get_spec("method").check(method)
        steps = P.get_spec("steps").check(steps)
        seed = P.get_spec("seed").check(seed)
        rgb, alpha = self.read_image(image)
        points = self.read_known_depths(known_depths, export)  # checked before anything runs
        subject = self.read_mask(mask, rgb.shape[:2])
        if subject is None:
            subject = alpha
        depth_kwargs = P.depth_settings(resolution, low, high, gamma, invert)
        DepthSettings(**depth_kwargs)  # validates
        depth_model = self.depth_model(model)
        base = (base or "").strip() or self.config.bases.get(method)
        # the cached DepthEstimator is wrapped by the pipeline, not copied: preview and stylize share it
        pipe = load_pipeline(method, base or None, depth_model, device=self.config.device,
                             single_file_config=self.config.single_file_config, cache=self.cache)
        kwargs = dict(depth_kwargs, num_inference_steps=steps, guidance_scale=float(guidance), seed=seed,
                      negative_prompt=negative_prompt or None, rgbd="conditioning" if export else None)
        if method == "depth2img":
            kwargs["strength"] = P.get_spec("strength").check(strength)
        if subject is not None:
            import torch

            kwargs["background_mask"] = torch.from_numpy(subject)
            kwargs["background_weight"] = P.get_spec("background_weight").check(background_weight)
        def on_step(pipe_, i, t, tensors):
            self.last_steps_done = i + 1
            if progress is not None and not cancel.cancelled:
                progress((i + 1) / steps, desc=f"denoising step {i + 1}/{steps}")
            return cancel.callback(pipe_, i, t, tensors)  # raises Cancelled: no later step, no decode, no file

        kwargs["callback_on_step_end"] = on_step
        result = pipe(prompt, image=rgb, **kwargs)
        stem = f"result-{seed}-{random.randrange(16**6):06x}"
        out_png = self.output_dir / f"{stem}.png"
        from midas_diffusion.io.writers import atomic_path

        with atomic_path(out_png) as tmp:
            result.images[0].save(tmp, format="PNG")
        disparity = result.disparity[0, 0].numpy()
        _, depth16 = self.write_depth_files(disparity, stem)
        model3d = None
        if export:
            from midas_diffusion.io.rgbd import export_glb, export_ply

            metres = None
            if points is not None:  # the mesh in metres, from the known distances
                metres = self.metric_depth(disparity, points).depth
            elif depth_model.spec.predicts == "metres":  # a metric model: its own metres, no near/far guess
                metres = self.model_metres(depth_model, rgb, depth_kwargs["processing_resolution"], disparity.shape)
            fn = export_glb if export == "glb" else export_ply
            model3d = str(fn(self.output_dir / f"{stem}.{export}", np.asarray(result.images[0]), disparity,
                             depth=metres))
        return rgb, result, str(out_png), depth16, model3d

    @staticmethod
    def read_known_depths(text: Any, export: Any) -> Optional[np.ndarray]:
        """The "Known distances" box as (N,3) x, y, metres rows, or None when it is empty; it only
        applies to a 3D export, so text without an export is a clear error, not silently ignored."""
        from midas_diffusion.evaluation.metric_files import parse_points

        text = P.get_spec("known_depths").check(text).strip()
        if not text:
            return None
        if not export:
            raise ValueError("known distances make the 3D export metric: choose GLB or PLY under 3D export")
        return parse_points(text, "known distances")

    @staticmethod
    def model_metres(depth_model: DepthEstimator, rgb: np.ndarray, resolution, size) -> np.ndarray:
        """A metric model's metres for ``rgb`` at ``size`` (the conditioning disparity's (H,W))."""
        import torch

        metres = depth_model.at_resolution(resolution)(rgb).metres
        if tuple(metres.shape[-2:]) != tuple(size):
            metres = torch.nn.functional.interpolate(metres, size=tuple(size), mode="bilinear", align_corners=False)
        return metres[0, 0].numpy()

    @staticmethod
    def metric_depth(disparity: np.ndarray, points: np.ndarray):
        """Depth in metres of the conditioning disparity, fitted to the known points (RANSAC)."""
        from midas_diffusion.evaluation.metric_depth import metric_depth, sparse_from_points

        height, width = disparity.shape
        return metric_depth(disparity, sparse_from_points(points, height, width), **P.metric_settings())


def editor_photo(value: Any) -> Any:
    """The photo of the editor's value (its background), or the value itself (a file or image)."""
    return value.get("background") if isinstance(value, dict) else value


def photo_fingerprint(value: Any) -> Optional[str]:
    """A content hash of the editor's photo (None without one): brush strokes leave it unchanged."""
    photo = editor_photo(value)
    if photo is None:
        return None
    if isinstance(photo, (str, os.PathLike)):
        return str(photo)
    arr = np.ascontiguousarray(np.asarray(photo))
    return hashlib.blake2b(arr.tobytes() + repr(arr.shape).encode(), digest_size=16).hexdigest()


def build_app(config: Optional[AppConfig] = None, cache: Optional[ModelCache] = None):
    """The ``gr.Blocks`` app (not launched); ``cache``: where its models live (default: its own)."""
    import gradio as gr

    config = config or AppConfig()
    service = StylizeService(config, cache)

    def control(name, **overrides):
        kwargs = {**P.to_gradio_kwargs(P.get_spec(name)), **overrides}
        component = kwargs.pop("component")
        return getattr(gr, component)(**kwargs)

    def fail(exc: Exception):
        raise gr.Error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def depth_preview(image, model, resolution, low, high, gamma, invert):
        try:
            _, disparity = service.depth(image, model, resolution, low, high, gamma, invert)
            return service.write_depth_files(disparity, f"preview-{random.randrange(16**6):06x}")
        except (ValueError, ImageError, OSError) as exc:
            fail(exc)

    def editor_depth_preview(editor, model, resolution, low, high, gamma, invert, shown):
        """The preview for the photo in the editor; a brush stroke (same photo, same settings) is skipped."""
        key = (photo_fingerprint(editor), model, resolution, low, high, gamma, invert)
        if key[0] is None:
            return None, None, None
        if key == shown:
            return gr.skip(), gr.skip(), shown
        return (*depth_preview(editor_photo(editor), model, resolution, low, high, gamma, invert), key)

    async def stylize(image, model, resolution, low, high, gamma, invert, background_weight, mask, method, base,
                      prompt, negative_prompt, steps, guidance, strength, seed, export, gallery, known_depths="",
                      progress=gr.Progress()):
        """The run is in a worker thread; when gradio cancels the event (the Cancel button, or an API client's
        cancel), the worker stops at its next denoising step and the event ends only once it has, so the
        next request in the queue starts on a free worker."""
        import asyncio

        from midas_diffusion.pipelines.cancel import Cancelled, CancelToken

        token = CancelToken()
        work = asyncio.ensure_future(asyncio.to_thread(
            service.stylize, image, model, resolution, low, high, gamma, invert, background_weight, mask, method, base,
            prompt, negative_prompt, steps, guidance, strength, seed, export or None, progress=progress,
            known_depths=known_depths or "", cancel=token))
        try:
            rgb, result, out_png, depth16, model3d = await asyncio.shield(work)
        except asyncio.CancelledError:
            token.cancel()
            await asyncio.gather(work, return_exceptions=True)  # at most one more step
            raise
        except Cancelled:
            raise gr.Error("cancelled") from None
        except (ValueError, ImageError, OSError) as exc:
            fail(exc)
        caption = f"{result.settings['method']} · {model} · seed {seed} · {prompt}"
        gallery = (gallery or []) + [(out_png, caption)]
        files = [out_png, depth16] + ([model3d] if model3d else [])
        return (rgb, out_png), out_png, files, model3d, gallery, gallery

    async def editor_stylize(editor, model, resolution, low, high, gamma, invert, background_weight, method, base,
                             prompt, negative_prompt, steps, guidance, strength, seed, export, gallery, known_depths="",
                             progress=gr.Progress()):
        """The editor's photo is the image and its brush layer the subject mask."""
        return await stylize(editor_photo(editor), model, resolution, low, high, gamma, invert, background_weight, editor,
                       method, base, prompt, negative_prompt, steps, guidance, strength, seed, export, gallery,
                       known_depths, progress)

    models = service.model_choices()
    present = [value for label, value in models if "[weights missing]" not in label]
    default_model = config.default_depth_model or (present[0] if present else models[0][1])
    example = save_example(service.output_dir)

    with gr.Blocks(title="midas-diffusion", analytics_enabled=False) as app:
        gallery_state = gr.State([])
        shown_preview = gr.State(None)  # what the depth preview shows: (photo hash, settings)
        with gr.Row(equal_height=False, elem_id="workspace"):
            with gr.Column(scale=5, min_width=400):
                photo = gr.ImageEditor(
                    label="Photo · brush = subject mask (optional)", type="pil",
                    image_mode="RGBA", sources=["upload", "clipboard"], layers=False, transforms=(), format="png",
                    brush=gr.Brush(colors=[MASK_BRUSH], default_color=MASK_BRUSH, color_mode="fixed"),
                    height=EDITOR_HEIGHT, elem_id="photo")
                prompt = control("prompt", elem_id="prompt", lines=2, max_lines=4)
                with gr.Row():
                    run = gr.Button("Stylize", variant="primary", scale=3, elem_id="run")
                    cancel = gr.Button("Cancel", scale=1, min_width=80, elem_id="cancel")
            with gr.Column(scale=5, min_width=400):
                result_image = gr.Image(label="Result", type="filepath", interactive=False, height=EDITOR_HEIGHT,
                                        elem_id="result")
                gr.Examples([[str(example)]], inputs=[photo], label="Example photo (drawn by midas-diffusion)",
                            elem_id="examples")
            with gr.Column(scale=3, min_width=260):
                preview = gr.Image(label="Depth preview (near = white)", interactive=False, height=PREVIEW_HEIGHT,
                                   elem_id="depth-preview")
                model = gr.Dropdown(choices=models, value=default_model, label="Depth model",
                                    info="missing weights are marked; pick one to see where to put them",
                                    elem_id="depth-model")
                method = control("method")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Depth")
                resolution = control("resolution")
                low = control("percentile_low")
                high = control("percentile_high")
                gamma = control("gamma")
                invert = control("invert")
                background_weight = control("background_weight")
            with gr.Column():
                gr.Markdown("### Stylize")
                base = control("base")
                negative_prompt = control("negative_prompt")
                steps = control("steps", elem_id="steps")
                guidance = control("guidance")
                strength = control("strength")
                with gr.Row():
                    seed = control("seed", scale=4)
                    dice = gr.Button("🎲 Random", scale=1, min_width=80, elem_id="dice")
                export = gr.Radio(choices=[("none", ""), ("GLB mesh", "glb"), ("PLY points", "ply")], value="",
                                  label="3D export (RGBD)", elem_id="export")
                known = control("known_depths", elem_id="known-depths", lines=2, max_lines=8,
                                placeholder="optional, e.g.\n120, 340, 2.5\n600, 410, 4.0\n900, 200, 7.2")
        with gr.Row():
            slider = gr.ImageSlider(label="Before / after", type="filepath", max_height=480, elem_id="before-after")
            with gr.Column():
                depth_file = gr.File(label="Depth preview as 16-bit PNG", elem_id="depth-file")
                files = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")
                viewer = gr.Model3D(label="3D view", elem_id="viewer")
        gallery = gr.Gallery(label="This session", columns=6, height=240, elem_id="gallery")
        # the HTTP API takes the photo and the mask as two images (no editor value to build)
        api_image = gr.Image(type="pil", image_mode="RGBA", visible=False)
        api_mask = gr.Image(type="pil", image_mode=None, visible=False)

        settings = [model, resolution, low, high, gamma, invert]
        preview_outputs = [preview, depth_file, shown_preview]
        for trigger in (photo.upload, photo.change, model.change, resolution.release, low.release, high.release,
                        gamma.release, invert.change):
            trigger(editor_depth_preview, [photo, *settings, shown_preview], preview_outputs, api_name=False,
                    show_progress="minimal", concurrency_id="depth", concurrency_limit=config.concurrency_limit)
        photo.clear(lambda: (None, None, None), None, preview_outputs, api_name=False)
        gr.Button("Update depth", visible=False).click(
            depth_preview, [api_image, *settings], [preview, depth_file], api_name="depth_preview",
            concurrency_id="depth", concurrency_limit=config.concurrency_limit)
        dice.click(lambda: random.randrange(2**31), None, seed, api_name=False)
        # known distances come last, so API clients written before them keep their argument positions
        stylize_settings = [method, base, prompt, negative_prompt, steps, guidance, strength, seed, export,
                            gallery_state, known]
        stylize_outputs = [slider, result_image, files, viewer, gallery, gallery_state]
        event = run.click(
            editor_stylize, [photo, *settings, background_weight, *stylize_settings], stylize_outputs, api_name=False,
            concurrency_id="diffusion", concurrency_limit=config.concurrency_limit)
        gr.Button("stylize", visible=False).click(
            stylize, [api_image, *settings, background_weight, api_mask, *stylize_settings], stylize_outputs,
            api_name="stylize", concurrency_id="diffusion", concurrency_limit=config.concurrency_limit)

        # gradio's cancel of ``event`` stops the run (``stylize`` sets its token); the handler only says so. It
        # must not look the run up by session: a handler that runs late would stop the session's next run.
        cancel.click(lambda: gr.Info("cancelled"), None, None, cancels=[event], api_name=False)
        gr.Button("models", visible=False).click(
            lambda: {name: service.model_status(name)[1] for name in config.depth_models}, None, gr.JSON(visible=False),
            api_name="models")
    app.queue(default_concurrency_limit=config.concurrency_limit)
    app.service = service
    return app


def launch(config: Optional[AppConfig] = None, host: str = "127.0.0.1", port: Optional[int] = None, share: bool = False,
           **kwargs):
    app = build_app(config)
    allowed = [str(app.service.output_dir), *kwargs.pop("allowed_paths", [])]
    return app.launch(server_name=host, server_port=port, share=share, allowed_paths=allowed, **kwargs)
