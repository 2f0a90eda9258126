"""dtype="auto" and dtype names: the same answers on CPUs with and without native bf16 (mocked)."""

import pytest
import torch

import midas_diffusion as md
from midas_diffusion.inference import precision
from midas_diffusion.cli.main import build_parser
from midas_diffusion.inference.precision import BF16_INACCURATE, FP16_OVERFLOW, auto_dtype, resolve_dtype


@pytest.fixture(params=[True, False], ids=["cpu_bf16", "cpu_no_bf16"])
def bf16_cpu(request, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: request.param)
    return request.param


def test_auto_on_the_cpu_follows_the_bf16_units(bf16_cpu, monkeypatch):
    expected = torch.bfloat16 if bf16_cpu else torch.float32
    assert resolve_dtype("auto", "cpu", "dpt_beit_base_384") == expected
    assert resolve_dtype("auto", torch.device("cpu"), None) == expected
    monkeypatch.setattr(precision, "BF16_INACCURATE", frozenset({"dpt_beit_base_384"}))
    assert resolve_dtype("auto", "cpu", "dpt_beit_base_384") == torch.float32  # refused where bf16 is visible


def test_auto_on_gpus(monkeypatch):
    monkeypatch.setattr(precision, "_cuda_has_bf16", lambda device: True)
    assert auto_dtype("cuda", "dpt_beit_large_512") == torch.float16
    assert auto_dtype("cuda:1", "midas_v21_small_256") == torch.float16
    for name in FP16_OVERFLOW:  # the original run.py warns that Swin overflows in fp16
        assert auto_dtype("cuda", name) == torch.bfloat16
        assert auto_dtype("mps", name) == torch.float32
    monkeypatch.setattr(precision, "_cuda_has_bf16", lambda device: False)
    assert auto_dtype("cuda", "dpt_swin2_tiny_256") == torch.float32
    assert auto_dtype("mps", "dpt_levit_224") == torch.float16
    assert auto_dtype("xpu", "dpt_levit_224") == torch.float32


def test_names_and_bad_values():
    assert resolve_dtype("float16") == resolve_dtype("fp16") == resolve_dtype(torch.float16) == torch.float16
    assert resolve_dtype("bf16") == resolve_dtype("torch.bfloat16") == torch.bfloat16
    assert resolve_dtype(None) == resolve_dtype("float32") == torch.float32
    for bad in ("float8", torch.int8, 16):
        with pytest.raises(ValueError, match="dtype"):
            resolve_dtype(bad)


def test_parse_dtype_keeps_auto_for_later():
    from midas_diffusion.inference.precision import parse_dtype

    assert parse_dtype("auto") == parse_dtype(" Auto ") == "auto"
    assert parse_dtype("bf16") == parse_dtype("bfloat16") == torch.bfloat16 and parse_dtype(None) == torch.float32
    with pytest.raises(ValueError, match="dtype must be"):
        parse_dtype("float8")


def test_resolve_device_checks_what_this_machine_has(monkeypatch):
    from midas_diffusion.inference import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    assert devices.resolve_device("auto") == devices.resolve_device(None) == torch.device("cpu")
    assert devices.resolve_device(" cpu ") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"'cuda:1' is not available here \(0 CUDA device"):
        devices.resolve_device("cuda:1")
    with pytest.raises(ValueError, match="no MPS"):
        devices.resolve_device("mps")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        devices.resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.resolve_device("auto") == torch.device("cuda") and devices.resolve_device("cuda:1").index == 1
    with pytest.raises(ValueError, match="2 CUDA device"):
        devices.resolve_device("cuda:2")


def test_the_fallback_list_names_zoo_models():
    assert set(BF16_INACCURATE) <= set(md.list_models()) and set(FP16_OVERFLOW) <= set(md.list_models())


def test_every_model_has_a_measured_bf16_error_and_auto_follows_the_rule():
    from midas_diffusion.inference.precision import CPU_BF16_ERROR, Bf16Error, bf16_error_is_visible

    assert set(CPU_BF16_ERROR) == set(md.list_models())
    assert BF16_INACCURATE == {name for name, error in CPU_BF16_ERROR.items() if bf16_error_is_visible(error)}
    assert all(0 <= e.mean <= e.p99 <= e.max for e in CPU_BF16_ERROR.values())
    assert not bf16_error_is_visible(Bf16Error(max=0.03, p99=0.02, mean=0.005))  # a rounding at an edge
    assert bf16_error_is_visible(Bf16Error(max=0.03, p99=0.02, mean=0.011))  # the average pixel moves
    assert bf16_error_is_visible(Bf16Error(max=0.09, p99=0.06, mean=0.005))  # 1 pixel in 100 is off
    assert bf16_error_is_visible(Bf16Error(max=0.2, p99=0.02, mean=0.005))  # an artifact


def test_estimator_to_auto(bf16_cpu):
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    est.to(dtype="auto")
    assert est.dtype == (torch.bfloat16 if bf16_cpu else torch.float32)
    out = est(torch.rand(3, 30, 40))
    assert out.disparity.dtype == torch.float32 and torch.isfinite(out.disparity).all()
    est.to("cpu", "float32")
    assert est.dtype == torch.float32


def test_depth_command_defaults_to_auto():
    args = build_parser().parse_args(["depth", "in.png", "-o", "out"])
    assert args.dtype == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["depth", "in.png", "-o", "out", "--dtype", "float8"])


def test_cpu_probe_answers_without_parsing_proc(monkeypatch):
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)
    assert isinstance(precision.cpu_has_native_bf16(), bool)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "1")
    assert precision.cpu_has_native_bf16() and resolve_dtype("auto", "cpu", "dpt_levit_224") in (torch.bfloat16, torch.float32)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
    assert not precision.cpu_has_native_bf16() and resolve_dtype("auto", "cpu") == torch.float32


def test_the_models_command_shows_what_auto_picks_on_a_bf16_cpu(capsys):
    from midas_diffusion.cli import main

    assert main(["models"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.split()
            and line.split()[0] in md.list_models()}
    assert set(rows) == set(md.list_models())
    for name, cells in rows.items():
        assert ("fp32" if name in BF16_INACCURATE else "bf16") in cells


def test_the_clis_cast_the_weights_once(tmp_path, monkeypatch):
    """On a bf16 CPU, `depth --dtype float32` and `evaluate` (float32) run the saved float32 weights
    exactly: loading must not round them through bf16 ("auto") before the requested cast."""
    from midas_diffusion.cli import depth as cli, evaluate as evaluate_cli

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    model = md.create_model("midas_v21_small_256", reduced=True)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    parser = build_parser()
    depth_args = parser.parse_args(["depth", "x.png", "-o", str(tmp_path), "--model", "midas_v21_small_256",
                                    "--checkpoint", str(tmp_path / "w.pt"), "--dtype", "float32", "--no-progress"])
    monkeypatch.setattr(md.DepthEstimator, "from_pretrained", _tiny(md.DepthEstimator.from_pretrained, tmp_path / "w.pt"))
    eval_args = parser.parse_args(["evaluate", "--model", "midas_v21_small_256", "--dataset", "nyu", "--root", "."])
    for est in (cli.load_estimator(depth_args, "cpu"), evaluate_cli.load_estimator("midas_v21_small_256", eval_args)):
        assert est.dtype == torch.float32
        assert all(torch.equal(a, b) for a, b in zip(est.model.state_dict().values(), model.state_dict().values()))


def _tiny(from_pretrained, checkpoint):
    """from_pretrained building the tiny model of the family, with the test's tiny checkpoint."""
    return lambda name, checkpoint_=None, **kwargs: from_pretrained(name, checkpoint_ or kwargs.pop("checkpoint", None)
                                                                   or checkpoint, **{**kwargs, "reduced": True})
