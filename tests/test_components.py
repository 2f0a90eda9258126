"""The depth estimator as a diffusers component, and loading that reproduces results exactly."""

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from midas_diffusion import list_models  # noqa: E402
from midas_diffusion.pipelines import MidasDepthEstimator  # noqa: E402
from midas_diffusion.pipelines.loading import ALIGNMENT, realign_weights  # noqa: E402
from reference import recipe_init_  # noqa: E402


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_round_trips_as_a_component(name, tmp_path):
    est = MidasDepthEstimator(model_name=name, reduced=True)
    recipe_init_(est.net)
    est.save_pretrained(tmp_path)
    back = MidasDepthEstimator.from_pretrained(tmp_path)
    assert back.model_name == name
    image = (np.random.default_rng(0).random((40, 52, 3)) * 255).astype(np.uint8)
    torch.testing.assert_close(back.estimate(image)[0], est.estimate(image)[0], atol=0, rtol=0)


def test_realign_copies_only_unaligned_cpu_tensors():
    class Pipe:
        def __init__(self, **components):
            self.components = components

    storage = torch.arange(70, dtype=torch.float32)
    linear = torch.nn.Linear(4, 4)
    aligned = linear.bias
    linear.weight = torch.nn.Parameter(storage[6:22].view(4, 4))  # 24 bytes past an aligned start
    assert linear.weight.data_ptr() % ALIGNMENT
    bias_ptr = aligned.data_ptr()
    realign_weights(Pipe(net=linear, name="not a module"))
    assert linear.weight.data_ptr() % ALIGNMENT == 0 and linear.bias.data_ptr() == bias_ptr
    assert torch.equal(linear.weight, storage[6:22].view(4, 4))
