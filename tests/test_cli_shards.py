"""``midas-diffusion depth SHARDS.tar -o OUT``: WebDataset shards in and out (no Ray here: tests/test_ray.py)."""

import json
import tarfile

import numpy as np
import pytest

import midas_diffusion as md
from midas_diffusion.cli import main
from midas_diffusion.io import shards as shard_io
from midas_diffusion.io.shards import expand_braces, split_name

from reference import recipe_init_
from shard_fixtures import extract_images, make_shards, members, write_tar


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    return str(est.save_pretrained(tmp_path_factory.mktemp("model") / "model"))


def _depth(args, saved_model):
    return main(["depth", *args, "--model", saved_model, "--no-progress", "--dtype", "float32"])


def test_shards_keep_every_member_and_hold_the_folder_paths_depth(tmp_path, saved_model, capsys):
    src = make_shards(tmp_path / "in")
    out = tmp_path / "out"
    assert _depth([str(tmp_path / "in" / "{00000..00001}.tar"), "-o", str(out), "--format", "png16,npy"], saved_model) == 0
    assert "shards: written 2, skipped 0 (finished), failed 0; images: done 6, failed 0" in capsys.readouterr().out
    folder = tmp_path / "files"
    assert _depth([str(extract_images(src, tmp_path / "images")), "-o", str(folder), "--format", "png16,npy"],
                  saved_model) == 0
    for shard in src:
        given, written = members(shard), members(out / shard.name)
        names = [info.name for info, _ in written]
        expected = []
        for info, _ in given:
            expected.append(info.name)
            if info.name.endswith(".json"):  # the sample's last member: the depth fields follow it
                key = split_name(info.name)[0]
                expected += [f"{key}.depth.png", f"{key}.depth.npy", f"{key}.midas.json"]
        assert names == expected
        kept = {info.name: (info, data) for info, data in written}
        for info, data in given:  # every input member unchanged: bytes and header
            copy, copy_data = kept[info.name]
            assert copy_data == data
            assert (copy.mtime, copy.mode, copy.uname, copy.size) == (info.mtime, info.mode, info.uname, info.size)
        for name, (info, data) in kept.items():
            key, field = split_name(name)
            if field == "depth.png":  # the same bytes as the folder path's 16-bit PNG of the same image
                assert data == (folder / f"{key}.png").read_bytes(), name
            elif field == "depth.npy":
                assert data == (folder / f"{key}.npy").read_bytes(), name
            elif field == "midas.json":
                settings = json.loads(data)
                assert settings["model"] == "midas_v21_small_256"
                assert settings["fields"] == ["depth.npy", "depth.png"] and settings["dtype"] == "float32"
                assert info.mtime == 0 and info.uid == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.tar", "00001.tar"]  # no temporary file left


def test_interrupted_run_resumes_with_the_same_bytes(tmp_path, saved_model, monkeypatch, capsys):
    make_shards(tmp_path / "in")
    shards = str(tmp_path / "in" / "{00000..00001}.tar")
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert _depth([shards, "-o", str(reference)], saved_model) == 0

    real_addfile, calls = tarfile.TarFile.addfile, []

    def dies_in_the_second_shard(self, info, fileobj=None):
        calls.append(info.name)
        if len(calls) == 16:  # the first shard (3 x 3 members + 3 x 2 added = 15) is written; the second is not
            raise KeyboardInterrupt
        return real_addfile(self, info, fileobj)

    monkeypatch.setattr(shard_io.tarfile.TarFile, "addfile", dies_in_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        _depth([shards, "-o", str(out)], saved_model)
    monkeypatch.setattr(shard_io.tarfile.TarFile, "addfile", real_addfile)
    assert sorted(p.name for p in out.iterdir()) == ["00000.tar"]  # the unfinished shard left nothing
    finished = (out / "00000.tar").read_bytes()
    # a process killed outright leaves its temporary file: the rerun removes it and redoes the shard
    (out / ".00001.tar.k1ll3d.tmp").write_bytes(b"half a tar")
    capsys.readouterr()
    assert _depth([shards, "-o", str(out)], saved_model) == 0
    assert "shards: written 1, skipped 1 (finished)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["00000.tar", "00001.tar"]
    for name in ("00000.tar", "00001.tar"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert (out / "00000.tar").read_bytes() == finished


def test_a_corrupt_sample_is_named_and_left_out_and_the_shard_completes(tmp_path, saved_model, capsys):
    (path,) = make_shards(tmp_path / "in", count=1)
    given = members(path)
    given = [(info.name, b"\xff\xd8 not a jpeg" if info.name == "000000001.png" else data) for info, data in given]
    given.append(("000000003.txt", b"a caption without an image"))  # kept as it is: no image, no depth
    write_tar(path, given)
    out = tmp_path / "out"
    assert _depth([str(path), "-o", str(out)], saved_model) == 1
    report = capsys.readouterr()
    assert f"{path}:000000001" in report.err and "Traceback" not in report.err
    assert "written 1" in report.out and "images: done 2, failed 1" in report.out
    names = [info.name for info, _ in members(out / "00000.tar")]
    assert not [n for n in names if n.startswith("000000001.")]
    assert [n for n in names if n.endswith("depth.png")] == ["000000000.depth.png", "000000002.depth.png"]
    assert names[-1] == "000000003.txt"
    assert _depth([str(path), "-o", str(out)], saved_model) == 0  # finished: skipped
    assert "skipped 1 (finished)" in capsys.readouterr().out


def test_bad_shard_inputs_give_one_clear_line_each(tmp_path, saved_model, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.tar").write_bytes(b"this is not a tar archive at all" * 40)
    out = tmp_path / "out"
    assert _depth([str(tmp_path / "nowhere" / "{00..01}.tar"), "-o", str(out)], saved_model) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {tmp_path / 'nowhere' / '00.tar'}: no such shard",
                                f"error: {tmp_path / 'nowhere' / '01.tar'}: no such shard"]
    assert _depth([str(tmp_path / "in" / "broken.tar"), "-o", str(out)], saved_model) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {tmp_path / 'in' / 'broken.tar'}: not a readable tar shard "
                                "(invalid header)"]
    assert not out.exists() or not list(out.iterdir())
    (whole,) = make_shards(tmp_path / "cut", count=1)
    (tmp_path / "cut" / "00000.tar").write_bytes(whole.read_bytes()[: 15 * 1024])  # cut between two members
    assert _depth([str(tmp_path / "cut" / "00000.tar"), "-o", str(out)], saved_model) == 1
    assert "00000.tar: not a readable tar shard (it ends without the end-of-archive blocks: truncated)" in \
        capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())
    assert _depth([str(tmp_path / "in"), str(tmp_path / "in" / "broken.tar"), "-o", str(out), "--export", "ply"],
                  saved_model) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: --export does not apply to tar shards (write files from a folder instead)"]
    assert _depth([str(tmp_path / "in"), str(tmp_path / "in" / "broken.tar"), "-o", str(out)], saved_model) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: {tmp_path / 'in'}: not a .tar shard (give shards and folders of images in separate runs)"
    assert _depth([str(whole), "-o", str(whole.parent)], saved_model) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {whole}: the output shard would replace it (give another -o folder)"]
    assert _depth([str(tmp_path / "s{3..1}.tar"), "-o", str(out)], saved_model) == 1
    assert "runs backwards" in capsys.readouterr().err


def test_brace_expansion_and_sample_keys():
    assert expand_braces("s/{00000..00002}.tar") == ["s/00000.tar", "s/00001.tar", "s/00002.tar"]
    assert expand_braces("{8..10}.tar") == ["8.tar", "9.tar", "10.tar"]
    assert expand_braces("a{0..1}-{00..01}.tar") == ["a0-00.tar", "a0-01.tar", "a1-00.tar", "a1-01.tar"]
    assert expand_braces("plain.tar") == ["plain.tar"]
    assert split_name("dir/0001.depth.png") == ("dir/0001", "depth.png")
    assert split_name("a.b/0001.jpg") == ("a.b/0001", "jpg")


def test_annotator_returns_the_clis_depth_columns(tmp_path, saved_model):
    """The callable Ray maps over batches, without Ray: the same depth.png bytes as the shard path."""
    from midas_diffusion.inference.annotator import DepthAnnotator

    (path,) = make_shards(tmp_path / "in", count=1)
    assert _depth([str(path), "-o", str(tmp_path / "out"), "--batch-size", "4"], saved_model) == 0
    written = {info.name: data for info, data in members(tmp_path / "out" / path.name)}
    rows = {}
    for info, data in members(path):
        key, field = split_name(info.name)
        rows.setdefault(key, {"__key__": key})[field] = data
    rows["bad"] = {"__key__": "bad", "jpg": b"junk"}
    batch = {col: [r.get(col, r.get("png")) for r in rows.values()] for col in ("__key__", "jpg", "txt")}
    annotator = DepthAnnotator(model=saved_model, device="cpu", dtype="float32", batch_size=4)
    result = annotator(batch)
    assert list(result["__key__"]) == ["000000000", "000000001", "000000002"]  # the bad row left out
    assert list(result["txt"]) == [rows[k]["txt"] for k in result["__key__"]]
    for key, png, settings in zip(result["__key__"], result["depth.png"], result["midas.json"]):
        assert png == written[f"{key}.depth.png"] and settings == written[f"{key}.midas.json"]
    with pytest.raises(ValueError, match="no image column"):
        annotator({"__key__": np.array(["a"]), "txt": [b"x"]})


def test_annotator_takes_a_named_bytes_column(saved_model, tmp_path):
    """Parquet-style rows: the image bytes in a column of any name (``image_column=``)."""
    from midas_diffusion.inference.annotator import DepthAnnotator

    (path,) = make_shards(tmp_path / "in", count=1)
    jpg = next(data for info, data in members(path) if info.name.endswith(".jpg"))
    annotator = DepthAnnotator(model=saved_model, device="cpu", dtype="float32", image_column="image")
    result = annotator({"image": [jpg], "caption": ["a photo"]})
    assert list(result["caption"]) == ["a photo"] and result["depth.png"][0].startswith(b"\x89PNG")


def test_accelerate_launch_two_processes_share_the_shards(tmp_path, saved_model):
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("accelerate")
    make_shards(tmp_path / "in", count=3)
    shards = str(tmp_path / "in" / "{00000..00002}.tar")
    threads = torch_threads(1)
    try:  # the single-process reference with one thread, as each launched process has
        assert _depth([shards, "-o", str(tmp_path / "single")], saved_model) == 0
    finally:
        torch_threads(threads)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               MIDAS_DIFFUSION_CPU_BF16="0", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.pop("WORLD_SIZE", None)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "midas_diffusion.cli"]
    run = subprocess.run([*launch, "depth", shards, "-o", str(tmp_path / "multi"), "--model", saved_model,
                          "--no-progress", "--dtype", "float32"], env=env, capture_output=True, text=True,
                         timeout=180, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("shards: ") == 1 and "written 3" in run.stdout and "on 2 processes" in run.stdout
    for name in ("00000.tar", "00001.tar", "00002.tar"):
        assert (tmp_path / "multi" / name).read_bytes() == (tmp_path / "single" / name).read_bytes(), name


def torch_threads(count):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    return before
