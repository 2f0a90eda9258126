"""The MiDaS v3.1 model zoo: one registered spec per model, data only."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Tuple

from .registry import register_model
from .backbones.beit import BeitEncoderConfig
from .backbones.cnn import EfficientNetEncoderConfig, ResNetEncoderConfig
from .backbones.levit import LevitEncoderConfig
from .backbones.nextvit import NextViTEncoderConfig
from .backbones.swin import SwinEncoderConfig
from .backbones.vit import ViTEncoderConfig
from .config import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, PreprocessConfig, WeightFile
from .decoder import DecoderConfig
from .model import DepthModelConfig, build_depth_model

RELEASES = "https://github.com/isl-org/MiDaS/releases/download"


def _weights(tag: str, name: str, sha256: Optional[str] = None) -> WeightFile:
    return WeightFile(url=f"{RELEASES}/{tag}/{name}.pt", filename=f"{name}.pt", sha256=sha256)


def _dpt(encoder, head: Tuple[int, int, int] = (256, 128, 32), stem_transpose=None) -> DepthModelConfig:
    levels = len(encoder.out_channels)
    return DepthModelConfig(
        encoder=encoder,
        decoder=DecoderConfig(
            in_channels=tuple(encoder.out_channels),
            scratch_channels=(256,) * levels,
            head_channels=head,
            stem_transpose=stem_transpose,
        ),
    )


def _keep_aspect(size: int) -> PreprocessConfig:
    return PreprocessConfig(net_size=(size, size), keep_aspect_ratio=True, resize_method="minimal")


def _square(size: int) -> PreprocessConfig:
    return PreprocessConfig(net_size=(size, size), keep_aspect_ratio=False, resize_method="minimal", fixed_size=True)


def _v21(size: int) -> PreprocessConfig:
    return PreprocessConfig(
        net_size=(size, size), keep_aspect_ratio=True, resize_method="upper_bound", mean=IMAGENET_MEAN, std=IMAGENET_STD
    )


_BEIT_L = (256, 512, 1024, 1024)

_ZOO_IN_QUALITY_ORDER = [
    ModelSpec(
        name="dpt_beit_large_512",
        build=build_depth_model,
        arch=_dpt(BeitEncoderConfig("beit_large_patch16_512", hooks=(5, 11, 17, 23), out_channels=_BEIT_L)),
        preprocess=_keep_aspect(512),
        official_weights=_weights(
            "v3_1", "dpt_beit_large_512", "9e9e900747e9e8b3112df716979219836a27716277b3d0dc53889cbba8b82328"
        ),
        hf_hub_id="Intel/dpt-beit-large-512",
        aliases=("DPT_BEiT_L_512",),
        description="BEiT-L/16 at 512: best quality, slowest",
        params_m=345,
        reference_fps=5.7,
    ),
    ModelSpec(
        name="dpt_beit_large_384",
        build=build_depth_model,
        arch=_dpt(BeitEncoderConfig("beit_large_patch16_384", hooks=(5, 11, 17, 23), out_channels=_BEIT_L)),
        preprocess=_keep_aspect(384),
        official_weights=_weights("v3_1", "dpt_beit_large_384"),
        hf_hub_id="Intel/dpt-beit-large-384",
        aliases=("DPT_BEiT_L_384",),
        description="BEiT-L/16 at 384",
        params_m=344,
        reference_fps=13,
    ),
    ModelSpec(
        name="dpt_beit_base_384",
        build=build_depth_model,
        arch=_dpt(BeitEncoderConfig("beit_base_patch16_384", hooks=(2, 5, 8, 11), out_channels=(96, 192, 384, 768))),
        preprocess=_keep_aspect(384),
        official_weights=_weights("v3_1", "dpt_beit_base_384"),
        hf_hub_id="Intel/dpt-beit-base-384",
        aliases=("DPT_BEiT_B_384",),
        description="BEiT-B/16 at 384",
        params_m=112,
        reference_fps=31,
    ),
    ModelSpec(
        name="dpt_swin2_large_384",
        build=build_depth_model,
        arch=_dpt(SwinEncoderConfig("swinv2_large_window12to24_192to384", out_channels=(192, 384, 768, 1536))),
        preprocess=_square(384),
        official_weights=_weights("v3_1", "dpt_swin2_large_384"),
        hf_hub_id="Intel/dpt-swinv2-large-384",
        aliases=("DPT_SwinV2_L_384",),
        description="SwinV2-L at 384 (square): quality/speed balance",
        params_m=213,
        reference_fps=41,
    ),
    ModelSpec(
        name="dpt_swin2_base_384",
        build=build_depth_model,
        arch=_dpt(SwinEncoderConfig("swinv2_base_window12to24_192to384", out_channels=(128, 256, 512, 1024))),
        preprocess=_square(384),
        official_weights=_weights("v3_1", "dpt_swin2_base_384"),
        hf_hub_id="Intel/dpt-swinv2-base-384",
        aliases=("DPT_SwinV2_B_384",),
        description="SwinV2-B at 384 (square)",
        params_m=102,
        reference_fps=39,
    ),
    ModelSpec(
        name="dpt_swin2_tiny_256",
        build=build_depth_model,
        arch=_dpt(SwinEncoderConfig("swinv2_tiny_window16_256", out_channels=(96, 192, 384, 768))),
        preprocess=_square(256),
        official_weights=_weights("v3_1", "dpt_swin2_tiny_256"),
        hf_hub_id="Intel/dpt-swinv2-tiny-256",
        aliases=("DPT_SwinV2_T_256",),
        description="SwinV2-T at 256 (square): fast",
        params_m=42,
        reference_fps=64,
    ),
    ModelSpec(
        name="dpt_swin_large_384",
        build=build_depth_model,
        arch=_dpt(
            SwinEncoderConfig(
                "swin_large_patch4_window12_384",
                out_channels=(192, 384, 768, 1536),
                timm_module="timm.models.swin_transformer",
            )
        ),
        preprocess=_square(384),
        official_weights=_weights("v3_1", "dpt_swin_large_384"),
        aliases=("DPT_Swin_L_384",),
        description="Swin-L at 384 (square)",
        params_m=213,
        reference_fps=49,
    ),
    ModelSpec(
        name="dpt_next_vit_large_384",
        build=build_depth_model,
        arch=_dpt(NextViTEncoderConfig("nextvit_large", out_channels=(96, 256, 512, 1024))),
        preprocess=_keep_aspect(384),
        official_weights=_weights("v3_1", "dpt_next_vit_large_384"),
        aliases=("DPT_Next_ViT_L_384",),
        description="Next-ViT-L at 384",
        params_m=72,
        reference_fps=30,
    ),
    ModelSpec(
        name="dpt_levit_224",
        build=build_depth_model,
        arch=_dpt(
            LevitEncoderConfig("levit_384", out_channels=(384, 512, 768)),
            head=(64, 32, 8),
            stem_transpose=(256, 128, 64),
        ),
        preprocess=_square(224),
        official_weights=_weights("v3_1", "dpt_levit_224"),
        aliases=("DPT_LeViT_224",),
        description="LeViT-384 at 224 (square): smallest transformer",
        params_m=51,
        reference_fps=73,
    ),
    ModelSpec(
        name="dpt_large_384",
        build=build_depth_model,
        arch=_dpt(ViTEncoderConfig("vit_large_patch16_384", hooks=(5, 11, 17, 23), out_channels=_BEIT_L)),
        preprocess=_keep_aspect(384),
        official_weights=_weights(
            "v3", "dpt_large_384", "2f21e586477d90cb9624c7eef5df7891edca49a1c4795ee2cb631fd4daa6ca69"
        ),
        hf_hub_id="Intel/dpt-large",
        aliases=("DPT_Large",),
        description="MiDaS v3.0 DPT-Large (ViT-L/16)",
        params_m=344,
        reference_fps=61,
    ),
    ModelSpec(
        name="dpt_hybrid_384",
        build=build_depth_model,
        arch=_dpt(
            ViTEncoderConfig(
                "vit_base_r50_s16_384",
                hooks=(0, 1, 8, 11),
                out_channels=(256, 512, 768, 768),
                resample=(1, 1, 1, 0.5),
                cnn_levels=2,
            )
        ),
        preprocess=_keep_aspect(384),
        official_weights=_weights("v3", "dpt_hybrid_384"),
        hf_hub_id="Intel/dpt-hybrid-midas",
        aliases=("DPT_Hybrid",),
        description="MiDaS v3.0 DPT-Hybrid (ViT-B/16 + ResNet-50)",
        params_m=123,
        reference_fps=50,
    ),
    ModelSpec(
        name="midas_v21_384",
        build=build_depth_model,
        arch=DepthModelConfig(
            encoder=ResNetEncoderConfig("resnext101_32x8d", out_channels=(256, 512, 1024, 2048)),
            decoder=DecoderConfig(
                in_channels=(256, 512, 1024, 2048),
                scratch_channels=(256,) * 4,
                head_channels=(256, 128, 32),
                fusion_out_conv=False,
                rcu_skip_after_relu=True,
                head_align_corners=False,
            ),
        ),
        preprocess=_v21(384),
        official_weights=_weights(
            "v2_1", "midas_v21_384", "f6b980704cfd7259c7cc2b058c2f160159c55e84b3b6c08331b4156a84629f70"
        ),
        aliases=("MiDaS",),
        description="MiDaS v2.1 large (ResNeXt-101 WSL)",
        params_m=105,
        reference_fps=47,
    ),
    ModelSpec(
        name="midas_v21_small_256",
        build=build_depth_model,
        arch=DepthModelConfig(
            encoder=EfficientNetEncoderConfig("tf_efficientnet_lite3", out_channels=(32, 48, 136, 384)),
            decoder=DecoderConfig(
                in_channels=(32, 48, 136, 384),
                scratch_channels=(64, 128, 256, 512),
                head_channels=(64, 32, 32),
                head_align_corners=False,
            ),
        ),
        preprocess=_v21(256),
        official_weights=_weights(
            "v2_1", "midas_v21_small_256", "70d6b9c891758c67f974a6097fb0c608c7ee67fb81ac3e5588847d5596d56fca"
        ),
        aliases=("MiDaS_small",),
        description="MiDaS v2.1 small (EfficientNet-Lite3): fastest",
        params_m=21,
        reference_fps=90,
    ),
]

for _rank, _spec in enumerate(_ZOO_IN_QUALITY_ORDER, start=1):
    register_model(replace(_spec, quality_rank=_rank))
