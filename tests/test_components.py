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


def test_loading_arguments_win_over_the_stored_ones(tmp_path):
    """``from_pretrained(folder, max_pixels=N, cache_size=M)`` keeps N and M, not the folder's values;
    without them the stored values come back; a pipeline's ``from_pretrained`` passes max_pixels on."""
    from tiny_sd import sd15_components, tiny_controlnet, tiny_depth_estimator

    from midas_diffusion.pipelines import MidasControlNetPipeline

    est = tiny_depth_estimator()
    est.set_max_pixels(5_000_000)
    est.save_pretrained(tmp_path / "est")
    image = np.zeros((48, 80, 3), np.uint8)
    loaded = MidasDepthEstimator.from_pretrained(tmp_path / "est", max_pixels=1000, cache_size=3)
    assert (loaded.config.max_pixels, loaded.estimator.max_pixels, loaded.config.cache_size) == (1000, 1000, 3)
    with pytest.raises(ValueError, match="over the limit"):
        loaded.estimate(image)
    stored = MidasDepthEstimator.from_pretrained(tmp_path / "est")
    assert (stored.config.max_pixels, stored.estimator.max_pixels, stored.config.cache_size) == (5_000_000, 5_000_000, 16)
    unlimited = MidasDepthEstimator.from_pretrained(tmp_path / "est", max_pixels=None)
    assert unlimited.config.max_pixels is None and unlimited.estimator.max_pixels is None
    MidasControlNetPipeline(**sd15_components(), controlnet=tiny_controlnet(), depth_estimator=est).save_pretrained(
        tmp_path / "pipe")
    pipe = MidasControlNetPipeline.from_pretrained(tmp_path / "pipe", max_pixels=1000)
    assert (pipe.depth_estimator.config.max_pixels, pipe.depth_estimator.estimator.max_pixels) == (1000, 1000)
    assert MidasControlNetPipeline.from_pretrained(tmp_path / "pipe").depth_estimator.config.max_pixels == 5_000_000
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        est.set_max_pixels(0)
