"""What the ComfyUI nodes ask of their host: memory management, a progress bar and Cancel.

ComfyUI owns the memory of the models our nodes load, the way it owns its own models:

* **Lifetime.** A loaded model is held by ComfyUI's caches only (the loader's output in its output
  cache, a node's pipeline by the node object in its object cache); ``POST /free`` with
  ``free_memory`` (the "Free model and node cache" button) and a loader output that leaves the
  output cache drop it. The nodes find a model again only while ComfyUI still holds it (a
  ``ModelCache(weak=True)`` in ``comfyui.py``).
* **Devices.** Each model is wrapped in a ComfyUI ``ModelPatcher`` that it owns
  (``attach_patcher``), and ``load_to_device`` registers it with ``load_models_gpu`` before each run:
  ComfyUI moves it onto its device, makes room for it by offloading other models, and can offload
  it (``unload_models``, "Unload models", another model needing the GPU).
* **Process memory.** glibc keeps the heap pages of freed tensors; the first garbage collection
  after one of our models is freed (ComfyUI collects right after ``/free``) hands them back to the
  system with ``malloc_trim`` (``return_memory_when_freed``).

``comfy`` is imported inside functions only; outside ComfyUI (tests, other hosts) there is no
patcher, no progress bar and no Cancel, and every helper here does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import threading
import weakref
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

import torch

PATCHER_ATTRIBUTE = "comfy_patcher"  # where a model keeps its ModelPatcher (it owns it)


class HeldModules(torch.nn.Module):
    """The torch modules of one loaded model (a depth network, a pipeline's components), registered
    under their names, not copied, so that ComfyUI's ``ModelPatcher`` moves and counts them as one
    model. The attributes ``ModelPatcher`` keeps on its model live here, not on our networks."""

    def __init__(self, modules: Mapping[str, torch.nn.Module], device: torch.device):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self.device = device  # where the weights are now (ModelPatcher reads and updates it)


def offload_device(load_device: torch.device) -> torch.device:
    """Where a model waits between runs: ComfyUI's offload device (the CPU unless ComfyUI keeps
    everything on the GPU); outside ComfyUI the model stays on ``load_device``."""
    try:
        import comfy.model_management as mm
    except ImportError:
        return torch.device(load_device)
    return torch.device(mm.unet_offload_device())


def attach_patcher(owner: Any, modules: Mapping[str, torch.nn.Module], load_device: torch.device) -> Optional[Any]:
    """Give ``owner`` (a ``DepthEstimator``, a pipeline) a ComfyUI ``ModelPatcher`` over ``modules``
    that runs them on ``load_device``; the owner keeps it (as ``owner.comfy_patcher``), so it lives
    exactly as long as the model. An owner that already has one for that device keeps it. Returns
    the patcher, or None outside ComfyUI."""
    try:
        import comfy.model_management as mm
        from comfy.model_patcher import ModelPatcher
    except ImportError:
        return None
    load_device = torch.device(load_device)
    patcher = getattr(owner, PATCHER_ATTRIBUTE, None)
    if patcher is not None and torch.device(patcher.load_device) == load_device:
        return patcher
    now = next((p.device for m in modules.values() for p in m.parameters()), load_device)
    patcher = ModelPatcher(HeldModules(modules, now), load_device=load_device,
                           offload_device=torch.device(mm.unet_offload_device()))
    setattr(owner, PATCHER_ATTRIBUTE, patcher)
    return patcher


def load_to_device(owners: Iterable[Any]) -> None:
    """Before a run: ComfyUI loads the models of ``owners`` onto their device (whole: our networks
    cannot run partly offloaded), freeing room by offloading others, and counts them as in use.
    Owners without a patcher (outside ComfyUI) are skipped."""
    patchers = [p for p in (getattr(o, PATCHER_ATTRIBUTE, None) for o in owners if o is not None) if p is not None]
    if not patchers:
        return
    import comfy.model_management as mm

    mm.load_models_gpu(patchers, force_full_load=True)


# ------------------------------------------------------------------------------------ process memory
_trim_lock = threading.Lock()
_trim_pending = False


@functools.lru_cache(maxsize=None)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, or None; looked up on first use (``find_library`` may start a
    subprocess, which importing the node pack should not)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return getattr(libc, "malloc_trim", None)
    except OSError:
        return None



def _mark_freed() -> None:
    global _trim_pending
    with _trim_lock:
        _trim_pending = True


def _trim_after_collection(phase: str, info: Dict[str, int]) -> None:
    """``gc.callbacks`` hook: after a collection that follows a model's release, give freed heap
    pages back to the system (a freed model's tensors are released by then)."""
    global _trim_pending
    if phase != "stop" or not _trim_pending:
        return
    with _trim_lock:
        _trim_pending = False
    _malloc_trim()(0)


_watched: "weakref.WeakSet[Any]" = weakref.WeakSet()


def return_memory_when_freed(model: Any) -> None:
    """When ``model`` is freed, return its memory to the system at the next garbage collection
    (glibc only; elsewhere the allocator decides). Calling it again for the same model does nothing."""
    if _malloc_trim() is None or model in _watched:
        return
    _watched.add(model)
    weakref.finalize(model, _mark_freed)
    if _trim_after_collection not in gc.callbacks:
        gc.callbacks.append(_trim_after_collection)


# ------------------------------------------------------------------------------------ progress, Cancel
class Progress:
    """ComfyUI's progress bar for ``total`` steps of the running node, and its Cancel button:
    ``check()`` raises ComfyUI's ``InterruptProcessingException`` once the user pressed Cancel.
    Outside ComfyUI both do nothing."""

    def __init__(self, total: int):
        try:
            import comfy.model_management as mm
            import comfy.utils
        except ImportError:
            self._bar, self._check = None, None
            return
        self._bar = comfy.utils.ProgressBar(int(total))
        self._check = mm.throw_exception_if_processing_interrupted

    def check(self) -> None:
        if self._check is not None:
            self._check()

    def set(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update_absolute(int(done))

    def step_callback(self, first: int, steps: int) -> Callable:
        """A diffusers ``callback_on_step_end`` for one image whose ``steps`` denoising steps are
        steps ``first`` to ``first + steps`` of the bar; it also stops at Cancel."""

        def on_step_end(pipe, step: int, timestep, callback_kwargs):
            self.check()
            run = getattr(pipe, "num_timesteps", None) or steps  # depth2img runs strength x steps
            self.set(first + round((step + 1) * steps / run))
            return callback_kwargs

        return on_step_end
