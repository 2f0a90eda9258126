import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# dtype="auto" means float32 in the suite on every CPU, subprocesses included, so results do not depend
# on whether the CPU has bf16 units (tests of "auto" mock precision.cpu_has_native_bf16)
os.environ.setdefault("MIDAS_DIFFUSION_CPU_BF16", "0")
# backend="auto" is torch in the suite (no background OpenVINO exports of full-size test models, results
# that do not depend on whether OpenVINO is installed); the OpenVINO tests opt in
os.environ.setdefault("MIDAS_DIFFUSION_OPENVINO", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _isolated_weights_dir(tmp_path, monkeypatch):
    """No test may see (or fill) a real weights folder."""
    monkeypatch.setenv("MIDAS_DIFFUSION_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_estimators():
    """``get(name)``: a reduced zoo model with the reference recipe's weights, in float32, built once per
    test module."""
    import midas_diffusion as md
    from reference import recipe_init_

    cache = {}

    def get(name):
        if name not in cache:
            torch.manual_seed(0)
            est = md.DepthEstimator.from_pretrained(name, reduced=True, dtype=torch.float32)
            recipe_init_(est.model)
            cache[name] = est
        return cache[name]

    return get
