"""Video depth: frames in, per-frame maps out, sequence normalization, scene cuts, resume."""

import numpy as np
import pytest
import torch

import midas_diffusion as md
from midas_diffusion.io import writers
from midas_diffusion.cli import main
from midas_diffusion.inference.temporal import SequenceNormalization, SequenceNormalizer, flicker, thumbnail

from reference import recipe_init_

av = pytest.importorskip("av")
from midas_diffusion.io.video import read_frames, write_video  # noqa: E402


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    return str(est.save_pretrained(tmp_path_factory.mktemp("model") / "model"))


def _static_scene(n=12, h=48, w=64, noise=6, cut_at=None, seed=0):
    """A still textured scene plus sensor noise per frame (a second scene from ``cut_at``)."""
    rng = np.random.default_rng(seed)
    scenes = [rng.integers(0, 255, (h, w, 3)).astype(np.float64) for _ in range(2)]
    scenes[1] = 255 - scenes[1] * 0.5
    frames = []
    for i in range(n):
        base = scenes[1 if cut_at is not None and i >= cut_at else 0]
        frames.append(np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8))
    return frames


def test_video_frames_roundtrip_lossless(tmp_path):
    frames = _static_scene(5)
    path = write_video(tmp_path / "v.mkv", frames, fps=10, codec="ffv1")
    back = list(read_frames(path))
    assert [i for i, _ in back] == list(range(5))
    assert all(np.array_equal(a, b) for a, (_, b) in zip(frames, back))


def test_sequence_normalization_flickers_less_than_per_frame(tmp_path):
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    frames = _static_scene(12)
    raws = est(frames).per_image("raw")

    def normalized(window):  # the same range definition, over 1 frame or over a window
        norm = SequenceNormalizer(SequenceNormalization(window=window))
        maps = []
        for i, (frame, raw) in enumerate(zip(frames, raws)):
            norm.observe(i, thumbnail(torch.from_numpy(frame).permute(2, 0, 1).float() / 255))
            norm.add(i, raw)
            maps.append(norm.normalize(i, raw))
        return maps

    per_frame, sequence = normalized(1), normalized(8)
    # the per-pixel noise of the prediction stays; the jitter of the per-frame range goes
    assert flicker(sequence) < flicker(per_frame), (flicker(sequence), flicker(per_frame))
    assert all(m.min() >= 0 and m.max() <= 1 for m in sequence)


def test_scene_cut_resets_the_window():
    norm = SequenceNormalizer(SequenceNormalization(window=4, percentile=None))
    frames = _static_scene(6, cut_at=3)
    for i, f in enumerate(frames):
        cut = norm.observe(i, thumbnail(torch.from_numpy(f).permute(2, 0, 1).float() / 255))
        assert cut == (i == 3)
        norm.add(i, torch.full((4, 4), float(i)) + torch.arange(16.0).reshape(4, 4))
    assert norm.range_at(5) == (4.0, 19.0)  # only frames 3..5: mean of mins 3,4,5 and maxs 18,19,20


def test_video_cli_resume_gives_the_same_frames(tmp_path, saved_model, monkeypatch, capsys):
    video = write_video(tmp_path / "in" / "clip.mkv", _static_scene(9, cut_at=5), fps=10, codec="ffv1")
    args = ["depth", str(video), "--model", saved_model, "--no-progress", "--window", "3", "--batch-size", "2", "-o"]
    assert main([*args, str(tmp_path / "ref")]) == 0
    assert "done 9, skipped 0" in capsys.readouterr().out
    ref = sorted(p.name for p in (tmp_path / "ref" / "clip").iterdir())
    assert ref == [f"{i:06d}.png" for i in range(9)]

    out = tmp_path / "out"
    real = writers.WRITERS["png16"]
    calls = []

    class Killed(BaseException):
        pass

    def dies(path, d):
        calls.append(path)
        if len(calls) == 5:
            raise Killed()
        return real(path, d)

    monkeypatch.setitem(writers.WRITERS, "png16", dies)
    with pytest.raises(Killed):
        main([*args, str(out)])
    monkeypatch.setitem(writers.WRITERS, "png16", real)
    assert len(list((out / "clip").iterdir())) == 4
    # delete one in the middle too: resume must redo frames 1, 4..8 with the right windows
    (out / "clip" / "000001.png").unlink()
    assert main([*args, str(out)]) == 0
    assert "done 6, skipped 3" in capsys.readouterr().out
    for name in ref:
        assert (out / "clip" / name).read_bytes() == (tmp_path / "ref" / "clip" / name).read_bytes(), name
