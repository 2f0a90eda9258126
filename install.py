"""AUTOMATIC1111 / Forge run this file when the extension is installed and at each start (``launch``
is the webui's own module): it installs what midas-diffusion needs and the webui does not have,
with the webui's pip helpers. torch and torchvision stay as the webui has them (nothing here asks
for them; timm's own dependency on torch is satisfied by the webui's). The diffusers pipelines are
not used in the webui, so diffusers is not installed here. Run without the webui (ComfyUI-Manager
runs a node pack's install.py as well), it does nothing.
"""

import importlib.metadata
import sys

try:
    import launch  # the webui's
except ImportError:  # not a webui: ComfyUI-Manager runs a node pack's install.py too, after
    sys.exit(0)  # requirements.txt has installed everything the nodes need

# the same specifiers as pyproject.toml (tests/test_host_clone.py checks)
REQUIREMENTS = ("timm>=1.0", "safetensors>=0.4", "tqdm>=4.60", "trimesh>=4.0")


def _too_old(name: str, minimum: str) -> bool:
    try:
        from packaging.version import Version

        return Version(importlib.metadata.version(name)) < Version(minimum)
    except Exception:  # no packaging, or no metadata: being importable is enough
        return False


for requirement in REQUIREMENTS:
    name, _, minimum = requirement.partition(">=")
    if not launch.is_installed(name) or _too_old(name, minimum):
        launch.run_pip(f'install "{requirement}"', f"midas-diffusion requirement: {requirement}")
