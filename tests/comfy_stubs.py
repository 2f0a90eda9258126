"""Stand-ins for the parts of ComfyUI the node pack calls (``comfy.model_management``,
``comfy.model_patcher.ModelPatcher``, ``comfy.utils.ProgressBar``), recording what the nodes do
with them. ``install(monkeypatch)`` puts them in ``sys.modules``; the real engine is exercised by
``test_comfyui_engine.py``."""

from __future__ import annotations

import sys
import types
import weakref
from dataclasses import dataclass, field
from typing import List, Optional

import torch


class InterruptProcessingException(Exception):
    """ComfyUI's exception for Cancel."""


@dataclass
class ComfyRecord:
    """What the nodes asked of the host. Like ComfyUI, it holds patchers by weak reference only."""

    patcher_refs: list = field(default_factory=list)  # every ModelPatcher built
    load_refs: List[list] = field(default_factory=list)  # each load_models_gpu call: its patchers
    full_loads: List[bool] = field(default_factory=list)
    bars: list = field(default_factory=list)  # every ProgressBar built
    interrupt_checks: int = 0
    interrupt_at: Optional[int] = None  # the check that sees Cancel pressed (1-based)

    @property
    def patchers(self) -> list:
        """The patchers built so far that are still alive."""
        return [p for p in (r() for r in self.patcher_refs) if p is not None]

    @property
    def loads(self) -> List[list]:
        return [[r() for r in call] for call in self.load_refs]


def install(monkeypatch, interrupt_at: Optional[int] = None) -> ComfyRecord:
    record = ComfyRecord(interrupt_at=interrupt_at)

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device
            record.patcher_refs.append(weakref.ref(self))

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total, self.values = total, []
            record.bars.append(self)

        def update_absolute(self, value, total=None, preview=None):
            self.values.append(min(value, self.total))

    def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                        force_full_load=False):
        record.load_refs.append([weakref.ref(m) for m in models])
        record.full_loads.append(force_full_load)

    def throw_exception_if_processing_interrupted():
        record.interrupt_checks += 1
        if record.interrupt_checks == record.interrupt_at:
            raise InterruptProcessingException()

    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.load_models_gpu = load_models_gpu
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    mm.InterruptProcessingException = InterruptProcessingException
    patcher = types.ModuleType("comfy.model_patcher")
    patcher.ModelPatcher = ModelPatcher
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    comfy = types.ModuleType("comfy")
    comfy.__path__ = []
    comfy.model_management, comfy.model_patcher, comfy.utils = mm, patcher, utils
    for name, module in (("comfy", comfy), ("comfy.model_management", mm), ("comfy.model_patcher", patcher),
                         ("comfy.utils", utils)):
        monkeypatch.setitem(sys.modules, name, module)
    return record
