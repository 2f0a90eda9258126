"""CUDA-graph replay of a depth network for repeated same-size calls (video, preview sliders, the app).

At batch 1 the small zoo models are bound by kernel launches, not by the GPU: one forward of
SwinV2-T or LeViT is a few hundred small kernels. Recording them once into a ``torch.cuda.CUDAGraph``
and replaying the graph costs one launch. ``GraphedForward`` does this per input shape and dtype:

* the first ``warmup`` calls of a shape run normally (they fill the networks' per-size caches, e.g.
  BEiT's relative-position tables, and let cuDNN pick its kernels);
* the next call records a graph (on a side stream, as PyTorch requires) and every later call of
  that shape copies its input into the graph's static input, replays, and returns a copy of the
  static output;
* at most ``max_graphs`` shapes are kept (least recently used dropped); anything not on CUDA, or
  while autograd records, runs the network directly.

Results equal the plain forward (the same kernels run in the same order). Opt in with
``DepthEstimator.enable_cuda_graphs()`` (or wrap a network yourself: ``GraphedForward(model)``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Tuple

import torch
from torch import nn

Key = Tuple[Tuple[int, ...], torch.dtype, torch.device, bool]


@dataclass
class _Graph:
    graph: "torch.cuda.CUDAGraph"
    static_input: torch.Tensor
    static_output: torch.Tensor


class GraphedForward:
    """Call ``model`` through recorded CUDA graphs, one per input shape (see the module docstring)."""

    def __init__(self, model: nn.Module, warmup: int = 2, max_graphs: int = 4):
        if warmup < 1:
            raise ValueError(f"warmup must be at least 1 (a graph is recorded after warm calls), got {warmup}")
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be at least 1, got {max_graphs}")
        self.model = model
        self.warmup = warmup
        self.max_graphs = max_graphs
        self._graphs: "OrderedDict[Key, _Graph]" = OrderedDict()
        self._calls: Dict[Key, int] = {}
        self.replays = 0  # how many calls were served by a graph

    @staticmethod
    def _key(x: torch.Tensor) -> Key:
        return tuple(x.shape), x.dtype, x.device, x.is_contiguous(memory_format=torch.channels_last)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cuda" or torch.is_grad_enabled():
            return self.model(x)
        key = self._key(x)
        entry = self._graphs.get(key)
        if entry is None:
            calls = self._calls[key] = self._calls.get(key, 0) + 1
            if calls <= self.warmup:
                return self.model(x)
            entry = self._record(x)
            self._graphs[key] = entry
            while len(self._graphs) > self.max_graphs:
                old, _ = self._graphs.popitem(last=False)
                self._calls.pop(old, None)
        self._graphs.move_to_end(key)
        entry.static_input.copy_(x)
        entry.graph.replay()
        self.replays += 1
        return entry.static_output.clone()

    def _record(self, x: torch.Tensor) -> _Graph:
        static_input = x.clone()
        stream = torch.cuda.Stream(device=x.device)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream):  # one more warm call on the side stream, as capture wants
            self.model(static_input)
        torch.cuda.current_stream(x.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = self.model(static_input)
        return _Graph(graph, static_input, static_output)

    def clear(self) -> None:
        """Drop every recorded graph (e.g. after moving or changing the network's weights)."""
        self._graphs.clear()
        self._calls.clear()

    @property
    def shapes(self):
        return [key[0] for key in self._graphs]
