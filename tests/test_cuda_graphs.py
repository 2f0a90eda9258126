"""CUDA-graph replay: off the GPU it is the plain forward; on a GPU (when there is one) it equals it."""

import pytest
import torch
from torch import nn

from midas_diffusion.inference.cuda_graphs import GraphedForward


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1)).eval()


def test_cpu_inputs_and_autograd_run_the_network_directly():
    net = _net()
    graphed = GraphedForward(net, warmup=1)
    x = torch.rand(1, 3, 16, 24)
    with torch.inference_mode():
        for _ in range(3):
            torch.testing.assert_close(graphed(x), net(x), atol=0, rtol=0)
    assert graphed.replays == 0 and graphed.shapes == []
    y = graphed(x.requires_grad_())  # autograd on: never a graph
    assert y.requires_grad


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="warmup"):
        GraphedForward(_net(), warmup=0)
    with pytest.raises(ValueError, match="max_graphs"):
        GraphedForward(_net(), max_graphs=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run this file on a GPU machine)")
def test_replay_equals_the_forward_per_shape_on_cuda():
    net = _net().cuda()
    graphed = GraphedForward(net, warmup=1, max_graphs=2)
    with torch.inference_mode():
        for shape in [(1, 3, 32, 32), (1, 3, 32, 32), (1, 3, 32, 32), (2, 3, 16, 48), (2, 3, 16, 48), (2, 3, 16, 48)]:
            x = torch.rand(shape, device="cuda")
            torch.testing.assert_close(graphed(x), net(x), atol=0, rtol=0)
        assert graphed.replays == 2 and len(graphed.shapes) == 2
        graphed(torch.rand(1, 3, 8, 8, device="cuda"))
        graphed(torch.rand(1, 3, 8, 8, device="cuda"))  # a third shape evicts the oldest
        assert len(graphed.shapes) == 2


def test_estimator_opt_in_keeps_results():
    from midas_diffusion import DepthEstimator

    est = DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    image = torch.rand(3, 40, 56)
    before = est(image).disparity
    est.enable_cuda_graphs(warmup=1)
    assert est.at_resolution(320)._graphed is est._graphed  # views share it
    torch.testing.assert_close(est(image).disparity, before, atol=0, rtol=0)
    assert est._graphed.replays == 0  # on the CPU nothing is recorded
    est.disable_cuda_graphs()
    assert est._graphed is None
