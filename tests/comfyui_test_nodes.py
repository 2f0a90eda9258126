"""Test-only ComfyUI nodes, loaded into the real engine by ``test_comfyui_engine.py`` (copied into a
custom-nodes folder of the test's own). Not part of the node pack.

* ``MidasTestProbe`` reports, as UI output in ``/history``, what reached it (the depth model's
  serial number, network passes, tensor shapes) and what is held in memory: the node pack's live
  models (``comfyui.model_cache()``), which depth models seen by earlier probes are still alive,
  and how many of the node pack's models ComfyUI's model management holds. The serial number
  counts the distinct depth model objects probes have seen (1, 2, ...); unlike ``id()``, it is
  never given again to a new object after the old one is freed.
* ``MidasTestCancelAt`` passes an image through and presses Cancel (ComfyUI's
  ``interrupt_current_processing``) once a later node's progress bar reaches ``steps``: the
  progress hook it installs goes through ComfyUI's public ``set_progress_bar_global_hook``.
"""

import itertools
import math
import weakref

_SEEN = weakref.WeakKeyDictionary()  # depth model -> its serial number (test bookkeeping, keeps nothing)
_SERIALS = itertools.count(1)


def _held_by_comfy():
    """How many models of the node pack ComfyUI's model management holds as loaded."""
    import comfy.model_management as mm

    from midas_diffusion.ui.comfyui_host import HeldModules

    return sum(1 for m in mm.current_loaded_models
               if m.model is not None and isinstance(m.model.model, HeldModules))


class MidasTestProbe:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "probe"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"label": ("STRING", {"default": "probe"})},
                "optional": {"image": ("IMAGE",), "mask": ("MASK",), "depth_model": ("MIDAS_DEPTH_MODEL",)}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return math.nan  # runs on every prompt

    def probe(self, label, image=None, mask=None, depth_model=None):
        from midas_diffusion.ui import comfyui

        report = {"label": label, "live": comfyui.model_cache().counts(), "held_by_comfy": _held_by_comfy()}
        for name, tensor in (("image", image), ("mask", mask)):
            if tensor is not None:
                report[name] = {"shape": list(tensor.shape), "dtype": str(tensor.dtype),
                                "min": float(tensor.min()), "max": float(tensor.max()), "mean": float(tensor.mean())}
        if depth_model is not None:
            if depth_model not in _SEEN:
                _SEEN[depth_model] = next(_SERIALS)
            report["depth_model"] = {"class": type(depth_model).__name__, "serial": _SEEN[depth_model],
                                     "model_name": depth_model.model_name, "device": str(depth_model.device),
                                     "forward_count": depth_model.forward_count}
        report["alive_seen"] = sorted(_SEEN.values())
        return {"ui": {"probe": [report]}}


class MidasTestCancelAt:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "arm"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "steps": ("INT", {"default": 1, "min": 1, "max": 10000})}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return math.nan

    def arm(self, image, steps):
        import comfy.model_management as mm
        import comfy.utils

        shown = comfy.utils.PROGRESS_BAR_HOOK
        fired = []

        def hook(value, total, preview, prompt_id=None, node_id=None):
            shown(value, total, preview, prompt_id=prompt_id, node_id=node_id)  # the UI sees this step
            if value >= steps and not fired:
                fired.append(value)
                mm.interrupt_current_processing(True)  # the user presses Cancel now
                comfy.utils.set_progress_bar_global_hook(shown)

        comfy.utils.set_progress_bar_global_hook(hook)
        return (image,)


NODE_CLASS_MAPPINGS = {"MidasTestProbe": MidasTestProbe, "MidasTestCancelAt": MidasTestCancelAt}
NODE_DISPLAY_NAME_MAPPINGS = {"MidasTestProbe": "test probe", "MidasTestCancelAt": "test cancel at"}
