"""The one weighted scale/shift fit (evaluation, metric depth and tiling use it) and its degeneracy rule."""

import numpy as np
import pytest
import torch

from midas_diffusion.inference.alignment import DegenerateFitError, fit_scale_shift
from midas_diffusion.inference.tiling import estimate_tiled
from midas_diffusion.inference.outputs import DepthOutput
from midas_diffusion.zoo.config import PreprocessConfig


def test_weights_select_and_weigh_points():
    pred = np.array([0.0, 1.0, 2.0, 3.0])
    target = np.array([1.0, 3.0, 5.0, 100.0])
    assert fit_scale_shift(pred, target, pred < 3) == (pytest.approx(2.0), pytest.approx(1.0))
    # NaN where the weight is zero is never read
    assert fit_scale_shift(np.array([0.0, 1.0, np.nan]), np.array([1.0, 2.0, 7.0]),
                           np.array([1.0, 1.0, 0.0])) == (pytest.approx(1.0), pytest.approx(1.0))
    # a weighted fit of points off a line leans to the heavy ones
    s_heavy, _ = fit_scale_shift(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 4.0]), np.array([1.0, 1.0, 10.0]))
    s_plain, _ = fit_scale_shift(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 4.0]))
    assert s_heavy != pytest.approx(s_plain)


def test_tensors_and_maps_of_any_shape():
    pred = torch.rand(5, 6, dtype=torch.float64)
    s, t = fit_scale_shift(pred, 3.5 * pred - 1.25)
    assert abs(s - 3.5) < 1e-9 and abs(t + 1.25) < 1e-9


@pytest.mark.parametrize(
    "pred, weight",
    [
        (np.full(8, 7.0), None),  # constant
        (7.0 + 1e-9 * np.arange(8), None),  # constant up to rounding (relative variance ~1e-20)
        (np.arange(8.0), np.zeros(8)),  # no point has weight
        (np.arange(8.0), np.eye(8)[3]),  # one point: a line through it is undetermined
    ],
)
def test_one_degeneracy_rule(pred, weight):
    with pytest.raises(DegenerateFitError, match="undetermined"):
        fit_scale_shift(pred, np.arange(8.0), weight)


def test_small_but_real_variation_is_fitted():
    pred = 1000.0 + 1e-3 * np.arange(8)  # relative variance ~5e-12 > 1e-12
    s, t = fit_scale_shift(pred, 2 * pred + 1)
    assert s == pytest.approx(2.0, rel=1e-4)


def test_size_mismatch_is_named():
    with pytest.raises(ValueError, match="one size"):
        fit_scale_shift(np.zeros(3), np.zeros(4))


class _FlatLeftHalf:
    """The whole-image pass sees a ramp; a tile from the left half predicts a constant."""

    preprocess = PreprocessConfig(net_size=(16, 16), keep_aspect_ratio=False)
    model_name = "flat"
    max_pixels = None

    def __call__(self, images, batch_size=1):
        images = images if isinstance(images, list) else [images]
        raws = []
        for img in images:
            h, w = img.shape[-2:]
            raw = img[:1].double()[None]
            if w < 40:  # a tile: flat where the image is flat
                raw = torch.where(raw.std() < 1e-6, torch.full_like(raw, 5.0), raw)
            raws.append(raw.float())
        raw = torch.cat(raws)
        return DepthOutput(disparity=raw, raw=raw, model_name="flat")


def test_a_flat_tile_takes_the_whole_image_level():
    img = torch.zeros(3, 16, 48)
    img[:, :, 24:] = torch.linspace(0.2, 0.8, 24)
    img[:, :, :24] = 0.3
    out = estimate_tiled(_FlatLeftHalf(), img, tile_size=(16, 16), tile_overlap=0.25)
    assert torch.isfinite(out.raw).all()
    assert torch.allclose(out.raw[0, 0, :, :8], torch.tensor(0.3), atol=1e-6)
