"""``midas-diffusion stylize IMAGE "PROMPT" -o OUT.png``: the main job from the shell.

Registered with ``midas_diffusion``'s CLI through the ``midas_diffusion.cli`` entry-point group.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parsers(sub) -> None:
    from midas_diffusion import DEFAULT_MODEL
    from midas_diffusion.cli.args import parse_export_formats, parse_percentile

    from .methods import DEFAULT_METHOD, METHODS
    from .schedulers import SCHEDULERS

    p = sub.add_parser("stylize", help="restyle a photo with a prompt, keeping its depth")
    p.add_argument("image")
    p.add_argument("prompt")
    p.add_argument("-o", "--output", required=True, help="output PNG (several images: OUT-0.png, OUT-1.png, ...)")
    p.add_argument("--method", choices=list(METHODS), default=DEFAULT_METHOD)
    p.add_argument("--base", default=None, help="hub id, diffusers folder or single-file .safetensors")
    p.add_argument("--single-file-config", default=None, help="local diffusers folder for a single-file base")
    p.add_argument("--control-model", default=None, help="ControlNet / adapter id or folder (default per method)")
    p.add_argument("--depth-model", default=None, help=f"zoo model (default: the base's own, else {DEFAULT_MODEL})")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--strength", type=float, default=None, help="depth2img only")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--num-images", type=int, default=1)
    p.add_argument("--scheduler", choices=list(SCHEDULERS), default=None)
    p.add_argument("--resolution", type=int, default=None, help="depth processing resolution")
    p.add_argument("--percentile", type=parse_percentile, default=None)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--invert", action="store_true")
    p.add_argument("--mask", default=None, help="subject mask image (white = subject; alpha used if present)")
    p.add_argument("--background-weight", type=float, default=0.0)
    _add_device_arguments(p)
    p.add_argument("--cpu-offload", action="store_true")
    p.add_argument("--attention-slicing", action="store_true")
    p.add_argument("--vae-tiling", action="store_true")
    p.add_argument("--save-depth", action="store_true", help="also write OUT-depth.png (16-bit disparity)")
    p.add_argument("--export", type=parse_export_formats, default=[], help="also write OUT.ply / OUT.glb (comma list)")
    p.add_argument("--rgbd-depth", choices=["conditioning", "reestimate"], default="conditioning",
                   help="depth of the exported RGBD: the conditioning disparity or one re-estimated on the result")
    _add_geometry_arguments(p)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run_stylize)

    r = sub.add_parser("rgbd", help="text to RGB + depth (LDM3D), with optional 3D export")
    r.add_argument("prompt")
    r.add_argument("-o", "--output", required=True, help="output folder (rgb.png, depth.png, side_by_side.png, ...)")
    r.add_argument("--base", default=None, help="Intel/ldm3d-4c (default), Intel/ldm3d, Intel/ldm3d-pano or a folder")
    r.add_argument("--negative-prompt", default=None)
    r.add_argument("--height", type=int, default=None)
    r.add_argument("--width", type=int, default=None)
    r.add_argument("--steps", type=int, default=49)
    r.add_argument("--guidance", type=float, default=5.0)
    r.add_argument("--seed", type=int, default=None)
    _add_device_arguments(r)
    r.add_argument("--export", type=parse_export_formats, default=[], help="comma list of ply, glb")
    _add_geometry_arguments(r)
    r.add_argument("--overwrite", action="store_true")
    r.set_defaults(func=run_rgbd)


def _add_device_arguments(p) -> None:
    p.add_argument("--device", default="auto", help="auto = cuda, else mps, else cpu")
    p.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto",
                   help="auto = float16 on cuda, float32 elsewhere (depth always runs in float32)")


def device_and_dtype(device: str, dtype: str):
    """``auto`` device: cuda, else mps, else cpu; ``auto`` dtype: float16 on cuda, float32 elsewhere."""
    import torch

    from midas_diffusion.inference.devices import mps_available

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    if dtype == "auto":
        dtype = "float16" if str(device).startswith("cuda") else "float32"
    return device, getattr(torch, dtype)


def _add_geometry_arguments(p) -> None:
    p.add_argument("--fov", type=float, default=60.0, help="camera field of view along the longer side, degrees")
    p.add_argument("--near", type=float, default=1.0, help="distance of disparity 1")
    p.add_argument("--far", type=float, default=10.0, help="distance of disparity 0")
    p.add_argument("--max-depth-jump", type=float, default=0.1, help="GLB: cut triangles across larger relative jumps")
    p.add_argument("--panorama", action="store_true", help="equirectangular unprojection")


def export_rgbd(stem: Path, rgb, disparity, formats, args, metres=None) -> list:
    """Write STEM.ply / STEM.glb for one RGBD image (in ``metres`` where given: a metric depth
    model's, then --near/--far are not used); returns the paths written."""
    from midas_diffusion.io.rgbd import export_glb, export_ply

    written = []
    for fmt in formats:
        path = stem.with_suffix("." + fmt)
        if fmt == "ply":
            export_ply(path, rgb, disparity, args.fov, args.near, args.far, panorama=args.panorama, depth=metres)
        else:
            export_glb(path, rgb, disparity, args.fov, args.near, args.far, args.max_depth_jump, panorama=args.panorama,
                       depth=metres)
        written.append(path)
    return written


def _load_mask(path):
    import numpy as np

    from midas_diffusion.io.images import load_image_file

    img = load_image_file(path)
    if img.mode in ("RGBA", "LA"):
        return np.asarray(img.getchannel("A"), dtype=np.float32) / 255
    return np.asarray(img.convert("L"), dtype=np.float32) / 255


def run_stylize(args) -> int:
    """``midas-diffusion stylize``; Ctrl-C stops it with a short message and exit code 130. Every file is
    written whole or not at all (``atomic_path``), so a stop leaves no partial file."""
    try:
        return _stylize(args)
    except KeyboardInterrupt:
        print("cancelled (Ctrl-C): stopped; no partial file was written", file=sys.stderr)
        return 130


def _stylize(args) -> int:
    import torch

    from midas_diffusion.io.writers import atomic_path, write_png16

    from .api import pipeline

    out = Path(args.output)
    targets = [out] if args.num_images == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(args.num_images)]
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        print(f"error: {existing[0]} exists (use --overwrite)", file=sys.stderr)
        return 1
    device, dtype = device_and_dtype(args.device, args.dtype)
    kwargs = dict(
        num_inference_steps=args.steps, negative_prompt=args.negative_prompt, num_images_per_prompt=args.num_images,
        processing_resolution=args.resolution, percentile=args.percentile, gamma=args.gamma, invert=args.invert,
        background_weight=args.background_weight,
    )
    if args.guidance is not None:
        kwargs["guidance_scale"] = args.guidance
    if args.strength is not None:
        kwargs["strength"] = args.strength
    if args.export:
        kwargs["rgbd"] = args.rgbd_depth
    try:
        if args.mask:
            kwargs["background_mask"] = torch.from_numpy(_load_mask(args.mask))
        result = pipeline(args.image, args.prompt, method=args.method, base=args.base, depth_model=args.depth_model,
                          control_model=args.control_model, seed=args.seed, dtype=dtype, device=device,
                          single_file_config=args.single_file_config, scheduler=args.scheduler,
                          cpu_offload=args.cpu_offload, attention_slicing=args.attention_slicing,
                          vae_tiling=args.vae_tiling, cache=None, **kwargs)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for target, image in zip(targets, result.images):
        with atomic_path(target) as tmp:
            image.save(tmp, format="PNG")
    if args.save_depth:
        write_png16(out.with_name(f"{out.stem}-depth.png"), result.disparity[0])
    if args.export:
        import numpy as np

        try:
            metres = result.output_metres if result.output_metres is not None else [None] * len(targets)
            for target, image, disparity, metric in zip(targets, result.images, result.output_disparity, metres):
                export_rgbd(target.with_suffix(""), np.asarray(image), disparity[0], args.export, args,
                            None if metric is None else metric[0])
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    settings = {k: v for k, v in result.settings.items() if isinstance(v, (str, int, float, bool, list, tuple, type(None)))}
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(settings, indent=2, default=str))
    print(f"wrote {', '.join(str(t) for t in targets)} (seed {result.settings.get('seed')})")
    return 0


def run_rgbd(args) -> int:
    import numpy as np

    from midas_diffusion.io.rgbd import export_side_by_side
    from midas_diffusion.io.writers import atomic_path, write_png16

    from .api import load_rgbd_pipeline

    outdir = Path(args.output)
    names = ["rgb.png", "depth.png", "side_by_side.png", "settings.json"] + [f"rgbd.{f}" for f in args.export]
    existing = [outdir / n for n in names if (outdir / n).exists()]
    if existing and not args.overwrite:
        print(f"error: {existing[0]} exists (use --overwrite)", file=sys.stderr)
        return 1
    if not args.prompt.strip():
        print("error: prompt must not be empty", file=sys.stderr)
        return 1
    try:
        device, dtype = device_and_dtype(args.device, args.dtype)
        pipe = load_rgbd_pipeline(args.base, dtype=dtype, device=device)
        result = pipe(args.prompt, height=args.height, width=args.width, num_inference_steps=args.steps,
                      guidance_scale=args.guidance, negative_prompt=args.negative_prompt, seed=args.seed, output_type="np")
        rgb, depth = result.rgb[0], result.depth[0]
        outdir.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        with atomic_path(outdir / "rgb.png") as tmp:
            Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(tmp, format="PNG")
        write_png16(outdir / "depth.png", depth)
        export_side_by_side(outdir / "side_by_side.png", rgb, depth)
        export_rgbd(outdir / "rgbd", rgb, depth, args.export, args)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with atomic_path(outdir / "settings.json") as tmp:
        tmp.write_text(json.dumps(result.settings, indent=2, default=str))
    print(f"wrote {outdir} (seed {result.settings.get('seed')})")
    return 0
