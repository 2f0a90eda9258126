import numpy as np
import pytest
import torch

from tiny_sd import sd15_components, tiny_depth_estimator

diffusers = pytest.importorskip("diffusers")

from midas_diffusion.pipelines import MidasControlNetPipeline, MidasLDM3DPipeline  # noqa: E402
from midas_diffusion.pipelines.pipeline_midas_ldm3d import pack_depth_6c, unpack_depth_6c  # noqa: E402


def _ldm3d(channels):
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(block_out_channels=[32, 64], in_channels=channels, out_channels=channels,
                                  down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                                  latent_channels=4, norm_num_groups=16).eval()
    pipe = MidasLDM3DPipeline(**{**sd15_components(), "vae": vae})
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("channels", [4, 6])
def test_every_output_type(channels):
    pipe = _ldm3d(channels)
    kwargs = dict(height=64, width=96, num_inference_steps=2, seed=0)
    pil = pipe("a room", output_type="pil", **kwargs)
    assert pil.rgb[0].size == (96, 64) and pil.depth[0].mode == "I;16" and pil.depth[0].size == (96, 64)
    np_out = pipe("a room", output_type="np", **kwargs)
    assert np_out.rgb.shape == (1, 64, 96, 3) and np_out.depth.shape == (1, 64, 96)
    assert np_out.depth.dtype == np.float32 and 0 <= np_out.depth.min() <= np_out.depth.max() <= 1
    pt = pipe("a room", output_type="pt", **kwargs)
    assert pt.rgb.shape == (1, 3, 64, 96) and pt.depth.shape == (1, 1, 64, 96)
    torch.testing.assert_close(torch.from_numpy(np_out.depth), pt.depth[:, 0])
    assert np.array_equal(np.asarray(pil.depth[0]), np.round(np_out.depth[0] * 65535).astype(np.uint16))
    latent = pipe("a room", output_type="latent", **kwargs)
    assert latent.rgb.ndim == 4 and latent.depth is None
    assert pil.settings["seed"] == 0 and pil.settings["vae_channels"] == channels


def test_6_channel_depth_decode_is_exact_for_all_16_bit_levels():
    levels = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    triple = torch.from_numpy(pack_depth_6c(levels))[None]
    decoded = unpack_depth_6c(triple)[0].numpy()
    assert np.array_equal(np.round(decoded * 65535).astype(np.uint16), levels)


def test_bad_output_type_and_steps():
    pipe = _ldm3d(4)
    with pytest.raises(ValueError, match="output_type"):
        pipe("x", height=64, width=64, num_inference_steps=1, output_type="jpg")
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe("x", height=64, width=64, num_inference_steps=0)


@pytest.mark.parametrize("mode", ["conditioning", "reestimate"])
def test_stylization_returns_rgbd(mode):
    from tiny_sd import tiny_controlnet

    pipe = MidasControlNetPipeline(**sd15_components(), controlnet=tiny_controlnet(), depth_estimator=tiny_depth_estimator())
    pipe.set_progress_bar_config(disable=True)
    photo = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    out = pipe("a house", image=photo, num_inference_steps=1, seed=0, rgbd=mode, num_images_per_prompt=2)
    assert out.output_disparity.shape == (2, 1, 40, 56)
    assert [im.size for im in out.images] == [(56, 40)] * 2
    if mode == "conditioning":
        assert torch.equal(out.output_disparity[0], out.disparity[0])
    with pytest.raises(ValueError, match="rgbd"):
        pipe("a house", image=photo, num_inference_steps=1, rgbd="both")


def test_a_cancelled_text_to_rgbd_run_stops_within_one_step():
    from midas_diffusion.pipelines import CancelToken, Cancelled

    pipe = _ldm3d(4)
    token, calls = CancelToken(), []

    def count(module, args):
        calls.append(1)
        if len(calls) == 2:
            token.cancel()

    hook = pipe.unet.register_forward_pre_hook(count)
    try:
        with pytest.raises(Cancelled):
            pipe("a room", height=64, width=96, num_inference_steps=6, seed=0, output_type="np", cancel=token)
        assert len(calls) == 2
        calls.clear()
        out = pipe("a room", height=64, width=96, num_inference_steps=6, seed=0, output_type="np", cancel=CancelToken())
    finally:
        hook.remove()
    assert len(calls) == 6 and out.rgb.shape == (1, 64, 96, 3)
