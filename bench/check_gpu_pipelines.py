"""GPU checks of the pipelines that CI cannot run: model CPU offload, fp16 and bf16, on tiny components.

    python bench/check_gpu_pipelines.py      # needs CUDA; prints one line per check
"""

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator  # noqa: E402

from pipelines import MidasControlNetPipeline, MidasDepth2ImgPipeline  # noqa: E402


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


if __name__ == "__main__":
    main()
