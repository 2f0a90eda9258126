"""The device path of ``DepthEstimator``: same numbers as the former CPU float path, every input kind.

``_former_estimate`` is the estimator's former arithmetic, copied here before the device path
replaced it: every image became a float32 ``(3,H,W)`` tensor in [0,1] on the CPU, was resized
(bicubic, no antialias) and normalized there, the network ran, its prediction came back to the CPU
and was upsampled (bicubic) to the image size and min-max / percentile normalized per image. The
device path (compact uint8/uint16 tensors, conversion after the move, normalization folded into the
resize) must give the same maps to 1e-5 of the range.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import midas_diffusion as md
from midas_diffusion.inference import transforms
from midas_diffusion.inference.transforms import network_input_size
from midas_diffusion.io import images

TOLERANCE = 1e-5  # of the raw map's range


# ----------------------------------------------------------------- the former path, for reference
def _former_rgb(item) -> torch.Tensor:
    """The former ``to_rgb_tensors`` for the kinds tested here: float32 (3,H,W) in [0,1]."""
    if isinstance(item, Image.Image):
        if item.mode.startswith("I;16"):
            gray = np.asarray(item).astype(np.float32) / 65535.0
            arr = np.repeat(gray[..., None], 3, axis=2)
        else:
            arr = np.asarray(item.convert("RGB")).astype(np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    if isinstance(item, np.ndarray):
        arr = item[..., None] if item.ndim == 2 else item
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        elif arr.dtype == np.uint16:
            arr = arr.astype(np.float32) / 65535.0
        else:
            arr = arr.astype(np.float32).clip(0, 1)
        if arr.shape[2] in (1, 2):
            arr = np.repeat(arr[..., :1], 3, axis=2)
        return torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1).contiguous()
    t = item.unsqueeze(0) if item.ndim == 2 else item
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float().clamp(0, 1)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t[:3].contiguous()


def _former_normalize_disparity(raw, percentile=None, gamma=1.0, invert=False, eps=1e-8):
    out = torch.empty_like(raw)
    for i, d in enumerate(raw):
        values = d[torch.isfinite(d)]
        if percentile is not None:
            q = torch.tensor([percentile[0] / 100, percentile[1] / 100])
            lo, hi = torch.quantile(values, q).tolist()
        else:
            lo, hi = values.min().item(), values.max().item()
        span = hi - lo
        out[i] = 0 if span <= eps * max(1.0, abs(hi)) else ((d - lo) / span).clamp_(0, 1)
    if gamma != 1.0:
        out = out.pow(gamma)
    return 1 - out if invert else out


@torch.inference_mode()
def _former_estimate(est, rgb: torch.Tensor, **norm):
    """Raw and disparity (1,1,H,W) of one float RGB image, the former way."""
    pre = est.preprocess
    h, w = rgb.shape[-2:]
    x = rgb[None]
    size = network_input_size(h, w, pre)
    if tuple(size) != (h, w):
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    mean = torch.tensor(pre.mean).view(1, -1, 1, 1)
    std = torch.tensor(pre.std).view(1, -1, 1, 1)
    prediction = est.model((x - mean) / std).float()
    raw = F.interpolate(prediction[:, None], size=(h, w), mode="bicubic", align_corners=False)
    flat = bool(rgb.max() - rgb.min() <= 1 / 512)
    invert = norm.get("invert", False)
    disparity = torch.full_like(raw, 1.0 if invert else 0.0) if flat else _former_normalize_disparity(raw, **norm)
    return raw, disparity


# ----------------------------------------------------------------- inputs
def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin(x / 7.0 + y / 11.0)], axis=-1)
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _inputs():
    """(label, input) pairs of every kind an image can arrive as; several odd, non-square sizes."""
    photo = _photo(45, 77)
    rgba = np.concatenate([_photo(50, 36, 1), np.full((50, 36, 1), 90, np.uint8)], axis=2)
    ramp16 = (np.linspace(0, 1, 37 * 53).reshape(37, 53) * 65535).astype(np.uint16)
    yield "pil_rgb", Image.fromarray(photo)
    yield "pil_rgba", Image.fromarray(rgba, mode="RGBA")
    yield "pil_l", Image.fromarray(photo[..., 1], mode="L")
    yield "pil_i16", Image.fromarray(ramp16)
    yield "pil_p", Image.fromarray(photo).convert("P")
    yield "np_uint8", _photo(64, 48, 2)
    yield "np_uint8_gray", _photo(31, 90, 3)[..., 0]
    yield "np_uint16", _photo(40, 56, 4).astype(np.uint16) * 257
    yield "np_float", _photo(33, 47, 5).astype(np.float32) / 255
    yield "np_float64_gray", _photo(60, 20, 6)[..., 0].astype(np.float64) / 255
    yield "np_rgba_uint8", rgba
    yield "chw_float", torch.from_numpy(_photo(29, 71, 7)).permute(2, 0, 1).float() / 255
    yield "chw_uint8", torch.from_numpy(_photo(70, 70, 8)).permute(2, 0, 1).contiguous()
    yield "hw_float_tensor", torch.rand(41, 39, generator=torch.Generator().manual_seed(0))
    yield "chw_one_channel_uint8", torch.from_numpy(_photo(36, 52, 9)[..., :1]).permute(2, 0, 1)
    yield "chw_rgba_float", torch.rand(4, 26, 58, generator=torch.Generator().manual_seed(1))


INPUTS = list(_inputs())


@pytest.fixture(scope="module")
def tiny(tiny_estimators):
    return tiny_estimators


def _assert_close(got, expected, what):
    span = (expected.max() - expected.min()).item()
    err = (got - expected).abs().max().item() / max(span, 1e-12)
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    assert err <= TOLERANCE, f"{what}: {err:.2e} of the range"


@pytest.mark.parametrize("label,image", INPUTS, ids=[label for label, _ in INPUTS])
def test_device_path_equals_the_former_path(label, image, tiny):
    est = tiny("midas_v21_small_256")
    raw_ref, disp_ref = _former_estimate(est, _former_rgb(image))
    out = est(image)
    assert out.raw.dtype == torch.float32 and out.raw.device.type == "cpu"
    _assert_close(out.raw, raw_ref, f"{label} raw")
    _assert_close(out.disparity, disp_ref, f"{label} disparity")


@pytest.mark.parametrize("name", ["dpt_swin2_tiny_256", "dpt_beit_base_384", "dpt_levit_224"])
@pytest.mark.parametrize("norm", [{}, {"percentile": (2.0, 98.0), "gamma": 0.7}, {"invert": True, "gamma": 2.0}])
def test_device_path_equals_the_former_path_for_other_models_and_options(name, norm, tiny):
    est = tiny(name)
    image = _photo(53, 91, 11)
    raw_ref, disp_ref = _former_estimate(est, _former_rgb(image), **norm)
    out = est(Image.fromarray(image), **norm)
    _assert_close(out.raw, raw_ref, f"{name} raw")
    _assert_close(out.disparity, disp_ref, f"{name} disparity {norm}")


def test_batch_equals_one_by_one(tiny):
    est = tiny("dpt_beit_base_384")
    frames = [_photo(48, 80, s) for s in range(3)]
    batch = est(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2))  # a (B,C,H,W) uint8 batch
    for i, frame in enumerate(frames):
        raw_ref, disp_ref = _former_estimate(est, _former_rgb(frame))
        _assert_close(batch.raw[i : i + 1], raw_ref, f"frame {i} raw")
        _assert_close(batch.disparity[i : i + 1], disp_ref, f"frame {i} disparity")


# ----------------------------------------------------------------- pieces of the path
@pytest.mark.parametrize("src,dst", [((12, 20), (45, 77)), ((256, 448), (1080, 1920)), ((1, 3), (5, 9)), ((7, 7), (7, 30))])
def test_banded_bicubic_enlargement_equals_interpolate(src, dst):
    g = torch.Generator().manual_seed(0)
    coarse = torch.randn(2, 1, max(2, src[0] // 4), max(2, src[1] // 4), generator=g)
    smooth = F.interpolate(coarse, size=src, mode="bilinear", align_corners=False)  # like a prediction
    expected = F.interpolate(smooth, size=dst, mode="bicubic", align_corners=False)
    got = transforms.resize(smooth, dst, "bicubic")
    _assert_close(got, expected, f"{src}->{dst}")


def test_compact_form_keeps_the_input_type_and_no_full_size_float():
    photo = _photo(30, 40)
    (t,) = images.to_compact_tensors(Image.fromarray(photo))
    assert t.dtype == torch.uint8 and t.shape == (3, 30, 40) and torch.equal(t.permute(1, 2, 0), torch.from_numpy(photo))
    (gray,) = images.to_compact_tensors(Image.fromarray(photo[..., 0], mode="L"))
    assert gray.shape == (1, 30, 40) and gray.dtype == torch.uint8
    (deep,) = images.to_compact_tensors(Image.fromarray((photo[..., 0].astype(np.uint16) * 257)))
    assert deep.dtype == torch.uint16 and deep.shape == (1, 30, 40)
    (arr,) = images.to_compact_tensors(photo)
    assert arr.data_ptr() == torch.from_numpy(photo).data_ptr()  # a writable array is wrapped, not copied
    (flt,) = images.to_compact_tensors(photo.astype(np.float32) / 255)
    assert flt.dtype == torch.float32
    rgb = images.to_rgb_tensors([Image.fromarray(photo), photo[..., 0]])
    assert all(r.shape == (3, 30, 40) and r.dtype == torch.float32 and r.max() <= 1 for r in rgb)


def test_exif_orientation_applies_to_pil_images_everywhere(tmp_path):
    pixels = _photo(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "p.jpg", exif=exif)
    img = Image.open(tmp_path / "p.jpg")
    assert images.to_compact_tensors(img)[0].shape == (3, 48, 64)
    assert images.to_rgb_tensors(img)[0].shape == (3, 48, 64)
    assert images.load_image_file(tmp_path / "p.jpg").size == (64, 48)


def test_normalize_disparity_handles_non_finite_and_flat_maps():
    raw = torch.arange(24.0).reshape(2, 1, 3, 4)
    raw[0, 0, 0, 0] = float("nan")
    raw[0, 0, 0, 1] = float("inf")
    out = md.normalize_disparity(raw, flat=torch.tensor([False, True]))
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 0, 1] == 0 and out[0].max() == 1  # non-finite = far
    assert (out[1] == 0).all()  # marked flat
    assert (md.normalize_disparity(raw, invert=True, flat=torch.tensor([False, True]))[1] == 1).all()
    assert (md.normalize_disparity(torch.full((1, 1, 4, 4), float("nan"))) == 0).all()
    pct = md.normalize_disparity(raw, percentile=(10, 90))
    assert torch.isfinite(pct).all() and pct[0, 0, 0, 1] == 0


# ----------------------------------------------------------------- on a GPU (skipped without one)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("label,image", INPUTS[:10], ids=[label for label, _ in INPUTS[:10]])
def test_cuda_path_equals_the_cpu_path(label, image, tiny):
    est = tiny("dpt_beit_base_384")
    cpu = est(image)
    gpu = md.DepthEstimator(est.model, est.spec).to("cuda")
    try:
        out = gpu(image)
        assert out.raw.device.type == "cpu" and out.raw.is_pinned()
        _assert_close(out.raw, cpu.raw, f"{label} raw")  # fp32 on both: equal to rounding
        same = gpu(image, output_device="same")
        assert same.disparity.device.type == "cuda"
        if isinstance(image, torch.Tensor):
            on_gpu = gpu(image.cuda(), output_device="same")
            torch.testing.assert_close(on_gpu.raw, same.raw)
        gpu.to(dtype=torch.float16)
        half = gpu(image)
        assert (half.disparity - cpu.disparity).abs().mean() < 2e-2
    finally:
        est.model.to("cpu", torch.float32)


@pytest.mark.parametrize("shape,size", [((600, 900, 3), (128, 192)), ((700, 1300, 1), (160, 300))])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_strong_reduction_gathers_only_the_rows_it_reads(shape, size, dtype):
    """Large photos reduced 4x or more skip widening the whole image; same numbers as F.interpolate."""
    from midas_diffusion.inference.transforms import _shrinks_far, prepare_compact

    top = {np.uint8: 255, np.uint16: 65535, np.float32: 1}[dtype]
    arr = (np.random.default_rng(0).random(shape) * top).astype(dtype)
    (compact,) = images.to_compact_tensors(arr)
    assert _shrinks_far(compact, size)
    config = md.get_model_spec("midas_v21_small_256").preprocess
    got = prepare_compact(compact, size, config)
    rgb = torch.from_numpy(arr.astype(np.float32) / top).permute(2, 0, 1)[None].expand(-1, 3, -1, -1)
    expected = transforms.standardize(F.interpolate(rgb, size=size, mode="bicubic", align_corners=False), config.mean, config.std)
    _assert_close(got, expected, f"{shape}->{size} {dtype.__name__}")
