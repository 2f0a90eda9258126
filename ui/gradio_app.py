"""The Gradio app: restyle a photo while keeping its 3D shape.

    midas-diffusion ui [--host 127.0.0.1] [--port 7860] [--concurrency 1]

One screen: the photo, a live depth preview (no diffusion), the depth and stylize controls (all drawn
from ``ui.params``), a before/after slider, this session's gallery, downloads (result, 16-bit depth,
PLY/GLB) and a 3D viewer. Every function is also an HTTP API endpoint (``gradio_client``):
``/depth_preview``, ``/stylize``, ``/models``. No share link unless asked, no analytics, no fonts
or scripts from the internet.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from midas_diffusion import get_model_spec, list_models
from midas_diffusion.images import DEFAULT_MAX_PIXELS, ImageError, load_image_file
from midas_diffusion.weights import WeightsNotFoundError, resolve_weights

from . import params as P

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@dataclass
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


class StylizeService:
    """Host-free logic behind the app (loading, caching, writing result files)."""

    def __init__(self, config: AppConfig):
        self.config = config
        self._components: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._running = 0
        self._idle = threading.Condition()
        self._cancelled: set = set()  # sessions whose Cancel button was pressed during a run
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
                hint = f" — {spec.description}{fps}"
            mark = "" if present else " [weights missing]"
            out.append((f"{name}{hint}{mark}", name))
        return out

    def depth_component(self, name: str):
        present, hint = self.model_status(name)
        if not present:
            raise ValueError(hint)
        with self._lock:
            if name not in self._components:
                from midas_diffusion.pipelines.components import MidasDepthEstimator

                component = MidasDepthEstimator.from_zoo(self.config.depth_models[name], weights_dir=self.config.weights_dir,
                                                         allow_download=False, max_pixels=self.config.max_pixels)
                self._components[name] = component
            return self._components[name]

    # ---------------------------------------------------------------- runs
    def request_cancel(self, session: str) -> None:
        """Ask the session's running stylization to stop at its next denoising step."""
        self._cancelled.add(session)

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
        """A drawn mask (gradio ImageMask value or image): painted = subject."""
        if mask is None:
            return None
        layers = mask.get("layers") if isinstance(mask, dict) else None
        if isinstance(mask, dict):
            if not layers:
                return None
            arr = np.asarray(layers[0])
        else:
            arr = np.asarray(mask)
        if arr.ndim == 3:
            arr = arr[..., 3] if arr.shape[-1] == 4 else arr.mean(-1)
        arr = arr.astype(np.float32)
        if arr.max() <= 0:
            return None
        from PIL import Image

        arr = np.asarray(Image.fromarray((arr / arr.max() * 255).astype(np.uint8)).resize((size[1], size[0])))
        return (arr > 127).astype(np.float32)

    # ---------------------------------------------------------------- work
    def depth(self, image, model, resolution, low, high, gamma, invert):
        from midas_diffusion.pipelines.components import DepthSettings

        rgb, _ = self.read_image(image)
        settings = DepthSettings(**P.depth_settings(resolution, low, high, gamma, invert))
        disparity = self.depth_component(model).estimate(rgb, settings)[0][0, 0].numpy()
        return rgb, disparity

    def write_depth_files(self, disparity: np.ndarray, stem: str) -> Tuple[str, str]:
        from PIL import Image

        from midas_diffusion.writers import atomic_path, write_png16

        preview = self.output_dir / f"{stem}-depth-preview.png"
        with atomic_path(preview) as tmp:
            Image.fromarray((disparity * 255 + 0.5).astype(np.uint8)).save(tmp, format="PNG")
        depth16 = write_png16(self.output_dir / f"{stem}-depth16.png", disparity)
        return str(preview), str(depth16)

    def stylize(self, image, model, resolution, low, high, gamma, invert, background_weight, mask, method, base,
                prompt, negative_prompt, steps, guidance, strength, seed, export, progress=None, session=""):
        with self._idle:
            self._running += 1
        self._cancelled.discard(session)
        try:
            return self._stylize(image, model, resolution, low, high, gamma, invert, background_weight, mask, method,
                                 base, prompt, negative_prompt, steps, guidance, strength, seed, export, progress, session)
        finally:
            self._cancelled.discard(session)
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _stylize(self, image, model, resolution, low, high, gamma, invert, background_weight, mask, method, base,
                 prompt, negative_prompt, steps, guidance, strength, seed, export, progress, session):
        from midas_diffusion.pipelines import load_pipeline
        from midas_diffusion.pipelines.components import DepthSettings

        if not prompt or not str(prompt).strip():
            raise ValueError("the prompt is empty: describe the style you want")
        method = P.get_spec("method").check(method)
        steps = P.get_spec("steps").check(steps)
        seed = P.get_spec("seed").check(seed)
        rgb, alpha = self.read_image(image)
        subject = self.read_mask(mask, rgb.shape[:2])
        if subject is None:
            subject = alpha
        depth_kwargs = P.depth_settings(resolution, low, high, gamma, invert)
        DepthSettings(**depth_kwargs)  # validates
        component = self.depth_component(model)
        base = (base or "").strip() or self.config.bases.get(method)
        pipe = load_pipeline(method, base or None, component, device=self.config.device,
                             single_file_config=self.config.single_file_config)
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
            if session in self._cancelled:
                pipe_._interrupt = True  # diffusers skips the remaining steps
            elif progress is not None:
                progress((i + 1) / steps, desc=f"denoising step {i + 1}/{steps}")
            return tensors

        kwargs["callback_on_step_end"] = on_step
        result = pipe(prompt, image=rgb, **kwargs)
        stem = f"result-{seed}-{random.randrange(16**6):06x}"
        out_png = self.output_dir / f"{stem}.png"
        from midas_diffusion.writers import atomic_path

        with atomic_path(out_png) as tmp:
            result.images[0].save(tmp, format="PNG")
        disparity = result.disparity[0, 0].numpy()
        _, depth16 = self.write_depth_files(disparity, stem)
        model3d = None
        if export:
            from midas_diffusion.rgbd import export_glb, export_ply

            fn = export_glb if export == "glb" else export_ply
            model3d = str(fn(self.output_dir / f"{stem}.{export}", np.asarray(result.images[0]), disparity))
        return rgb, result, str(out_png), depth16, model3d


def build_app(config: Optional[AppConfig] = None):
    """The ``gr.Blocks`` app (not launched)."""
    import gradio as gr

    config = config or AppConfig()
    service = StylizeService(config)

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

    def stylize(image, model, resolution, low, high, gamma, invert, background_weight, mask, method, base, prompt,
                negative_prompt, steps, guidance, strength, seed, export, gallery, request: gr.Request,
                progress=gr.Progress()):
        try:
            rgb, result, out_png, depth16, model3d = service.stylize(
                image, model, resolution, low, high, gamma, invert, background_weight, mask, method, base, prompt,
                negative_prompt, steps, guidance, strength, seed, export or None, progress,
                session=getattr(request, "session_hash", "") or "")
        except (ValueError, ImageError, OSError) as exc:
            fail(exc)
        caption = f"{result.settings['method']} · {model} · seed {seed} · {prompt}"
        gallery = (gallery or []) + [(out_png, caption)]
        files = [out_png, depth16] + ([model3d] if model3d else [])
        return (rgb, out_png), out_png, files, model3d, gallery, gallery

    models = service.model_choices()
    present = [value for label, value in models if "[weights missing]" not in label]
    default_model = config.default_depth_model or (present[0] if present else models[0][1])

    with gr.Blocks(title="midas-diffusion", analytics_enabled=False) as app:
        gr.Markdown("## midas-diffusion · restyle a photo, keep its 3D shape")
        gallery_state = gr.State([])
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="Photo", type="pil", image_mode="RGBA", sources=["upload", "clipboard"],
                                 height=360, elem_id="photo")
                mask = gr.ImageMask(label="Subject mask (optional; paint the subject)", type="pil", elem_id="mask")
            with gr.Column(scale=1):
                preview = gr.Image(label="Depth preview (near = white)", interactive=False, height=360,
                                   elem_id="depth-preview")
                depth_file = gr.File(label="16-bit depth PNG", elem_id="depth-file")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Depth")
                model = gr.Dropdown(choices=models, value=default_model, label="Depth model",
                                    info="missing weights are marked; pick one to see where to put them",
                                    elem_id="depth-model")
                resolution = control("resolution")
                low = control("percentile_low")
                high = control("percentile_high")
                gamma = control("gamma")
                invert = control("invert")
                background_weight = control("background_weight")
            with gr.Column():
                gr.Markdown("### Stylize")
                method = control("method")
                base = control("base")
                prompt = control("prompt", elem_id="prompt")
                negative_prompt = control("negative_prompt")
                steps = control("steps", elem_id="steps")
                guidance = control("guidance")
                strength = control("strength")
                with gr.Row():
                    seed = control("seed", scale=4)
                    dice = gr.Button("🎲 Random", scale=1, min_width=80, elem_id="dice")
                export = gr.Radio(choices=[("none", ""), ("GLB mesh", "glb"), ("PLY points", "ply")], value="",
                                  label="3D export (RGBD)", elem_id="export")
                with gr.Row():
                    run = gr.Button("Stylize", variant="primary", elem_id="run")
                    cancel = gr.Button("Cancel", elem_id="cancel")
        with gr.Row():
            slider = gr.ImageSlider(label="Before / after", type="filepath", max_height=480, elem_id="before-after")
            result_image = gr.Image(label="Result", type="filepath", interactive=False, height=480, elem_id="result")
        with gr.Row():
            files = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")
            viewer = gr.Model3D(label="3D view", elem_id="viewer")
        gallery = gr.Gallery(label="This session", columns=6, height=240, elem_id="gallery")

        depth_inputs = [image, model, resolution, low, high, gamma, invert]
        for trigger in (image.change, model.change, resolution.release, low.release, high.release, gamma.release,
                        invert.change):
            trigger(depth_preview, depth_inputs, [preview, depth_file], api_name=False, show_progress="minimal",
                    concurrency_id="depth", concurrency_limit=config.concurrency_limit)
        gr.Button("Update depth", visible=False).click(
            depth_preview, depth_inputs, [preview, depth_file], api_name="depth_preview",
            concurrency_id="depth", concurrency_limit=config.concurrency_limit)
        dice.click(lambda: random.randrange(2**31), None, seed, api_name=False)
        event = run.click(
            stylize,
            depth_inputs + [background_weight, mask, method, base, prompt, negative_prompt, steps, guidance, strength,
                            seed, export, gallery_state],
            [slider, result_image, files, viewer, gallery, gallery_state],
            api_name="stylize", concurrency_id="diffusion", concurrency_limit=config.concurrency_limit,
        )
        def cancel_run(request: gr.Request):
            service.request_cancel(getattr(request, "session_hash", "") or "")

        cancel.click(cancel_run, None, None, cancels=[event], api_name=False)
        gr.Button("models", visible=False).click(
            lambda: {name: service.model_status(name)[1] for name in config.depth_models}, None, gr.JSON(visible=False),
            api_name="models")
    app.queue(default_concurrency_limit=config.concurrency_limit)
    app.service = service
    return app


def launch(config: Optional[AppConfig] = None, host: str = "127.0.0.1", port: Optional[int] = None, share: bool = False,
           **kwargs):
    app = build_app(config)
    return app.launch(server_name=host, server_port=port, share=share, **kwargs)
