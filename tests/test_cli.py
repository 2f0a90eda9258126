import numpy as np
import pytest
import torch
from PIL import Image

import midas_diffusion as md
from midas_diffusion.cli import main
from midas_diffusion.io.writers import read_pfm, read_uint16_png, write_png16

from reference import recipe_init_


@pytest.fixture()
def saved_model(tmp_path):
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    return str(est.save_pretrained(tmp_path / "model"))


def _images(folder, n=3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 64, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


def test_depth_folder_with_bad_files(tmp_path, saved_model, capsys):
    src = _images(tmp_path / "in")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    good = (src / "img0.png").read_bytes()
    (src / "truncated.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    rc = main(["depth", str(src), "-o", str(out), "--model", saved_model, "--format", "png16,pfm,npy,preview", "--no-progress"])
    assert rc == 1  # two inputs failed
    report = capsys.readouterr()
    assert "broken.jpg" in report.err and "truncated.png" in report.err
    assert "done 3, skipped 0 (existing), failed 2" in report.out
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"img{i}{s}" for i in range(3) for s in (".png", ".pfm", ".npy", "-preview.png"))
    png = read_uint16_png(out / "img1.png")
    assert png.dtype == np.uint16 and png.shape == (48, 64) and png.max() == 65535 and png.min() == 0
    raw = read_pfm(out / "img1.pfm")
    assert raw.shape == (48, 64) and np.allclose(np.load(out / "img1.npy"), raw)
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, saved_model, capsys):
    src = _images(tmp_path / "in", n=2)
    out = tmp_path / "out"
    assert main(["depth", str(src), "-o", str(out), "--model", saved_model, "--no-progress"]) == 0
    marker = out / "img0.png"
    marker.write_bytes(b"user's own file")
    assert main(["depth", str(src), "-o", str(out), "--model", saved_model, "--no-progress"]) == 0
    assert marker.read_bytes() == b"user's own file"
    assert "done 0, skipped 2" in capsys.readouterr().out
    assert main(["depth", str(src / "img0.png"), "-o", str(out), "--model", saved_model, "--overwrite", "--no-progress"]) == 0
    assert read_uint16_png(marker).dtype == np.uint16


def test_missing_input_and_missing_weights(tmp_path, capsys):
    rc = main(["depth", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o"), "--no-progress"])
    assert rc == 1 and "no such file" in capsys.readouterr().err
    _images(tmp_path / "in", n=1)
    rc = main(["depth", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--model", "dpt_levit_224", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "dpt_levit_224.pt" in err and "weights" in err


def test_png16_roundtrip_is_exact(tmp_path):
    values = torch.arange(65536, dtype=torch.float32).reshape(256, 256) / 65535
    write_png16(tmp_path / "d.png", values)
    assert np.array_equal(read_uint16_png(tmp_path / "d.png"), np.arange(65536, dtype=np.uint16).reshape(256, 256))


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    from midas_diffusion.io import writers

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writers.np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        writers.write_npy(tmp_path / "x.npy", np.zeros((4, 4)))
    assert list(tmp_path.iterdir()) == []


def test_depth_export_writes_3d_files_and_resumes(tmp_path, saved_model, capsys):
    pytest.importorskip("trimesh")
    from plyfile import PlyData

    src = _images(tmp_path / "in", n=2)
    out = tmp_path / "out"
    args = ["depth", str(src), "-o", str(out), "--model", saved_model, "--export", "ply,glb", "--no-progress"]
    assert main(args) == 0
    assert PlyData.read(str(out / "img1.ply"))["vertex"].count == 48 * 64
    assert (out / "img0.glb").stat().st_size > 0 and (out / "img0.png").exists()
    (out / "img1.glb").unlink()
    assert main(args) == 0
    assert "done 1, skipped 1" in capsys.readouterr().out.splitlines()[-1]
