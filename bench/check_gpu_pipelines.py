"""GPU checks of the pipelines that CI cannot run: model CPU offload, fp16 and bf16, and single-file
bases loaded straight to the GPU in half precision, on tiny components.

    python bench/check_gpu_pipelines.py      # needs CUDA; prints one line per check
"""

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator  # noqa: E402

from midas_diffusion.pipelines import MidasControlNetPipeline, MidasDepth2ImgPipeline, load_pipeline  # noqa: E402


def main():
    photo = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    for cls, extra, in_ch in ((MidasControlNetPipeline, {"controlnet": tiny_controlnet()}, 4), (MidasDepth2ImgPipeline, {}, 5)):
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            pipe = cls(**sd15_components(in_ch), **extra, depth_estimator=tiny_depth_estimator())
            pipe.set_progress_bar_config(disable=True)
            pipe.to(dtype=dtype)
            pipe.depth_estimator.to(dtype=torch.float32)
            pipe.enable_model_cpu_offload()
            out = pipe("a house", image=photo, num_inference_steps=3, seed=0, output_type="np")
            where = {name: str(next(getattr(pipe, name).parameters()).device) for name in ("unet", "vae", "depth_estimator")}
            print(f"{cls.__name__:24s} {str(dtype):15s} cpu-offload ok: images {out.images.shape}, finite "
                  f"{bool(np.isfinite(out.images).all())}, after call {where}", flush=True)
            torch.cuda.empty_cache()


def single_file_checks():
    """An original-layout SD 1.5 file loaded with ``dtype``/``device``, against the same components as a folder."""
    import tempfile

    import diffusers
    from ldm_checkpoint import save_config_folder, save_ldm_checkpoint

    photo = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    comp, cn, est = sd15_components(), tiny_controlnet(), tiny_depth_estimator()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_ldm_checkpoint(tmp / "sd15.safetensors", comp["unet"], comp["vae"], comp["text_encoder"])
        save_config_folder(tmp / "config", diffusers.StableDiffusionPipeline, comp, safety_checker=None,
                           feature_extractor=None, requires_safety_checker=False)
        MidasControlNetPipeline(**comp, controlnet=cn, depth_estimator=est).save_pretrained(tmp / "folder")
        for dtype in (torch.float16, torch.bfloat16):
            outs = []
            for base, config in ((tmp / "sd15.safetensors", tmp / "config"), (tmp / "folder", None)):
                pipe = load_pipeline("controlnet", base, est, cn, dtype=dtype, device="cuda", single_file_config=config,
                                     cache=False)
                pipe.set_progress_bar_config(disable=True)
                outs.append(pipe("a house", image=photo, num_inference_steps=3, seed=0, output_type="np").images)
                param = next(pipe.unet.parameters())
            diff = float(np.abs(outs[0] - outs[1]).max())
            print(f"single-file base {str(dtype):15s} on {param.device} ({param.dtype}): images {outs[0].shape}, "
                  f"max |file - folder| {diff:.2e}", flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
    single_file_checks()
