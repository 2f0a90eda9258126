"""``midas-diffusion install-comfyui PATH`` and ``install-a1111 PATH``: write the small host shims.

Registered with ``midas_diffusion``'s CLI through the ``midas_diffusion.cli`` entry-point group.
The shims import this package, so run the command with the Python that runs the host (where
midas-diffusion is installed).
"""

from __future__ import annotations

import sys
from pathlib import Path

COMFY_SHIM = '''"""midas-diffusion nodes for ComfyUI (written by `midas-diffusion install-comfyui`)."""
try:
    from midas_diffusion.ui.comfyui import register_pack
except ImportError as exc:
    raise ImportError(f"midas-diffusion is not installed in this Python ({exc}); pip install 'midas-diffusion[diffusers]'") from None

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = register_pack(__file__)
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
'''

A1111_SHIM = '''"""midas-diffusion for AUTOMATIC1111 (written by `midas-diffusion install-a1111`)."""
try:
    from midas_diffusion.ui.a1111 import register
except ImportError as exc:
    raise ImportError(f"midas-diffusion is not installed in this Python ({exc}); pip install 'midas-diffusion[diffusers]'") from None

register(__file__)
'''


def _older_shims(text: str) -> tuple:
    """The same shim as earlier releases wrote it (before 0.2: top-level ``ui`` package; before the
    once-per-process entries: ``load_nodes()`` / ``register()``): an upgrade replaces them."""
    before = text
    for new, old in (("import register_pack", "import load_nodes"), ("register_pack(__file__)", "load_nodes()"),
                     ("register(__file__)", "register()")):
        before = before.replace(new, old)
    return before, text.replace("from midas_diffusion.ui.", "from ui."), before.replace("from midas_diffusion.ui.", "from ui.")


def write_outputs(path: Path, text: str, overwrite: bool) -> Path:
    """Write a shim; an existing file is replaced when it is ours (this or an older release's) or with
    ``overwrite``; a shim the user edited is kept and reported."""
    if path.exists() and path.read_text() not in (text, *_older_shims(text)) and not overwrite:
        raise FileExistsError(f"{path} exists and differs (use --overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def install_comfyui(comfy_path, overwrite: bool = False) -> Path:
    """Write ``COMFY/custom_nodes/midas_diffusion_nodes/__init__.py``; returns its path."""
    root = Path(comfy_path).expanduser()
    if not (root / "custom_nodes").is_dir():
        raise ValueError(f"{root} is not a ComfyUI folder (it has no custom_nodes/)")
    return write_outputs(root / "custom_nodes" / "midas_diffusion_nodes" / "__init__.py", COMFY_SHIM, overwrite)


def install_a1111(webui_path, overwrite: bool = False) -> Path:
    """Write ``WEBUI/extensions/midas-diffusion/scripts/midas_diffusion_a1111.py``; returns its path."""
    root = Path(webui_path).expanduser()
    if not (root / "extensions").is_dir():
        raise ValueError(f"{root} is not an AUTOMATIC1111 webui folder (it has no extensions/)")
    return write_outputs(root / "extensions" / "midas-diffusion" / "scripts" / "midas_diffusion_a1111.py", A1111_SHIM, overwrite)


def _run(install):
    def run(args) -> int:
        try:
            path = install(args.path, overwrite=args.overwrite)
        except (ValueError, FileExistsError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {path} (it imports midas-diffusion from {sys.executable})")
        return 0

    return run


def add_parsers(sub) -> None:
    for command, install, what in (("install-comfyui", install_comfyui, "ComfyUI folder"),
                                   ("install-a1111", install_a1111, "AUTOMATIC1111 webui folder")):
        p = sub.add_parser(command, help=f"install the midas-diffusion shim into a {what}")
        p.add_argument("path", help=what)
        p.add_argument("--overwrite", action="store_true", help="replace an existing, different shim")
        p.set_defaults(func=_run(install))
