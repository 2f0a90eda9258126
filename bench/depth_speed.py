"""Images per second and peak memory of every zoo model at its native size, fp32 and bf16,
against transformers' ``DPTForDepthEstimation`` with the same weights where transformers has the model.

    python bench/depth_speed.py                       # CPU, all models, fp32
    python bench/depth_speed.py --device cuda --dtypes fp32,bf16 --batch 8
    python bench/depth_speed.py --dtypes fp32,auto    # auto: bf16 on CPUs with bf16 units (per model)

The transformers model is built from a config equal to the zoo model's architecture and randomly
initialized; its state dict is loaded into our model through our own converter, so both run the same
weights (checked by comparing outputs). Times are the median of ``--iters`` timed runs after warm-up.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import midas_diffusion as md  # noqa: E402
from midas_diffusion.loading.checkpoints import load_into  # noqa: E402


# DINOv2 sizes of Depth Anything V2: (timm model) -> (hidden size, layers, heads)
_DINOV2 = {"vit_small_patch14_dinov2": (384, 12, 6), "vit_base_patch14_dinov2": (768, 12, 12),
           "vit_large_patch14_dinov2": (1024, 24, 16)}


def depth_anything_config(name: str):
    """transformers' ``DepthAnythingConfig`` of the zoo's Depth Anything V2 model ``name`` (read off its spec)."""
    from transformers import DepthAnythingConfig, Dinov2Config

    spec = md.get_model_spec(name)
    encoder, decoder = spec.arch.encoder, spec.arch.decoder
    hidden, layers, heads = _DINOV2[encoder.timm_name]
    backbone = Dinov2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            image_size=spec.net_size[0], patch_size=14, layerscale_value=1.0, apply_layernorm=True,
                            reshape_hidden_states=False, out_indices=[h + 1 for h in encoder.hooks])
    metric = spec.predicts == "metres"
    return DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=hidden, neck_hidden_sizes=list(encoder.out_channels),
        fusion_hidden_size=decoder.scratch_channels[0], patch_size=14,
        depth_estimation_type="metric" if metric else "relative", max_depth=int(spec.max_depth or 1))


def transformers_config(name: str):
    """A transformers DPTConfig of the same architecture as zoo model ``name`` (None if it has none)."""
    from transformers import BeitConfig, DPTConfig, Swinv2Config

    beit = {
        "dpt_beit_large_512": (512, 1024, 24, 16, 4096, [6, 12, 18, 24], [256, 512, 1024, 1024]),
        "dpt_beit_large_384": (384, 1024, 24, 16, 4096, [6, 12, 18, 24], [256, 512, 1024, 1024]),
        "dpt_beit_base_384": (384, 768, 12, 12, 3072, [3, 6, 9, 12], [96, 192, 384, 768]),
    }
    swin = {
        "dpt_swin2_tiny_256": (256, 96, (2, 2, 6, 2), (3, 6, 12, 24), 16, (0, 0, 0, 0), [96, 192, 384, 768]),
        "dpt_swin2_base_384": (384, 128, (2, 2, 18, 2), (4, 8, 16, 32), 24, (12, 12, 12, 6), [128, 256, 512, 1024]),
        "dpt_swin2_large_384": (384, 192, (2, 2, 18, 2), (6, 12, 24, 48), 24, (12, 12, 12, 6), [192, 384, 768, 1536]),
    }
    if name in beit:
        size, hidden, layers, heads, inter, stages, neck = beit[name]
        backbone = BeitConfig(
            image_size=size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=inter, use_relative_position_bias=True, reshape_hidden_states=False,
            layer_norm_eps=1e-6,  # MiDaS/timm's eps (transformers defaults to 1e-12)
            out_features=[f"stage{i}" for i in stages],
        )
        return DPTConfig(backbone_config=backbone, neck_hidden_sizes=neck, is_hybrid=False)
    if name in swin:
        size, embed, depths, heads, window, pretrained, neck = swin[name]
        backbone = Swinv2Config(
            image_size=size, embed_dim=embed, depths=depths, num_heads=heads, window_size=window,
            pretrained_window_sizes=pretrained, out_features=["stage1", "stage2", "stage3", "stage4"],
        )
        return DPTConfig(backbone_config=backbone, neck_hidden_sizes=neck, is_hybrid=False)
    if name.startswith("depth_anything_v2_"):
        return depth_anything_config(name)
    if name == "dpt_large_384":
        return DPTConfig(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
            image_size=384, backbone_out_indices=[5, 11, 17, 23], neck_hidden_sizes=[256, 512, 1024, 1024],
            layer_norm_eps=1e-6,
        )
    return None


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark


def time_model(fn, x, iters: int, warmup: int, device: torch.device) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            fn(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default=",".join(md.list_models()))
    parser.add_argument("--dtypes", default="fp32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-transformers", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    models = args.models.split(",")
    if device.type == "cpu" and len(models) * len(args.dtypes.split(",")) > 1 and not args.child:
        # CPU peak memory is the process high-water mark: measure each model and dtype in its own process
        import subprocess

        base = [a for a in (argv if argv is not None else sys.argv[1:])]
        header = True
        for name in models:
            for dtype_name in args.dtypes.split(","):
                cmd = [sys.executable, __file__, *base, "--models", name, "--dtypes", dtype_name, "--child"]
                lines = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()
                for line in lines:
                    if line.startswith("#") and not header and not line.startswith("# ours/hf"):
                        continue
                    if line.startswith("model ") and not header:
                        continue
                    if line.startswith("# ours/hf"):
                        continue
                    print(line, flush=True)
                header = False
        print("# ours/hf > 1 means we are faster; max|diff| is relative to the output range (same weights);"
              " CPU peak MB = max RSS of a process running that model alone (ours, then transformers)")
        return 0
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"# depth_speed on {gpu}, torch {torch.__version__}, batch {args.batch}")
    print(f"{'model':24s} {'dtype':5s} {'ours img/s':>10s} {'peak MB':>8s} {'hf img/s':>9s} {'peak MB':>8s} {'ours/hf':>7s} {'max|diff|':>9s}")
    for name in models:
        spec = md.get_model_spec(name)
        h, w = spec.net_size
        hf_config = None if args.no_transformers else transformers_config(name)
        for dtype_name in args.dtypes.split(","):
            # a name (fp32, bf16, ...) or "auto": what DepthEstimator/the CLI choose for this model here
            dtype = md.resolve_dtype(dtype_name, device, name)
            torch.manual_seed(0)
            hf = None
            if hf_config is not None:
                from transformers import DPTForDepthEstimation

                hf = DPTForDepthEstimation(hf_config).eval()
                ours = md.create_model(name)
                load_into(ours, hf.state_dict(), model_name=name)
            else:
                ours = md.create_model(name)
            x = torch.rand(args.batch, 3, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1
            ours = ours.to(device, dtype)
            xd = x.to(device, dtype)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t_ours = time_model(ours, xd, args.iters, args.warmup, device)
            mem_ours = peak_memory_mb(device)
            with torch.inference_mode():
                y_ours = ours(xd).float()
            ours.cpu()
            del ours
            hf_txt = f"{'-':>9s} {'-':>8s} {'-':>7s} {'-':>9s}"
            if hf is not None:
                hf = hf.to(device, dtype)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                t_hf = time_model(lambda t: hf(pixel_values=t).predicted_depth, xd, args.iters, args.warmup, device)
                mem_hf = peak_memory_mb(device)
                with torch.inference_mode():
                    y_hf = hf(pixel_values=xd).predicted_depth.float()
                diff = (y_ours - y_hf).abs().max().item() / max((y_hf.max() - y_hf.min()).item(), 1e-12)
                hf_txt = f"{args.batch / t_hf:9.2f} {mem_hf:8.0f} {t_hf / t_ours:7.2f} {diff:9.1e}"
                hf.cpu()
                del hf
            print(f"{name:24s} {dtype_name:5s} {args.batch / t_ours:10.2f} {mem_ours:8.0f} {hf_txt}", flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print("# ours/hf > 1 means we are faster; max|diff| is relative to the output range (same weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
