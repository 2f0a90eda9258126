"""Depth Anything V2: three relative (disparity) and six metric (metres) models, data only.

Every model is a DINOv2 encoder (``backbones/dinov2.py``) and the one DPT decoder
(``decoder.py``); they differ from MiDaS only in configuration: the reassembly without class-token
readout, the head resized to the network input, and for the metric models a sigmoid scaled to the
maximum depth. Preprocessing is the original's ``image2tensor``: the shorter side to 518 (the
``resolution``), sides multiples of 14, aspect kept, bicubic, ImageNet mean/std; the prediction
goes back to the image size bilinearly with ``align_corners=True`` (``infer_image``).

Checkpoints: the official ``.pth`` files (``depth_head.*`` renamed by ``DEPTH_HEAD_RULES``) and
the transformers ``-hf`` repositories (``DepthAnythingForDepthEstimation``, converted by
``loading/convert_transformers.py``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Optional, Tuple

from .backbones.dinov2 import PATCH, DINOv2EncoderConfig
from .config import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, PreprocessConfig, WeightFile
from .decoder import DecoderConfig
from .model import DepthModelConfig, build_depth_model
from .registry import register_model
from .state_dicts import Rule

HF = "https://huggingface.co"
APACHE = "Apache-2.0"
NON_COMMERCIAL = "CC-BY-NC-4.0"


def _level(match: re.Match) -> int:
    return int(match.group("n")) + 1


# The official ``DepthAnythingV2`` layout -> the zoo's: the head's reassembly is the encoder's
# ``act_postprocess{i}`` (1x1 conv ``3``, resample ``4``, readout ``0``); ``output_conv1`` and
# ``output_conv2.{0,2}`` are the decoder head's ``output_conv.{0,2,4}``.
_P = r"(?P<p>weight|bias)"
DEPTH_HEAD_RULES: Tuple[Rule, ...] = (
    (rf"depth_head\.projects\.(?P<n>\d+)\.{_P}", lambda m: f"pretrained.act_postprocess{_level(m)}.3.{m.group('p')}"),
    (rf"depth_head\.resize_layers\.(?P<n>\d+)\.{_P}", lambda m: f"pretrained.act_postprocess{_level(m)}.4.{m.group('p')}"),
    (
        rf"depth_head\.readout_projects\.(?P<n>\d+)\.0\.{_P}",
        lambda m: f"pretrained.act_postprocess{_level(m)}.0.project.0.{m.group('p')}",
    ),
    (rf"depth_head\.scratch\.output_conv1\.{_P}", r"scratch.output_conv.0.\g<p>"),
    (rf"depth_head\.scratch\.output_conv2\.0\.{_P}", r"scratch.output_conv.2.\g<p>"),
    (rf"depth_head\.scratch\.output_conv2\.2\.{_P}", r"scratch.output_conv.4.\g<p>"),
    (r"depth_head\.scratch\.(?P<rest>(?:layer\d_rn|refinenet\d)\..+)", r"scratch.\g<rest>"),
)

# (size tag, timm model, hooks, reassembly widths, decoder features, parameters in millions, licence)
_SIZES = {
    "vits": ("Small", "vit_small_patch14_dinov2", (2, 5, 8, 11), (48, 96, 192, 384), 64, 24.8, APACHE),
    "vitb": ("Base", "vit_base_patch14_dinov2", (2, 5, 8, 11), (96, 192, 384, 768), 128, 97.5, NON_COMMERCIAL),
    "vitl": ("Large", "vit_large_patch14_dinov2", (4, 11, 17, 23), (256, 512, 1024, 1024), 256, 335.3, NON_COMMERCIAL),
}

# (dataset in the file name, the original's repository word, the -hf repository word, max depth in metres, scene)
_METRIC = {
    "hypersim": ("Hypersim", "Indoor", 20.0, "indoor (Hypersim)"),
    "vkitti": ("VKITTI", "Outdoor", 80.0, "outdoor (Virtual KITTI 2)"),
}

PREPROCESS = PreprocessConfig(
    net_size=(518, 518),
    keep_aspect_ratio=True,
    resize_method="lower_bound",
    ensure_multiple_of=PATCH,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    interpolation="bicubic",
    min_side=PATCH,
    output_interpolation="bilinear_align_corners",
)


def depth_anything_arch(size: str, max_depth: Optional[float] = None) -> DepthModelConfig:
    _, timm_name, hooks, widths, features, _, _ = _SIZES[size]
    return DepthModelConfig(
        encoder=DINOv2EncoderConfig(timm_name, hooks=hooks, out_channels=widths),
        decoder=DecoderConfig(
            in_channels=widths,
            scratch_channels=(features,) * 4,
            head_channels=(features, features // 2, 32),
            head_size="input",
            head_activation="relu" if max_depth is None else "sigmoid",
            output_scale=1.0 if max_depth is None else max_depth,
        ),
        input_multiple=PATCH,
        checkpoint_rules=DEPTH_HEAD_RULES,
    )


def _weights(repo: str, filename: str) -> WeightFile:
    return WeightFile(url=f"{HF}/{repo}/resolve/main/{filename}", filename=filename)


def _relative(size: str) -> ModelSpec:
    tag, _, _, _, _, params, licence = _SIZES[size]
    repo = f"depth-anything/Depth-Anything-V2-{tag}"
    return ModelSpec(
        name=f"depth_anything_v2_{size}",
        build=build_depth_model,
        arch=depth_anything_arch(size),
        preprocess=PREPROCESS,
        official_weights=_weights(repo, f"depth_anything_v2_{size}.pth"),
        hf_hub_id=f"{repo}-hf",
        aliases=(f"Depth-Anything-V2-{tag}",),
        description=f"Depth Anything V2 {tag} (DINOv2 ViT-{tag[0]}/14): relative disparity",
        params_m=params,
        predicts="disparity",
        license=licence,
    )


def _metric(dataset: str, size: str) -> ModelSpec:
    tag, _, _, _, _, params, licence = _SIZES[size]
    word, hf_word, max_depth, scene = _METRIC[dataset]
    repo = f"depth-anything/Depth-Anything-V2-Metric-{word}-{tag}"
    return ModelSpec(
        name=f"depth_anything_v2_metric_{dataset}_{size}",
        build=build_depth_model,
        arch=depth_anything_arch(size, max_depth),
        preprocess=PREPROCESS,
        official_weights=_weights(repo, f"depth_anything_v2_metric_{dataset}_{size}.pth"),
        hf_hub_id=f"depth-anything/Depth-Anything-V2-Metric-{hf_word}-{tag}-hf",
        aliases=(f"Depth-Anything-V2-Metric-{word}-{tag}", f"Depth-Anything-V2-Metric-{hf_word}-{tag}"),
        description=f"Depth Anything V2 {tag} metric, {scene}: depth in metres up to {max_depth:g} m",
        params_m=params,
        predicts="metres",
        max_depth=max_depth,
        license=licence,
    )


# After the MiDaS table (ranks 1-13, ``specs.py``): large to small, relative before metric.
FIRST_RANK = 100
_DEPTH_ANYTHING = [
    *(_relative(size) for size in ("vitl", "vitb", "vits")),
    *(_metric(dataset, size) for dataset in ("hypersim", "vkitti") for size in ("vitl", "vitb", "vits")),
]

for _rank, _spec in enumerate(_DEPTH_ANYTHING, start=FIRST_RANK):
    register_model(replace(_spec, quality_rank=_rank))
