import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import midas_diffusion as md
from midas_diffusion.io.images import DEFAULT_MAX_PIXELS



@pytest.fixture(scope="module")
def estimators(tiny_estimators):
    return tiny_estimators


def _photo(h=48, w=80, seed=0):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", md.list_models())
def test_every_model_gives_normalized_disparity_at_input_size(name, estimators):
    est = estimators(name)
    out = est([_photo(48, 80), _photo(48, 80, seed=1)])
    assert isinstance(out, md.DepthOutput) and out.model_name == name
    assert out.disparity.shape == (2, 1, 48, 80) and out.disparity.dtype == torch.float32
    assert out.raw.shape == (2, 1, 48, 80)
    assert torch.isfinite(out.disparity).all()
    assert out.disparity.min() >= 0 and out.disparity.max() <= 1
    assert out.disparity[0].max() == 1 and out.disparity[0].min() == 0


def test_batch_of_different_sizes_and_input_types(estimators, tmp_path):
    est = estimators("dpt_beit_base_384")
    rgba = Image.fromarray(_photo(40, 60)).convert("RGBA")
    gray = Image.fromarray(_photo(30, 50)[..., 0], mode="L")
    sixteen = Image.fromarray((np.arange(32 * 45).reshape(32, 45) * 40).astype(np.uint16))
    assert sixteen.mode.startswith("I;16")
    float_arr = _photo(20, 30).astype(np.float32) / 255
    tensor = torch.rand(3, 25, 35)
    images = [rgba, gray, sixteen, float_arr, _photo(33, 44).astype(np.uint16) * 257, tensor]
    outs = est.estimate_each(images, batch_size=4)
    assert [o.disparity.shape for o in outs] == [(1, 1, 40, 60), (1, 1, 30, 50), (1, 1, 32, 45), (1, 1, 20, 30),
                                                 (1, 1, 33, 44), (1, 1, 25, 35)]
    assert all(o.disparity.dtype == torch.float32 and o.disparity.min() >= 0 and o.disparity.max() <= 1 for o in outs)
    assert all(o.raw.shape == o.disparity.shape for o in outs)
    for image, out in zip(images, outs):  # batching images of one network size changes nothing
        torch.testing.assert_close(out.raw, est(image).raw, rtol=0, atol=1e-5 * float(out.raw.max() - out.raw.min()))
    with pytest.raises(ValueError, match="different sizes.*estimate_each"):
        est(images)


def test_one_output_type_whatever_the_input(estimators):
    est = estimators("midas_v21_small_256")
    for images in (_photo(30, 50), [_photo(30, 50)], [_photo(30, 50), _photo(30, 50, seed=1)], torch.rand(3, 3, 30, 50)):
        out = est(images)
        n = 1 if not isinstance(images, (list, torch.Tensor)) or (isinstance(images, torch.Tensor) and images.ndim == 3) else len(images)
        assert isinstance(out.disparity, torch.Tensor) and out.disparity.shape == (n, 1, 30, 50)
        assert isinstance(out.raw, torch.Tensor) and out.raw.shape == (n, 1, 30, 50) and len(out) == n
        assert [m.shape for m in out.per_image()] == [(1, 30, 50)] * n
        assert out.disparity.device.type == "cpu" and out.raw.dtype == torch.float32


def test_16bit_input_keeps_precision(estimators):
    est = estimators("midas_v21_small_256")
    ramp = (np.linspace(0, 1, 64 * 64).reshape(64, 64) * 65535).astype(np.uint16)
    a = est(ramp).raw
    b = est(Image.fromarray(ramp)).raw
    assert torch.allclose(a, b, atol=1e-5)


def test_exif_rotated_file_is_upright(estimators, tmp_path):
    est = estimators("midas_v21_small_256")
    img = Image.fromarray(_photo(40, 70))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    out = est(str(tmp_path / "rot.jpg"))
    assert out.disparity.shape == (1, 1, 70, 40)


@pytest.mark.parametrize("orientation,shown", [(6, (48, 64)), (8, (48, 64)), (3, (64, 48))])
def test_exif_orientation_of_a_pil_image_is_applied(estimators, tmp_path, orientation, shown):
    est = estimators("midas_v21_small_256")
    pixels = _photo(64, 48)  # stored 48 wide, 64 high
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    opened = Image.open(tmp_path / "photo.jpg")  # as a user opens it: orientation not applied
    assert opened.size == (48, 64)
    from_pil = est(opened)
    from_path = est(str(tmp_path / "photo.jpg"))
    assert from_pil.disparity.shape == (1, 1, *shown) == from_path.disparity.shape
    assert torch.equal(from_pil.raw, from_path.raw)
    # the map is the map of the upright pixels
    upright = est(np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "photo.jpg"))))
    assert torch.equal(upright.raw, from_pil.raw)


def test_device_and_dtype_belong_to_the_model(estimators):
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    view = est.at_resolution(320)
    assert view.model is est.model and view.preprocess.net_size == (320, 320)
    est.model.to(torch.bfloat16)  # moved behind the estimator's back: it follows
    assert est.dtype == torch.bfloat16 and view.dtype == torch.bfloat16 and est.device.type == "cpu"
    est.to(dtype=torch.float32)
    assert view.dtype == torch.float32
    with pytest.raises(AttributeError):
        est.device = torch.device("cpu")
    with pytest.raises(AttributeError):
        est.dtype = torch.float16
    with pytest.raises(ValueError, match="dtype"):
        est.to(dtype=torch.int8)
    with pytest.raises(ValueError, match="dtype"):
        est.to(dtype="float8")
    with pytest.raises(ValueError, match="memory_format"):
        est.to(memory_format=torch.preserve_format)
    assert est(_photo(30, 40)).disparity.shape == (1, 1, 30, 40)


def test_results_can_stay_on_the_device(estimators):
    est = estimators("midas_v21_small_256")
    out = est(_photo(30, 40), output_device="same")
    assert out.disparity.device == est.device and out.raw.device == est.device
    assert est(_photo(30, 40), output_device=None).raw.device == est.device
    with pytest.raises(ValueError, match="output_device"):
        est(_photo(30, 40), output_device="nowhere")


def test_constant_image_gives_constant_map(estimators):
    est = estimators("dpt_hybrid_384")
    out = est(np.full((50, 70, 3), 128, np.uint8))
    assert torch.isfinite(out.disparity).all()
    assert out.disparity.min() == out.disparity.max() == 0
    assert (est(np.full((50, 70), 40000, np.uint16), invert=True).disparity == 1).all()
    assert (est(torch.full((3, 20, 30), 0.25), gamma=0.5).disparity == 0).all()
    almost = np.full((50, 70, 3), 128, np.uint8)
    almost[10, 10, 1] = 129  # one step of 8 bits is a cue
    assert est(almost).disparity.max() == 1


def test_normalization_options(estimators):
    est = estimators("dpt_large_384")
    img = _photo(48, 64)
    base = est(img).disparity
    inv = est(img, invert=True).disparity
    assert torch.allclose(inv, 1 - base, atol=1e-6)
    gam = est(img, gamma=2.0).disparity
    assert torch.allclose(gam, base**2, atol=1e-6)
    clipped = est(img, percentile=(10, 90)).disparity
    assert (clipped == 1).float().mean() >= 0.09 and (clipped == 0).float().mean() >= 0.09
    with pytest.raises(ValueError, match="percentile"):
        est(img, percentile=(90, 10))
    with pytest.raises(ValueError, match="gamma"):
        est(img, gamma=0)


def test_pixel_limit_and_bad_inputs(estimators):
    est = estimators("midas_v21_small_256")
    est.max_pixels = 1000
    with pytest.raises(md.ImageError, match="over the limit"):
        est(np.zeros((40, 40, 3), np.uint8))
    est.max_pixels = 64_000_000
    with pytest.raises(md.ImageError, match="must be"):
        est(torch.rand(5, 20, 20))
    with pytest.raises(md.ImageError, match="values in \\[0, 1\\]"):
        est(np.full((10, 10, 3), 200.0, np.float32))
    with pytest.raises(md.ImageError, match="unsupported image type"):
        est(object())
    model = md.create_model("midas_v21_small_256", reduced=True)
    with pytest.raises(ValueError, match="\\(B,3,H,W\\)"):
        model(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 64, 70))


def test_corrupt_and_truncated_files(estimators, tmp_path):
    est = estimators("midas_v21_small_256")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(md.ImageError, match="bad.png"):
        est(str(tmp_path / "bad.png"))
    Image.fromarray(_photo(64, 64)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(md.ImageError, match="damaged or truncated"):
        est(str(tmp_path / "cut.png"))


def test_save_and_load_roundtrip_and_dtype(estimators, tmp_path):
    est = estimators("dpt_swin2_tiny_256")
    est.save_pretrained(tmp_path / "saved")
    again = md.DepthEstimator.from_pretrained(tmp_path / "saved")
    img = _photo(40, 40)
    assert torch.equal(est(img).raw, again(img).raw)
    again.to(dtype=torch.bfloat16)
    out = again(img)
    assert out.disparity.dtype == torch.float32 and torch.isfinite(out.disparity).all()


def test_explicit_loading_arguments_win_over_a_folders_stored_ones(tmp_path):
    """A saved folder keeps its settings unless the caller gives others: each argument given wins."""
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True, resolution=128, max_pixels=5000)
    folder = est.save_pretrained(tmp_path / "saved")
    stored = md.DepthEstimator.from_pretrained(folder)
    assert stored.max_pixels == 5000 and stored.preprocess.net_size == (128, 128) and stored.reduced
    assert stored.preprocess.keep_aspect_ratio
    given = md.DepthEstimator.from_pretrained(folder, max_pixels=9000, resolution=192, square=True)
    assert given.max_pixels == 9000 and given.preprocess.net_size == (192, 192)
    assert not given.preprocess.keep_aspect_ratio
    assert md.DepthEstimator.from_pretrained(folder, max_pixels=None).max_pixels is None  # None: no limit
    other = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    torch.save(other.model.state_dict(), tmp_path / "other.pt")
    reweighted = md.DepthEstimator.from_pretrained(folder, checkpoint=tmp_path / "other.pt")
    for mine, theirs in zip(reweighted.model.state_dict().values(), other.model.state_dict().values()):
        assert torch.equal(mine, theirs)
    assert reweighted.max_pixels == 5000  # the rest still from the folder
    assert md.DepthEstimator.from_pretrained(folder, model="midas_v21_small_256", reduced=False).reduced  # stored
    with pytest.raises(ValueError, match="holds midas_v21_small_256, not model='dpt_levit_224'"):
        md.DepthEstimator.from_pretrained(folder, model="dpt_levit_224")
    assert md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True).max_pixels == DEFAULT_MAX_PIXELS


def test_checkpoint_file_identifies_its_model(tmp_path):
    model = md.create_model("dpt_levit_224")
    torch.save(model.state_dict(), tmp_path / "some_name.pt")
    est = md.DepthEstimator.from_pretrained(tmp_path / "some_name.pt")
    assert est.model_name == "dpt_levit_224"


def test_missing_weights_offline_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MIDAS_DIFFUSION_WEIGHTS", str(tmp_path / "w"))
    with pytest.raises(md.WeightsNotFoundError) as info:
        md.DepthEstimator.from_pretrained("dpt_swin2_tiny_256")
    message = str(info.value)
    assert "dpt_swin2_tiny_256.pt" in message and str(tmp_path / "w") in message and "\n" not in message


def test_weights_folder_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("MIDAS_DIFFUSION_WEIGHTS", str(tmp_path))
    model = md.create_model("dpt_levit_224")
    torch.save(model.state_dict(), tmp_path / "dpt_levit_224.pt")
    est = md.DepthEstimator.from_pretrained("DPT_LeViT_224")
    for k, v in est.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])


def test_group_batches_keeps_keys_apart_and_order_of_first_appearance():
    from midas_diffusion.inference.batching import group_batches

    items = ["a1", "b1", "a2", "a3", "b2", "c1", "a4"]
    assert group_batches(items, lambda s: s[0], 3) == [["a1", "a2", "a3"], ["a4"], ["b1", "b2"], ["c1"]]
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        group_batches(items, lambda s: s[0], 0)
