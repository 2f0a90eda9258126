"""AUTOMATIC1111 / Forge entry of a clone of this repository ("Extensions -> Install from URL",
or ``git clone`` into ``extensions/<any name>``): registers the depth_midas31_* preprocessors
(sd-webui-controlnet's registry, or Forge's) and the "MiDaS depth" tab (``midas_diffusion.ui.a1111``).

``ui/checkout.py`` makes ``midas_diffusion`` importable from the clone without adding it to
``sys.path``, unless the webui has imported a copy already (a pip-installed one through an
``install-a1111`` shim); the extension registers once and one log line says which copy.
"""

import importlib.util
import os


def _register():
    script = os.path.abspath(__file__)
    root = os.path.dirname(os.path.dirname(script))
    spec = importlib.util.spec_from_file_location("midas_diffusion_clone_loader", os.path.join(root, "ui", "checkout.py"))
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)  # not kept in sys.modules: midas_diffusion.ui.checkout is the real one
    copy = loader.import_clone(root)
    from midas_diffusion.ui.a1111 import register

    register(script, copy.describe())


_register()
