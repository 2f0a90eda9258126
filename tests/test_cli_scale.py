"""The depth command at scale: resumable runs, data parallel runs, batching, file lists, tiles."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import midas_diffusion as md
from midas_diffusion.io import writers
from midas_diffusion.cli import main
from midas_diffusion.io.writers import read_uint16_png

from reference import recipe_init_

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    return str(est.save_pretrained(tmp_path_factory.mktemp("model") / "model"))


def _images(folder, n=10, sizes=((40, 64), (48, 64), (64, 40))):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(sub / f"img{i:02d}.png")
    return folder


def _outputs(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


class Killed(BaseException):
    """Stands in for the process being killed (not an error the command may catch)."""


def test_resumed_run_writes_exactly_the_missing_outputs(tmp_path, saved_model, monkeypatch, capsys):
    src = _images(tmp_path / "in", n=10)
    reference = tmp_path / "ref"
    assert main(["depth", str(src), "-o", str(reference), "--model", saved_model, "--no-progress", "--batch-size", "4"]) == 0
    capsys.readouterr()

    real_write, calls = writers.WRITERS["png16"], []

    def dies_on_the_fourth_write(path, disparity):
        calls.append(path)
        if len(calls) == 4:  # killed half-way through writing the 4th file
            with writers.atomic_path(path) as tmp:
                tmp.write_bytes(b"\x89PNG half a file")
                raise Killed()
        return real_write(path, disparity)

    monkeypatch.setitem(writers.WRITERS, "png16", dies_on_the_fourth_write)
    out = tmp_path / "out"
    with pytest.raises(Killed):
        main(["depth", str(src), "-o", str(out), "--model", saved_model, "--no-progress", "--batch-size", "4"])
    monkeypatch.setitem(writers.WRITERS, "png16", real_write)
    partial = _outputs(out)
    assert len(partial) == 3  # the three finished files and nothing of the fourth (no temporary file either)
    assert all(reference_bytes == (reference / name).read_bytes() for name, reference_bytes in partial.items())

    assert main(["depth", str(src), "-o", str(out), "--model", saved_model, "--no-progress", "--batch-size", "4"]) == 0
    assert "done 7, skipped 3 (existing), failed 0" in capsys.readouterr().out
    assert _outputs(out) == _outputs(reference)  # the same 10 files, byte for byte


def test_batch_size_and_read_ahead_give_the_same_files(tmp_path, saved_model):
    src = _images(tmp_path / "in", n=7)
    one, many = tmp_path / "one", tmp_path / "many"
    fp32 = ["--dtype", "float32"]  # "auto" is bf16 on CPUs with bf16 units: equal only to bf16 rounding
    assert main(["depth", str(src), "-o", str(one), "--model", saved_model, "--no-progress", "--read-ahead", "0", *fp32]) == 0
    assert main(["depth", str(src), "-o", str(many), "--model", saved_model, "--no-progress", "--batch-size", "3",
                 "--channels-last", *fp32]) == 0
    a, b = _outputs(one), _outputs(many)
    assert a.keys() == b.keys() and len(a) == 7
    for name in a:  # batched + channels_last: equal up to float rounding (at most 1 step of 65535)
        diff = np.abs(read_uint16_png(one / name).astype(int) - read_uint16_png(many / name).astype(int))
        assert diff.max() <= 1, name


def test_file_list_clashing_names_and_tiles(tmp_path, saved_model, capsys, monkeypatch):
    src = _images(tmp_path / "in", n=4)
    big = np.random.default_rng(1).integers(0, 255, (300, 420, 3), dtype=np.uint8)
    Image.fromarray(big).save(src / "big.png")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.txt").write_text("# inputs\nin/a/img01.png\n\nin/b/img02.png\nin/big.png\n")
    rc = main(["depth", "--files-from", "list.txt", "-o", "out", "--model", saved_model, "--no-progress", "--tiles"])
    assert rc == 0 and "done 3, skipped 0 (existing), failed 0" in capsys.readouterr().out
    assert sorted(_outputs(tmp_path / "out")) == ["in/a/img01.png", "in/b/img02.png", "in/big.png"]
    assert read_uint16_png(tmp_path / "out" / "in" / "big.png").shape == (300, 420)
    rc = main(["depth", str(src / "a" / "img01.png"), "in/b/../a/img01.png", str(src / "b" / "img02.png"),
               "-o", "out2", "--model", saved_model, "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1 and "same output name" in captured.err and "done 1, skipped 0 (existing), failed 2" in captured.out


def test_accelerate_launch_two_processes_gives_the_single_process_files(tmp_path, saved_model):
    pytest.importorskip("accelerate")
    src = _images(tmp_path / "in", n=10)
    # both runs in subprocesses with one thread each, so float kernels are the same
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    depth = ["depth", str(src), "--model", saved_model, "--no-progress", "--format", "png16,npy", "-o"]
    single = subprocess.run([sys.executable, "-m", "midas_diffusion.cli", *depth, str(tmp_path / "single")],
                            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    # accelerate's torchrun launcher; on a machine without GPUs it starts CPU processes (gloo)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "midas_diffusion.cli"]
    run = subprocess.run([*launch, *depth, str(tmp_path / "multi")], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "done 10, skipped 0 (existing), failed 0" in run.stdout and "on 2 processes" in run.stdout
    assert run.stdout.count("done ") == 1  # one summary, from the main process
    multi = _outputs(tmp_path / "multi")
    assert len(multi) == 20 and multi == _outputs(tmp_path / "single")


def test_read_ahead_with_several_threads_keeps_order_and_reports_failures():
    import threading

    from midas_diffusion.cli.batching import read_ahead

    threads = set()

    def load(item):
        threads.add(threading.current_thread().name)
        if item == 5:
            raise ValueError("bad file 5")
        return item * 10

    batches = [[0, 1, 2], [3, 4, 5], [6], [7, 8]]
    for depth, workers in ((0, 1), (1, 1), (2, 3)):
        got = list(read_ahead(batches, load, depth=depth, workers=workers))
        assert [b for b, _ in got] == batches
        values = [v for _, loaded in got for v in loaded]
        assert values[:5] == [0, 10, 20, 30, 40] and isinstance(values[5], ValueError) and values[6:] == [60, 70, 80]
    assert any(name.startswith("midas-read") for name in threads)
