"""Metric depth from sparse known depths: the fit, its robustness and errors, the POINTS files,
metric exports and ``depth --metric-from``."""

import warnings

import numpy as np
import pytest
from PIL import Image

from midas_diffusion.evaluation.metric_depth import PoorFitWarning, metric_depth, sparse_from_points
from midas_diffusion.evaluation.metric_files import load_known_depths, metric_targets, write_depth_png_mm

SCALE, SHIFT = 0.02, -0.01  # 1/depth = SCALE * disparity + SHIFT


def _scene(h=40, w=60, seed=1):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1.0, 8.0, (h, w))
    disparity = (1.0 / depth - SHIFT) / SCALE
    return rng, depth, disparity


def _known(rng, depth, n=50, noise=0.005, outliers=0):
    sparse = np.zeros_like(depth)
    idx = rng.choice(depth.size, n, replace=False)
    values = depth.ravel()[idx] * (1 + rng.normal(0, noise, n))
    bad = rng.choice(n, outliers, replace=False)
    values[bad] *= rng.uniform(1.5, 3.0, outliers)  # wrong by 50-200 %
    sparse.ravel()[idx] = values
    return sparse, idx, bad


def test_exact_points_give_exact_depth():
    rng, depth, disparity = _scene()
    sparse, _, _ = _known(rng, depth, n=5, noise=0)
    result = metric_depth(disparity, sparse, robust=False)
    assert result.scale == pytest.approx(SCALE, rel=1e-9) and result.shift == pytest.approx(SHIFT, rel=1e-7)
    np.testing.assert_allclose(result.depth, depth, rtol=1e-5)
    assert result.depth.dtype == np.float32 and result.inliers.all() and result.residual < 1e-9


def test_robust_fit_recovers_scale_and_shift_despite_ten_percent_outliers():
    rng, depth, disparity = _scene()
    sparse, idx, bad = _known(rng, depth, n=50, noise=0.005, outliers=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good fit does not warn
        result = metric_depth(disparity, sparse, robust=True)
    assert abs(result.scale / SCALE - 1) < 0.01
    assert abs(result.shift / SHIFT - 1) < 0.01
    assert np.median(np.abs(result.depth / depth - 1)) < 0.01
    # the flags follow the row-major order of the known pixels; the wrong points are out
    order = np.argsort(idx)
    assert not result.inliers[np.isin(order, bad)].any()
    assert result.inliers.sum() == 45
    # plain least squares is pulled away by the same points
    plain = metric_depth(disparity, sparse, robust=False)
    assert abs(plain.scale / SCALE - 1) > 0.01
    huber = metric_depth(disparity, sparse, robust="huber")
    assert abs(huber.scale / SCALE - 1) < abs(plain.scale / SCALE - 1)


def test_far_pixels_are_capped_at_max_depth():
    rng, depth, disparity = _scene()
    sparse, _, _ = _known(rng, depth, n=10, noise=0)
    disparity, sparse = disparity.copy(), sparse.copy()
    disparity[0, 0], sparse[0, 0] = 0.0, 0.0  # aligned inverse depth -0.01: "beyond infinity"
    result = metric_depth(disparity, sparse, robust=False, max_depth=25.0)
    assert result.depth[0, 0] == 25.0 and result.max_depth == 25.0


def test_errors_for_too_few_or_degenerate_points():
    _, depth, disparity = _scene()
    sparse = np.zeros_like(depth)
    sparse[0, 0], sparse[1, 1] = 2.0, 3.0
    with pytest.raises(ValueError, match="2 known depth.*min_points=3"):
        metric_depth(disparity, sparse)
    flat = np.full_like(disparity, 7.0)
    sparse[2, 2] = 4.0
    with pytest.raises(ValueError, match="all have the same disparity"):
        metric_depth(flat, sparse, robust=False)
    with pytest.raises(ValueError, match="no two known points"):
        metric_depth(flat, sparse)
    with pytest.raises(ValueError, match="finite and positive"):
        metric_depth(disparity, sparse, sparse_mask=sparse != 0.5)
    reversed_depth = np.zeros_like(depth)
    for (y, x) in [(0, 0), (5, 5), (9, 9)]:
        reversed_depth[y, x] = disparity[y, x] / 100  # depth grows with disparity
    with pytest.raises(ValueError, match="do not match this depth map"):
        metric_depth(disparity, reversed_depth, robust=False)
    with pytest.raises(ValueError, match="sparse_depth is 3x2 but disparity is 60x40"):
        metric_depth(disparity, np.ones((2, 3)))


def test_a_poor_fit_warns():
    rng, depth, disparity = _scene()
    sparse = np.zeros_like(depth)
    idx = rng.choice(depth.size, 20, replace=False)
    sparse.ravel()[idx] = rng.uniform(1, 8, 20)  # unrelated to the scene
    with pytest.warns(PoorFitWarning, match="poor metric fit"):
        metric_depth(disparity, sparse, robust=False)
    three = np.zeros_like(depth)
    three[0, 0], three[5, 5], three[9, 9] = depth[0, 0], depth[5, 5], 3 * depth[9, 9]
    with pytest.warns(PoorFitWarning, match="2 of 3 known points agree"):  # the two agreeing points are unchecked
        metric_depth(disparity, three)


def test_sparse_from_points():
    sparse = sparse_from_points([[1.2, 0.4, 2.0], [0.8, 0, 4.0], [2, 1, 1.5]], 2, 3)
    np.testing.assert_allclose(sparse, [[0, 3.0, 0], [0, 0, 1.5]])
    with pytest.raises(ValueError, match=r"point 0 \(x=3, y=0\) lies outside the 3x2 image"):
        sparse_from_points([[3, 0, 1.0]], 2, 3)
    with pytest.raises(ValueError, match="depths must be positive"):
        sparse_from_points([[0, 0, 0.0]], 2, 3)


def test_known_depth_files(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("x,y,depth_m\n1,0,2.5\n2,1,4\n")
    np.testing.assert_allclose(load_known_depths(csv, 2, 3), [[0, 2.5, 0], [0, 0, 4]])
    png = tmp_path / "p.png"
    Image.fromarray(np.array([[0, 2500, 0], [0, 0, 4000]], np.uint16)).save(png)
    np.testing.assert_allclose(load_known_depths(png, 2, 3), [[0, 2.5, 0], [0, 0, 4]])
    np.save(tmp_path / "map.npy", np.array([[0, 2.5, 0], [0, 0, 4]]))
    np.testing.assert_allclose(load_known_depths(tmp_path / "map.npy", 2, 3), [[0, 2.5, 0], [0, 0, 4]])
    np.save(tmp_path / "rows.npy", np.array([[1, 0, 2.5], [2, 1, 4], [0, 1, 1.5], [0, 1, 2.5]]))
    np.testing.assert_allclose(load_known_depths(tmp_path / "rows.npy", 2, 3), [[0, 2.5, 0], [2.0, 0, 4]])
    # a half-size sensor image: each known pixel lands at its place in the photo
    Image.fromarray(np.array([[0, 0], [3000, 0]], np.uint16)).save(png)
    sparse = load_known_depths(png, 4, 4)
    assert np.count_nonzero(sparse) == 1 and sparse[2, 0] == pytest.approx(3.0)
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(png)
    with pytest.raises(ValueError, match="16-bit PNG depth image in millimetres"):
        load_known_depths(png, 2, 3)
    csv.write_text("1,0,2.5\n2;1;4\n")
    with pytest.raises(ValueError, match=r"p.csv:2: '2;1;4' is not 'x,y,depth_m'"):
        load_known_depths(csv, 2, 3)
    np.save(tmp_path / "map.npy", np.ones((3, 4)))
    with pytest.raises(ValueError, match="another aspect ratio"):
        load_known_depths(tmp_path / "map.npy", 2, 6)
    with pytest.raises(ValueError, match="unknown format '.txt'"):
        (tmp_path / "p.txt").write_text("")
        load_known_depths(tmp_path / "p.txt", 2, 3)


def test_exr_needs_imageio(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imageio", None)
    monkeypatch.setitem(sys.modules, "imageio.v3", None)
    (tmp_path / "p.exr").write_bytes(b"v/1\x01")
    with pytest.raises(ValueError, match="needs imageio"):
        load_known_depths(tmp_path / "p.exr", 2, 3)


def test_metric_png_is_millimetres(tmp_path):
    write_depth_png_mm(tmp_path / "d.png", np.array([[0.0, 1.2345], [70.0, np.nan]]))
    with Image.open(tmp_path / "d.png") as img:
        assert img.mode.startswith("I;16")
        np.testing.assert_array_equal(np.asarray(img), [[0, 1234], [65535, 0]])  # rounded, saturated, none
    targets = {"png16": tmp_path / "a.png", "npy": tmp_path / "a.npy", "preview": tmp_path / "a-preview.png"}
    assert metric_targets(targets) == {"metric-png16": tmp_path / "a-metric.png", "metric-npy": tmp_path / "a-metric.npy"}


def test_exporters_take_metric_depth(tmp_path):
    pytest.importorskip("trimesh")
    from plyfile import PlyData

    from midas_diffusion.io.rgbd import export_glb, export_ply

    depth = np.linspace(2.0, 3.0, 6 * 8).reshape(6, 8).astype(np.float32)
    rgb = np.zeros((6, 8, 3), np.float32)
    export_ply(tmp_path / "m.ply", rgb, None, depth=depth, near=1.0, far=10.0)
    vertex = PlyData.read(str(tmp_path / "m.ply"))["vertex"]
    np.testing.assert_allclose(-np.asarray(vertex["z"]), depth.ravel(), rtol=1e-6)  # metres along the view axis
    export_glb(tmp_path / "m.glb", rgb, None, depth=depth)
    assert (tmp_path / "m.glb").stat().st_size > 0
    with pytest.raises(ValueError, match="finite and positive"):
        export_ply(tmp_path / "bad.ply", rgb, None, depth=-depth)


# ------------------------------------------------------------------------- depth --metric-from
@pytest.fixture()
def saved_model(tmp_path):
    import midas_diffusion as md

    from reference import recipe_init_

    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)  # weights that give a varied prediction
    return str(est.save_pretrained(tmp_path / "model"))


def _photo(folder, name="room.png", size=(32, 48)):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder / name


def _points_matching_prediction(saved_model, photo, csv, with_outlier=True):
    """Known depths that follow the model's own raw prediction (so the fit is exact but for one bad point)."""
    import midas_diffusion as md

    raw = md.DepthEstimator.from_pretrained(saved_model)(str(photo)).raw[0, 0].numpy().astype(np.float64)
    order = np.argsort(raw.ravel())
    ys, xs = np.unravel_index(order[:: raw.size // 12][:12], raw.shape)
    lo, hi = raw.min(), raw.max()
    inverse = 0.1 + 0.9 * (raw - lo) / (hi - lo)  # 1/depth from 1/10 m to 1 m
    rows = [f"{x},{y},{1.0 / inverse[y, x]:.6f}" for y, x in zip(ys, xs)]
    if with_outlier:
        y, x = np.unravel_index(order[raw.size // 2 + 1], raw.shape)  # not one of the points above
        rows.append(f"{x},{y},50.0")
    csv.write_text("x,y,depth_m\n" + "\n".join(rows) + "\n")
    return 1.0 / inverse


def test_depth_metric_from_writes_metric_outputs_and_a_metric_mesh(tmp_path, saved_model, capsys):
    pytest.importorskip("trimesh")
    from plyfile import PlyData

    from midas_diffusion.cli import main
    from midas_diffusion.io.writers import read_pfm

    photo = _photo(tmp_path / "in")
    truth = _points_matching_prediction(saved_model, photo, tmp_path / "points.csv")
    out = tmp_path / "out"
    rc = main(["depth", str(photo), "-o", str(out), "--model", saved_model, "--format", "png16,npy,pfm",
               "--metric-from", str(tmp_path / "points.csv"), "--export", "ply", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    metric = np.load(out / "room-metric.npy")
    np.testing.assert_allclose(metric, truth, rtol=1e-3)
    np.testing.assert_allclose(read_pfm(out / "room-metric.pfm"), metric)
    with Image.open(out / "room-metric.png") as img:
        np.testing.assert_allclose(np.asarray(img), np.round(metric * 1000), atol=1)
    assert (out / "room.png").is_file()  # the disparity outputs are still written
    vertex = PlyData.read(str(out / "room.ply"))["vertex"]
    np.testing.assert_allclose(-np.asarray(vertex["z"]), metric.ravel(), rtol=1e-5)  # the mesh is in metres


def test_depth_metric_from_a_folder_and_its_errors(tmp_path, saved_model, capsys):
    from midas_diffusion.cli import main

    photos = tmp_path / "in"
    _photo(photos, "a.png")
    _photo(photos, "b.png")
    points = tmp_path / "points"
    points.mkdir()
    _points_matching_prediction(saved_model, photos / "a.png", points / "a.csv", with_outlier=False)
    out = tmp_path / "out"
    rc = main(["depth", str(photos), "-o", str(out), "--model", saved_model, "--metric-from", str(points),
               "--no-progress"])
    report = capsys.readouterr()
    assert rc == 1 and "no known depths for b.png" in report.err
    assert (out / "a-metric.png").is_file() and not (out / "b-metric.png").exists()
    rc = main(["depth", str(photos), "-o", str(out), "--model", saved_model, "--metric-from",
               str(points / "a.csv"), "--no-progress"])
    assert rc == 1 and "one file for 2 images" in capsys.readouterr().err
    rc = main(["depth", str(photos / "a.png"), "-o", str(out), "--model", saved_model, "--format", "preview",
               "--metric-from", str(points / "a.csv"), "--no-progress"])
    assert rc == 1 and "add one to --format" in capsys.readouterr().err
