"""Every dataset reader round-trips tiny files written in its exact format and refuses a wrong
layout with a message naming the expected one."""

import struct
import sys

import numpy as np
import pytest
from PIL import Image

import eval_fixtures as fx
from midas_diffusion.evaluation.datasets import DATASETS, LayoutError, NYUMat, open_dataset
from midas_diffusion.evaluation.datasets.formats import parse_diw_csv, parse_tum_associations, read_dpt


def _round_trip(name, root, truth, **options):
    reader = open_dataset(name, root, **options)
    refs = reader.samples()
    assert sorted(r.id for r in refs) == sorted(truth)
    for ref in refs:
        sample = reader.load(ref)
        assert sample.image.dtype == np.uint8 and sample.image.shape == (fx.H, fx.W, 3)
        assert sample.depth.dtype == np.float32 and sample.depth.shape == (fx.H, fx.W)
        np.testing.assert_allclose(sample.depth, truth[ref.id], rtol=1e-6, atol=1e-6)
        assert (sample.depth[0, :3] == 0).all()  # "no measurement" stays 0
    return reader


@pytest.mark.parametrize("listing", [True, False], ids=["eigen-list", "depth-selection"])
def test_kitti_png16_over_256(tmp_path, listing):
    truth = fx.kitti(tmp_path, listing=listing)
    _round_trip("kitti", tmp_path, truth)


def test_kitti_refuses_8bit_depth(tmp_path):
    truth = fx.kitti(tmp_path, n=1, listing=False)
    gt = next((tmp_path / "groundtruth_depth").iterdir())
    Image.fromarray(np.zeros((fx.H, fx.W), np.uint8)).save(gt)
    reader = open_dataset("kitti", tmp_path)
    with pytest.raises(LayoutError, match=r"16-bit PNG depth map \(metres x 256"):
        reader.load(reader.samples()[0])
    assert truth


def test_kitti_refuses_a_folder_without_its_layout(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(LayoutError, match="eigen_test_files_with_gt.txt.*groundtruth_depth"):
        open_dataset("kitti", tmp_path).samples()


@pytest.mark.parametrize("depth_first", [False, True], ids=["rgb-first", "depth-first"])
def test_tum_png16_over_5000_with_associations(tmp_path, depth_first):
    truth = fx.tum(tmp_path, depth_first=depth_first)
    _round_trip("tum", tmp_path, truth)


def test_tum_needs_the_associations_file(tmp_path):
    fx.tum(tmp_path)
    (tmp_path / "rgbd_dataset_freiburg2_desk" / "associations.txt").unlink()
    with pytest.raises(LayoutError, match="associate.py rgb.txt depth.txt > associations.txt"):
        open_dataset("tum", tmp_path).samples()


def test_tum_associations_layout_is_checked(tmp_path):
    path = tmp_path / "associations.txt"
    path.write_text("1.0 rgb/1.png depth/1.png\n")
    with pytest.raises(LayoutError, match="3 fields; expected a TUM associations file"):
        parse_tum_associations(path)
    path.write_text("1.0 a/1.png 2.0 b/1.png\n")
    with pytest.raises(LayoutError, match="cannot tell the depth column"):
        parse_tum_associations(path)


def test_eth3d_raw_float32_with_inf_holes(tmp_path):
    truth = fx.eth3d(tmp_path)
    _round_trip("eth3d", tmp_path, truth)


def test_eth3d_refuses_a_depth_file_of_another_size(tmp_path):
    fx.eth3d(tmp_path, n=1)
    target = next(tmp_path.rglob("ground_truth_depth/dslr_images/*"))
    np.zeros((fx.H, fx.W - 1), "<f4").tofile(target)
    reader = open_dataset("eth3d", tmp_path)
    with pytest.raises(LayoutError, match=rf"raw little-endian float32.*{fx.W}x{fx.H} -> {4 * fx.W * fx.H} bytes"):
        reader.load(reader.samples()[0])


def test_sintel_dpt(tmp_path):
    truth = fx.sintel(tmp_path)
    _round_trip("sintel", tmp_path, truth)
    # the header is little-endian float32 tag, int32 width, int32 height
    raw = next(tmp_path.rglob("*.dpt")).read_bytes()
    assert struct.unpack("<f", raw[:4])[0] == 202021.25 and struct.unpack("<ii", raw[4:12]) == (fx.W, fx.H)


def test_sintel_refuses_a_wrong_tag_or_a_short_file(tmp_path):
    bad = tmp_path / "x.dpt"
    bad.write_bytes(fx.dpt_bytes(np.ones((2, 3)), tag=1.0))
    with pytest.raises(LayoutError, match="not 202021.25; expected a Sintel .dpt file"):
        read_dpt(bad)
    bad.write_bytes(fx.dpt_bytes(np.ones((2, 3)))[:-4])
    with pytest.raises(LayoutError, match="holds 5 values for a 3x2 map"):
        read_dpt(bad)


def test_diw_csv_pairs(tmp_path):
    truth = fx.diw(tmp_path)
    reader = open_dataset("diw", tmp_path)
    refs = reader.samples()
    assert [r.id for r in refs] == list(truth)
    for ref in refs:
        sample = reader.load(ref)
        assert sample.depth is None and sample.image.shape == (fx.H, fx.W, 3)
        assert sample.pairs.tolist() == [list(truth[ref.id])]


def test_diw_csv_layout_is_checked(tmp_path):
    path = tmp_path / "DIW_test.csv"
    path.write_text("./DIW_test/a.thumb\n3,4,5,6,=,32,24\n")
    with pytest.raises(LayoutError, match=r"y_A,x_A,y_B,x_B,<or>,width,height"):
        parse_diw_csv(path)
    path.write_text("./DIW_test/a.thumb\n")
    with pytest.raises(LayoutError, match="odd number of lines"):
        parse_diw_csv(path)
    path.write_text("x.thumb\n3,4,5,6,>,32,24\n\ny.thumb\n1,1,2,2,<,32,24\n")  # 1-based in, 0-based out
    assert parse_diw_csv(path) == [("x.thumb", (2, 3, 4, 5, 1), (32, 24)), ("y.thumb", (0, 0, 1, 1, -1), (32, 24))]


@pytest.mark.parametrize("npy", [False, True], ids=["sync_depth-png-mm", "depth-npy-metres"])
def test_nyu_exported_split(tmp_path, npy):
    truth = fx.nyu_exported(tmp_path, npy=npy)
    _round_trip("nyu", tmp_path, truth)


def test_nyu_exported_refuses_an_image_without_depth(tmp_path):
    fx.nyu_exported(tmp_path, n=1)
    next(tmp_path.rglob("sync_depth_*.png")).unlink()
    with pytest.raises(LayoutError, match="neither sync_depth_00045.png nor depth_00045.npy"):
        open_dataset("nyu", tmp_path).samples()


def test_nyu_refuses_a_matlab_v5_file(tmp_path):
    (tmp_path / "nyu_depth_v2_labeled.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(LayoutError, match=r"not an HDF5 file.*MATLAB v7.3 / HDF5.*'images' \(N,3,640,480\)"):
        open_dataset("nyu", tmp_path)


def test_nyu_mat_without_h5py_names_the_install(tmp_path, monkeypatch):
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    path.write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(100))
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(LayoutError, match="needs h5py: pip install h5py"):
        open_dataset("nyu", tmp_path).samples()


def test_nyu_labeled_mat_round_trip(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (4, fx.H, fx.W, 3), dtype=np.uint8)
    depths = rng.uniform(0.7, 9.9, (4, fx.H, fx.W)).astype(np.float32)
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w", userblock_size=512) as f:  # MATLAB v7.3: 512-byte header, then HDF5
        f["images"] = images.transpose(0, 3, 2, 1)  # MATLAB is column-major: (N, 3, W, H) seen from HDF5
        f["depths"] = depths.transpose(0, 2, 1)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64")
    (tmp_path / "test_indices.txt").write_text("2\n4\n")
    reader = open_dataset("nyu", tmp_path)
    assert isinstance(reader, NYUMat)
    refs = reader.samples()
    assert [r.id for r in refs] == ["0002", "0004"]
    sample = reader.load(refs[1])
    np.testing.assert_array_equal(sample.image, images[3])
    np.testing.assert_array_equal(sample.depth, depths[3])


@pytest.mark.parametrize("kind", ["png", "npy"])
def test_folder_layout(tmp_path, kind):
    truth = fx.folder(tmp_path, kind=kind)
    _round_trip("folder", tmp_path, truth)


def test_folder_depth_scale(tmp_path):
    truth = fx.folder(tmp_path, kind="png")
    # the same 16-bit files read as tenths of a millimetre
    reader = open_dataset("folder", tmp_path, depth_scale=1e-4)
    ref = reader.samples()[0]
    np.testing.assert_allclose(reader.load(ref).depth, truth[ref.id] / 10, rtol=1e-6, atol=1e-7)


def test_folder_refuses_a_missing_depth_and_a_color_png(tmp_path):
    fx.folder(tmp_path, n=2)
    target = tmp_path / "depth" / "room" / "shot1.png"
    Image.fromarray(np.zeros((fx.H, fx.W, 3), np.uint8)).save(target)
    reader = open_dataset("folder", tmp_path)
    with pytest.raises(LayoutError, match="mode RGB; expected a 16-bit PNG depth map"):
        reader.load(reader.samples()[1])
    target.unlink()
    with pytest.raises(LayoutError, match=r"no depth/room/shot1\{.png,.npy,.pfm,.exr\}; expected rgb/"):
        reader.samples()


def test_open_dataset_checks_names_and_options(tmp_path):
    assert DATASETS == ("diw", "eth3d", "sintel", "tum", "kitti", "nyu", "folder")
    with pytest.raises(ValueError, match="unknown dataset 'nyu2'"):
        open_dataset("nyu2", tmp_path)
    with pytest.raises(ValueError, match="depth_scale applies to the folder layout only"):
        open_dataset("kitti", tmp_path, depth_scale=0.001)
    with pytest.raises(LayoutError, match="does not exist"):
        open_dataset("sintel", tmp_path / "absent")
