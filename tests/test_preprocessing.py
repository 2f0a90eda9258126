import numpy as np
import pytest
import torch

import midas_diffusion as md
from midas_diffusion.inference.transforms import network_input_size, prepare, with_resolution

from reference import preprocessing

REF = preprocessing()


@pytest.mark.parametrize("name", list(REF["models"]))
def test_network_input_sizes_match_the_original(name):
    ref = REF["models"][name]
    spec = md.get_model_spec(name)
    assert tuple(spec.preprocess.mean) == tuple(ref["mean"]) and tuple(spec.preprocess.std) == tuple(ref["std"])
    assert spec.preprocess.resize_method == ref["resize_method"]
    assert spec.preprocess.keep_aspect_ratio == ref["keep_aspect_ratio"]
    for key, square in (("network_input_hw", False), ("network_input_hw_square", True)):
        config = with_resolution(spec.preprocess, square=square)
        for hw, expected in ref[key].items():
            h, w = map(int, hw.split("x"))
            got = network_input_size(h, w, config)
            if expected is None:  # the original crashes here; ours gives a usable size
                assert min(got) >= 32 and got[0] % 32 == 0 and got[1] % 32 == 0
            else:
                assert list(got) == expected, (hw, square)


def _synthetic_image():
    y, x = np.mgrid[0:61, 0:93]
    rgb = np.stack([(7 * y + 3 * x) % 256, (5 * x * y) % 256, 255 - (11 * x) % 256], axis=-1).astype(np.uint8)
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).unsqueeze(0)


@pytest.mark.parametrize("name", list(REF["models"]))
def test_normalized_input_statistics(name):
    ref = REF["models"][name]
    x = prepare(_synthetic_image(), md.get_model_spec(name).preprocess)[0]
    assert list(x.shape) == ref["synthetic_input_shape"]
    # torch bicubic vs OpenCV bicubic: same size, values differ slightly
    np.testing.assert_allclose(x.mean(dim=(1, 2)).numpy(), ref["synthetic_channel_mean"], atol=0.02)
    np.testing.assert_allclose(x.std(dim=(1, 2)).numpy(), ref["synthetic_channel_std"], atol=0.02)


def test_resolution_option_rounds_like_midas_height():
    cfg = with_resolution(md.get_model_spec("dpt_large_384").preprocess, 400)
    assert cfg.net_size == (384, 384)  # 12.5 rounds half to even
    assert network_input_size(480, 640, cfg) == (384, 512)


def test_fixed_size_models_refuse_other_resolutions():
    with pytest.raises(ValueError, match="only runs at 256x256"):
        with_resolution(md.get_model_spec("dpt_swin2_tiny_256").preprocess, 512)
