"""Where the time of a stylization goes, and what our wrapper costs over calling diffusers directly.

    python bench/pipeline_overhead.py                    # tiny and realistic UNet configs, CPU
    python bench/pipeline_overhead.py --device cuda --size 512 --steps 20

For each config: time in depth estimation, text encoding, denoising (UNet + ControlNet) and VAE
decoding (measured with forward hooks), then our ``MidasControlNetPipeline`` against diffusers'
``StableDiffusionControlNetPipeline`` given the same control image (depth cached), and the number of
depth-model runs over five prompts on one image. Components are randomly initialized (same shapes
as SD 1.5 for "realistic"), so timings are real while images are noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def realistic_components():
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tiny_sd import tiny_scheduler, tiny_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)  # SD 1.5 shapes
    controlnet = ControlNetModel.from_unet(unet)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=100, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    return dict(vae=vae.eval(), text_encoder=text.eval(), tokenizer=tiny_tokenizer(), unet=unet.eval(),
                scheduler=tiny_scheduler()), controlnet.eval()


def tiny_components():
    from tiny_sd import sd15_components, tiny_controlnet

    return sd15_components(), tiny_controlnet()


class StageTimer:
    """Accumulates wall time of module forwards (synchronizing CUDA around them)."""

    def __init__(self, device):
        self.device = device
        self.totals = defaultdict(float)
        self._start = {}

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def attach(self, module, name, method="forward"):
        original = getattr(module, method)

        def timed(*args, **kwargs):
            self._sync()
            start = time.perf_counter()
            out = original(*args, **kwargs)
            self._sync()
            self.totals[name] += time.perf_counter() - start
            return out

        setattr(module, method, timed)  # an instance attribute on our own benchmark objects only
        return original


def run(config_name, components, controlnet, args, device, dtype):
    from diffusers import StableDiffusionControlNetPipeline

    from midas_diffusion.pipelines import DepthSettings, MidasControlNetPipeline
    from tiny_sd import tiny_depth_estimator

    depth = tiny_depth_estimator(args.depth_model) if args.reduced_depth else None
    if depth is None:
        from midas_diffusion.pipelines import MidasDepthEstimator

        depth = MidasDepthEstimator(model_name=args.depth_model)  # random weights, full size
    ours = MidasControlNetPipeline(**components, controlnet=controlnet, depth_estimator=depth).to(device, dtype)
    ours.depth_estimator.to(dtype=torch.float32)
    ours.set_progress_bar_config(disable=True)
    upstream = StableDiffusionControlNetPipeline(**components, controlnet=controlnet, safety_checker=None,
                                                 feature_extractor=None, requires_safety_checker=False)
    upstream.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    photo = (rng.random((args.size, args.size, 3)) * 255).astype(np.uint8)
    common = dict(num_inference_steps=args.steps, output_type="np")

    timer = StageTimer(device)
    timer.attach(ours.depth_estimator, "depth estimation", "estimate")
    timer.attach(ours.text_encoder, "text encoding")
    timer.attach(ours.unet, "denoising (unet)")
    timer.attach(ours.controlnet, "denoising (controlnet)")
    timer.attach(ours.vae, "vae decode", "decode")
    ours.depth_estimator.clear_cache()
    start = time.perf_counter()
    first = ours("a castle", image=photo, seed=0, **common)
    total = time.perf_counter() - start
    print(f"\n## {config_name}: {args.size}x{args.size}, {args.steps} steps, {device} {str(dtype).split('.')[-1]}")
    print(f"first call (depth not cached): {total:.3f} s")
    for name, seconds in timer.totals.items():
        print(f"  {name:24s} {seconds:8.3f} s  {100 * seconds / total:5.1f}%")
    other = total - sum(timer.totals.values())
    print(f"  {'other (wrapper + glue)':24s} {other:8.3f} s  {100 * other / total:5.1f}%")

    runs_before = ours.depth_estimator.depth_runs
    for prompt in ("a castle", "a boat", "a forest", "a city", "a cave"):
        ours(prompt, image=photo, seed=1, **common)
    print(f"depth-model runs for 5 more prompts on the same image: {ours.depth_estimator.depth_runs - runs_before}")

    control = first.disparity.expand(-1, 3, -1, -1).to(device, dtype)

    def time_ours():
        t = time.perf_counter()
        ours("a castle", image=photo, seed=0, **common)
        return time.perf_counter() - t

    def time_upstream():
        t = time.perf_counter()
        upstream("a castle", image=control, generator=torch.Generator().manual_seed(0), **common)
        return time.perf_counter() - t

    time_ours(), time_upstream()  # warm-up
    ours_times, up_times = [], []
    for i in range(args.repeats):  # interleaved, alternating which goes first, so drifts hit both
        first_fn, second_fn = (time_ours, time_upstream) if i % 2 == 0 else (time_upstream, time_ours)
        a, b = first_fn(), second_fn()
        ours_times.append(a if first_fn is time_ours else b)
        up_times.append(b if first_fn is time_ours else a)
    for label, pick in (("median", statistics.median), ("min", min)):
        o, u = pick(ours_times), pick(up_times)
        print(f"wrapper vs diffusers (depth cached, {label} of {args.repeats}): ours {o:.4f} s, diffusers {u:.4f} s, "
              f"overhead {100 * (o - u) / u:+.2f}%")
    paired = statistics.median((o - u) / u for o, u in zip(ours_times, up_times))
    print(f"wrapper vs diffusers (depth cached, median of the {args.repeats} paired differences): {100 * paired:+.2f}%")
    prepare = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ours.prepare_midas_depth(photo, None, DepthSettings(), None, 0.0, keep_image=False)
        prepare.append(time.perf_counter() - t)
    print(f"wrapper's own work per call (depth cached; median): {1000 * statistics.median(prepare):.1f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--configs", default="tiny,realistic")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--depth-model", default="dpt_swin2_tiny_256")
    parser.add_argument("--reduced-depth", action="store_true", help="tiny depth model (default: full size)")
    args = parser.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    print(f"# pipeline_overhead, torch {torch.__version__}, depth model {args.depth_model}")
    for name in args.configs.split(","):
        components, controlnet = realistic_components() if name == "realistic" else tiny_components()
        run(name, components, controlnet, args, device, dtype)


if __name__ == "__main__":
    main()
