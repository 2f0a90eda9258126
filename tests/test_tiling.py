"""Tiled high-resolution depth: the alignment and blending math against a known truth, and the real path."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import recipe_init_

import midas_diffusion as md
from midas_diffusion.inference.alignment import fit_scale_shift
from midas_diffusion.inference.tiling import (
    blend_weights,
    estimate_tiled,
    tile_grid,
)
from midas_diffusion.io import images as image_io
from midas_diffusion.zoo.config import PreprocessConfig


def _truth(h=256, w=320):
    """Disparity in [0.1, 0.9]: a tilted plane, a smooth bump and fine detail a low-res pass loses."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64), torch.linspace(0, 1, w, dtype=torch.float64), indexing="ij")
    d = 0.3 + 0.3 * x + 0.1 * y + 0.15 * torch.exp(-((x - 0.6) ** 2 + (y - 0.4) ** 2) / 0.02)
    d = d + 0.04 * torch.sin(2 * math.pi * 24 * x) * torch.sin(2 * math.pi * 18 * y)
    return d.clamp(0.1, 0.9)


class StubEstimator:
    """Predicts like a MiDaS model up to an unknown affine map: the image's red channel *is* the
    disparity; each call sees it at network size (losing detail), multiplies by an unknown scale,
    adds an unknown shift and noise, and returns it upsampled to the input size."""

    def __init__(self, net=64, noise=0.002, seed=0):
        self.preprocess = PreprocessConfig(net_size=(net, net), keep_aspect_ratio=False)
        self.model_name = "stub"
        self.max_pixels = None
        self.g = torch.Generator().manual_seed(seed)
        self.noise = noise

    def __call__(self, images, batch_size=1):
        raws = []
        for img in image_io.to_rgb_tensors(images, None):
            h, w = img.shape[-2:]
            d = F.interpolate(img[None, :1].double(), size=self.preprocess.net_size, mode="area")
            scale = 0.5 + 2 * torch.rand((), generator=self.g, dtype=torch.float64)
            shift = torch.randn((), generator=self.g, dtype=torch.float64)
            d = scale * d + shift + self.noise * torch.randn(d.shape, generator=self.g, dtype=torch.float64)
            raws.append(F.interpolate(d, size=(h, w), mode="bicubic", align_corners=False).float())
        raw = torch.cat(raws)
        return md.DepthOutput(disparity=raw, raw=raw, model_name="stub")


def _affine_rmse(pred, truth):
    s, t = fit_scale_shift(pred, truth)
    return float(((s * pred.double() + t - truth) ** 2).mean().sqrt())


def test_tiled_beats_single_pass_and_shows_no_seam():
    truth = _truth()
    image = truth.float()[None].expand(3, -1, -1).contiguous()
    stub = StubEstimator()
    single = stub(image).raw[0, 0]
    tiled_out = estimate_tiled(stub, image, tile_overlap=0.25)
    tiled = tiled_out.raw[0, 0]
    assert tiled_out.disparity.shape == (1, 1, 256, 320) and tiled_out.settings["tiles"][0] > 1
    err_single, err_tiled = _affine_rmse(single, truth), _affine_rmse(tiled, truth)
    assert err_tiled < 0.75 * err_single, (err_tiled, err_single)

    # no seam: the error's horizontal/vertical change at tile borders is like anywhere inside tiles
    s, t = fit_scale_shift(tiled, truth)
    resid = s * tiled.double() + t - truth
    grid = tile_grid(256, 320, (64, 64), 0.25)
    gx, gy = (resid[:, 1:] - resid[:, :-1]).abs(), (resid[1:] - resid[:-1]).abs()
    border_x = sorted({x for x in grid.xs[1:]} | {x + 64 - 1 for x in grid.xs[:-1]})
    border_y = sorted({y for y in grid.ys[1:]} | {y + 64 - 1 for y in grid.ys[:-1]})
    at_border = torch.cat([gx[:, border_x].reshape(-1), gy[border_y].reshape(-1)])
    inside = torch.cat([gx.reshape(-1), gy.reshape(-1)])
    assert at_border.max() <= 2 * inside.quantile(0.999), (at_border.max(), inside.quantile(0.999))


def test_weights_are_smooth_and_cover_the_image():
    grid = tile_grid(200, 300, (64, 64), 0.25)
    acc = torch.zeros(200, 300, dtype=torch.float64)
    for (t, l, b, r), w in zip(grid.boxes(), blend_weights(grid, 0.25)):
        assert w.shape == (64, 64) and w.min() > 0
        acc[t:b, l:r] += w
    assert acc.min() > 0.5  # every pixel is covered with real weight
    assert grid.ys[0] == 0 and grid.ys[-1] == 200 - 64 and grid.xs[-1] == 300 - 64
    with pytest.raises(ValueError, match="tile_overlap"):
        tile_grid(100, 100, (64, 64), 1.5)


def test_fit_scale_shift_recovers_affine_map():
    pred = torch.rand(50, 60, dtype=torch.float64)
    s, t = fit_scale_shift(pred, 3.5 * pred - 1.25)
    assert abs(s - 3.5) < 1e-9 and abs(t + 1.25) < 1e-9


def test_tiled_with_a_real_tiny_model_and_small_image_falls_back():
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (300, 520, 3), dtype=np.uint8)
    out = estimate_tiled(est, big, tile_overlap=0.25)
    assert out.disparity.shape == (1, 1, 300, 520) and out.settings["tiles"] == (2, 3)
    assert torch.isfinite(out.raw).all() and out.disparity.min() == 0 and out.disparity.max() == 1
    small = rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)
    assert torch.allclose(estimate_tiled(est, small).raw, est(small).raw)


def test_tiles_are_cut_from_the_compact_image():
    """Tiles of a uint8 image reach the estimator as uint8 crops (no float copy of the whole image)."""
    seen = []

    class Recording(StubEstimator):
        def __call__(self, images, batch_size=1):
            seen.extend(t.dtype for t in (images if isinstance(images, list) else [images]))
            return super().__call__(images, batch_size)

    image = (_truth(128, 160) * 255).to(torch.uint8)[None].expand(3, -1, -1)
    out = estimate_tiled(Recording(), image)
    assert out.disparity.shape == (1, 1, 128, 160) and set(seen) == {torch.uint8} and len(seen) > 1
