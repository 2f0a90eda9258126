"""The OpenVINO path (MiDaS' openvino_midas_v21_small_256): export, run, match PyTorch."""

import numpy as np
import pytest
import torch

import midas_diffusion as md

from reference import recipe_init_

pytest.importorskip("openvino")
from midas_diffusion.inference.openvino_export import OpenVINODepthModel, export_openvino, openvino_estimator  # noqa: E402


def test_openvino_matches_pytorch_for_midas_v21_small(tmp_path):
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    xml = export_openvino(est, tmp_path / "ov")
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    ov_model = OpenVINODepthModel(tmp_path / "ov")
    for shape in [(1, 3, 256, 256), (2, 3, 192, 256)]:  # dynamic batch and size
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
        with torch.no_grad():
            ref = est.model(x)
        got = ov_model(x)
        assert got.shape == ref.shape and got.dtype == torch.float32
        assert (got - ref).abs().max() <= 1e-3 * (ref.max() - ref.min())

    ov_est = openvino_estimator(est, tmp_path / "ov")
    image = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    a, b = est(image), ov_est(image)
    assert (a.raw - b.raw).abs().max() <= 1e-3 * (a.raw.max() - a.raw.min())
    with pytest.raises(ValueError, match="CPU in float32"):
        ov_est.to(dtype=torch.bfloat16)
