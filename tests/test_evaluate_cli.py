"""``midas-diffusion evaluate`` end to end on synthetic mini-datasets with tiny random-weight models
(``from_pretrained(name, reduced=True)``, saved to folders named like the zoo models): every
layout, resuming after an interruption, the table, JSON and CSV."""

import csv
import json

import pytest

import eval_fixtures as fx
import midas_diffusion as md
from midas_diffusion.cli import evaluate as evaluate_cli
from midas_diffusion.cli import main
from reference import recipe_init_


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny random models saved as folders; their names are the labels (dpt_large_384 is the
    default reference)."""
    root = tmp_path_factory.mktemp("models")
    for seed, name in enumerate(("midas_v21_small_256", "dpt_large_384")):
        est = md.DepthEstimator.from_pretrained(name, reduced=True, resolution=64)  # small inputs: fast
        recipe_init_(est.model, seed=seed)  # random weights that give a varied prediction
        est.save_pretrained(root / name)
    return root


@pytest.fixture()
def both(models):
    return f"{models / 'midas_v21_small_256'},{models / 'dpt_large_384'}"


@pytest.fixture()
def small(models):
    return str(models / "midas_v21_small_256")


def _run(*args):
    return main(["evaluate", "--no-progress", *args])


@pytest.mark.parametrize("dataset", sorted(fx.BUILDERS))
def test_every_layout_end_to_end(tmp_path, dataset, capsys, both):
    fx.BUILDERS[dataset](tmp_path / "data")
    out = tmp_path / "results.json"
    assert _run("--model", both, "--dataset", dataset, "--root", str(tmp_path / "data"), "--out", str(out)) == 0
    printed = capsys.readouterr().out
    label = evaluate_cli.DATASET_LABELS[dataset]
    assert f"{label} / midas_v21_small_256: 3 scored now, 0 reused" in printed
    header = next(line for line in printed.splitlines() if line.startswith("model"))
    metric = {"diw": "WHDR", "eth3d": "AbsRel", "sintel": "AbsRel", "folder": "AbsRel"}.get(dataset, "δ>1.25 %")
    assert f"{label} {metric}" in header and "Imp %" in header and "FPS" in header
    summary = json.loads(out.read_text())
    assert summary["datasets"] == [dataset] and summary["reference_found"]
    small = summary["models"]["midas_v21_small_256"]
    entry = small["datasets"][dataset]
    assert entry["samples"] == 3 and entry["skipped"] == 0 and entry["value"] >= 0
    assert summary["models"]["dpt_large_384"]["improvement_pct"] == pytest.approx(0.0)
    expected_imp = 100 * (1 - entry["value"] / summary["models"]["dpt_large_384"]["datasets"][dataset]["value"])
    assert small["improvement_pct"] == pytest.approx(expected_imp)
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [(r["label"], r["dataset"]) for r in rows] == [("midas_v21_small_256", dataset), ("dpt_large_384", dataset)]
    assert len(list((tmp_path / "results.samples" / dataset).rglob("*.json"))) == 6


def test_resume_after_limit_and_after_a_kill(tmp_path, capsys, monkeypatch, small):
    fx.folder(tmp_path / "data", n=4)
    out = tmp_path / "r.json"
    common = ["--model", small, "--dataset", "folder", "--root", str(tmp_path / "data"),
              "--out", str(out)]
    assert _run(*common, "--limit", "2") == 0
    assert "folder / midas_v21_small_256: 2 scored now, 0 reused" in capsys.readouterr().out
    assert json.loads(out.read_text())["models"]["midas_v21_small_256"]["datasets"]["folder"]["samples"] == 2
    assert _run(*common) == 0
    assert "2 scored now, 2 reused" in capsys.readouterr().out
    assert _run(*common) == 0
    assert "0 scored now, 4 reused" in capsys.readouterr().out  # nothing left: the model is not even loaded

    # a run killed in the middle keeps what it finished, and only that
    store = tmp_path / "r.samples" / "folder" / "midas_v21_small_256"
    for path in sorted(store.iterdir())[:3]:
        path.unlink()
    real, calls = evaluate_cli._predict, []

    def killed_on_the_second_sample(est, image):
        calls.append(1)
        if len(calls) == 3:  # an untimed warm-up call, the first sample, then the kill
            raise KeyboardInterrupt
        return real(est, image)

    monkeypatch.setattr(evaluate_cli, "_predict", killed_on_the_second_sample)
    with pytest.raises(KeyboardInterrupt):
        _run(*common)
    assert len(list(store.glob("*.json"))) == 2 and not list(store.glob(".*"))  # no half-written files
    monkeypatch.setattr(evaluate_cli, "_predict", real)
    assert _run(*common) == 0
    printed = capsys.readouterr().out
    assert "2 scored now, 2 reused" in printed and "folder AbsRel" in printed


def test_a_changed_protocol_is_scored_again(tmp_path, capsys, small):
    fx.kitti(tmp_path / "data", n=2)
    common = ["--model", small, "--dataset", "kitti", "--root", str(tmp_path / "data"),
              "--out", str(tmp_path / "r.json")]
    assert _run(*common) == 0
    capsys.readouterr()
    assert _run(*common, "--depth-cap", "50") == 0
    assert "KITTI / midas_v21_small_256: 2 scored now, 0 reused" in capsys.readouterr().out
    entry = json.loads((tmp_path / "r.json").read_text())["models"]["midas_v21_small_256"]["datasets"]["kitti"]
    assert entry["protocol"]["depth_cap"] == 50.0 and entry["samples"] == 2


def test_several_datasets_and_runs_accumulate(tmp_path, capsys, both, small):
    fx.nyu_exported(tmp_path / "data" / "nyu")
    fx.eth3d(tmp_path / "data" / "eth3d")
    fx.diw(tmp_path / "later")
    out = str(tmp_path / "r.json")
    assert _run("--model", both, "--dataset", "nyu,eth3d", "--root", str(tmp_path / "data"), "--out", out) == 0
    assert _run("--model", small, "--dataset", "diw", "--root", str(tmp_path / "later"),
                "--out", out) == 0
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["datasets"] == ["diw", "eth3d", "nyu"]  # the paper's column order
    small = summary["models"]["midas_v21_small_256"]
    assert set(small["datasets"]) == {"nyu", "eth3d", "diw"}
    # the reference has no DIW score: Imp averages over the datasets both have
    ref = summary["models"]["dpt_large_384"]["datasets"]
    ratios = [small["datasets"][d]["value"] / ref[d]["value"] for d in ("nyu", "eth3d")]
    assert small["improvement_pct"] == pytest.approx(100 * (1 - sum(ratios) / 2))
    table = capsys.readouterr().out.split("model ")[-1]
    assert "DIW WHDR" in table and "ETH3D AbsRel" in table and "NYU δ>1.25 %" in table


def test_errors_name_the_problem(tmp_path, capsys, small):
    (tmp_path / "empty").mkdir()
    assert _run("--model", small, "--dataset", "sintel", "--root", str(tmp_path / "empty")) == 1
    assert "expected MPI Sintel: [training/]final/SCENE/frame_NNNN.png" in capsys.readouterr().err
    fx.folder(tmp_path / "data", n=1)
    assert _run("--model", "no_such_model", "--dataset", "folder", "--root", str(tmp_path / "data"),
                "--out", str(tmp_path / "r.json")) == 1
    assert "unknown model 'no_such_model'" in capsys.readouterr().err
    assert _run("--model", small, "--dataset", "diw", "--metric", "absrel", "--root",
                str(tmp_path / "data")) == 1
    assert "its only metric is whdr" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", "a", "--dataset", "nyu3", "--root", "."])
    assert "unknown dataset(s) ['nyu3']" in capsys.readouterr().err


def test_without_the_reference_imp_is_explained(tmp_path, capsys, small):
    fx.folder(tmp_path / "data", n=1)
    assert _run("--model", small, "--dataset", "folder", "--root", str(tmp_path / "data"),
                "--out", str(tmp_path / "r.json")) == 0
    printed = capsys.readouterr().out
    assert "Imp %: needs the reference model dpt_large_384" in printed
    assert json.loads((tmp_path / "r.json").read_text())["models"]["midas_v21_small_256"]["improvement_pct"] is None


def test_plot(tmp_path, capsys, both):
    fx.folder(tmp_path / "data", n=1)
    args = ["--model", both, "--dataset", "folder", "--root", str(tmp_path / "data"),
            "--out", str(tmp_path / "r.json"), "--plot", str(tmp_path / "speed.png")]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert _run(*args) == 1
        assert "pip install 'midas-diffusion[plot]'" in capsys.readouterr().err
    else:
        assert _run(*args) == 0
        assert (tmp_path / "speed.png").stat().st_size > 0
