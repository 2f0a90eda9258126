"""ComfyUI node pack entry of a clone of this repository (ComfyUI-Manager "Install via Git URL",
the Comfy Registry, or ``git clone`` into ``ComfyUI/custom_nodes/<any name>``).

ComfyUI imports this file and reads ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS``.
``ui/checkout.py`` makes ``midas_diffusion`` (with ``midas_diffusion.pipelines`` and
``midas_diffusion.ui``) importable from this folder without adding it to ``sys.path``, unless the
process has imported a copy already (e.g. a pip-installed one through an ``install-comfyui``
shim); the nodes register once per process and one log line says which copy and from where.

Outside ComfyUI (no ``folder_paths`` / ``comfy`` imported, e.g. pytest importing the repository
root as a package) this file imports nothing and the mappings are empty.
"""

import importlib.util
import os
import sys

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}


def _register():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("midas_diffusion_clone_loader", os.path.join(here, "ui", "checkout.py"))
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)  # not kept in sys.modules: midas_diffusion.ui.checkout is the real one
    copy = loader.import_clone(here)
    from midas_diffusion.ui.comfyui import register_pack

    return register_pack(here, copy.describe())


if "folder_paths" in sys.modules and "comfy" in sys.modules:
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _register()
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
