"""Single-channel maps (depth maps, masks) from every kind of user input."""

import numpy as np
import pytest
import torch
from PIL import Image

from midas_diffusion.io.images import ImageError
from midas_diffusion.io.maps import to_map_tensor

RNG = np.random.default_rng(0)


def test_integer_data_is_scaled_by_its_type():
    u8 = (RNG.random((5, 7)) * 255).astype(np.uint8)
    u16 = (RNG.random((5, 7)) * 65535).astype(np.uint16)
    np.testing.assert_allclose(to_map_tensor(u8)[0, 0].numpy(), u8 / 255.0, atol=1e-7)
    np.testing.assert_allclose(to_map_tensor(u16)[0, 0].numpy(), u16 / 65535.0, atol=1e-7)
    np.testing.assert_allclose(to_map_tensor(Image.fromarray(u16))[0, 0].numpy(), u16 / 65535.0, atol=1e-7)
    np.testing.assert_allclose(to_map_tensor(torch.from_numpy(u8))[0, 0].numpy(), u8 / 255.0, atol=1e-7)
    assert to_map_tensor(np.eye(3, dtype=bool)).sum() == 3


def test_16_bit_png_file_keeps_its_levels(tmp_path):
    u16 = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(u16).save(tmp_path / "d.png")
    out = to_map_tensor(tmp_path / "d.png")
    assert out.shape == (1, 1, 16, 16)
    np.testing.assert_allclose(out[0, 0].numpy(), u16 / 65535.0, atol=1e-6)


def test_layouts_and_lists():
    assert to_map_tensor(torch.rand(4, 6)).shape == (1, 1, 4, 6)
    assert to_map_tensor(torch.rand(3, 4, 6)).shape == (3, 1, 4, 6)
    assert to_map_tensor(torch.rand(2, 1, 4, 6)).shape == (2, 1, 4, 6)
    assert to_map_tensor([torch.rand(4, 6), np.zeros((4, 6), np.uint8)]).shape == (2, 1, 4, 6)
    with pytest.raises(ImageError, match="mask must be"):
        to_map_tensor(torch.rand(2, 3, 4, 6), "mask")
    with pytest.raises(ImageError, match="same size"):
        to_map_tensor([torch.rand(4, 6), torch.rand(4, 5)])


def test_alpha_is_the_mask_when_it_is_not_opaque():
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere
    rgba[..., 3] = 0
    rgba[1:3, 2:4, 3] = 255  # the subject is drawn in alpha
    out = to_map_tensor(Image.fromarray(rgba, "RGBA"))[0, 0]
    assert out.sum() == 4 and out[1, 2] == 1
    assert torch.equal(to_map_tensor(rgba)[0, 0], out)
    rgba[..., 3] = 255  # opaque: the luminance counts
    assert to_map_tensor(Image.fromarray(rgba, "RGBA")).min() == 1


def test_float_range_rescaled_per_map_or_refused():
    inside = torch.rand(6, 8)
    torch.testing.assert_close(to_map_tensor(inside, rescale=True)[0, 0], inside)  # kept as is, not stretched
    wide = torch.stack([inside, inside * 200 + 10])
    out = to_map_tensor(wide, rescale=True)
    torch.testing.assert_close(out[0, 0], inside)
    assert out[1].min() == 0 and out[1].max() == 1
    with pytest.raises(ImageError, match=r"background_mask must hold values in \[0, 1\].*divide by 255"):
        to_map_tensor(np.full((3, 3), 255.0), "background_mask")


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 4)), "empty"),
    (torch.full((3, 3), float("nan")), "NaN"),
    ("nope.png", "not found"),
    (12, "unsupported type int"),
    ([], "empty list"),
])
def test_bad_maps_name_the_problem(bad, message):
    with pytest.raises(ImageError, match=message):
        to_map_tensor(bad, "depth_map")
