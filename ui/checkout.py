"""Import midas-diffusion from a clone of the repository that a host made (ComfyUI-Manager's
``custom_nodes/<name>``, A1111's "Install from URL" ``extensions/<name>``), without pip.

The repository keeps ``midas_diffusion/``, ``pipelines/`` and ``ui/`` at its root; installed, they
are ``midas_diffusion``, ``midas_diffusion.pipelines`` and ``midas_diffusion.ui`` (package-dir in
pyproject.toml). The host entry files of a clone (the root ``__init__.py`` for ComfyUI,
``scripts/midas_diffusion_webui.py`` for A1111) load this file by its path and call
``import_clone(root)``: each of the three packages is made from its folder
(``importlib.util.spec_from_file_location`` with ``submodule_search_locations``) and registered in
``sys.modules`` under its real name, so everything below it imports as usual. Nothing is added to
``sys.path`` (no top-level ``ui`` or ``pipelines`` where the host's other extensions would see
them) and no import hook is installed.

One copy per process, the same whichever entry the host loads first: a copy imported already
(by a shim, or another entry) is used; else a pip-installed copy where this Python has one (the
log line says so: ``pip uninstall midas-diffusion`` makes the clone's own code run); else the clone.

Standard library only (and no dataclasses: the entries run this file without a ``sys.modules``
entry): it runs before ``midas_diffusion`` can be imported.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import NamedTuple

# (import name, folder in the repository), parents first
PACKAGES = (("midas_diffusion", "midas_diffusion"), ("midas_diffusion.pipelines", "pipelines"),
            ("midas_diffusion.ui", "ui"))


class Copy(NamedTuple):
    """Which midas-diffusion a host entry uses: ``source`` is ``"clone"`` (imported from the
    clone), ``"installed"`` (pip-installed in this Python) or ``"imported"`` (imported before in
    this process); ``path`` is the folder of its ``midas_diffusion`` package."""

    source: str
    path: str

    def describe(self) -> str:
        if self.source == "clone":
            return f"midas-diffusion from the clone at {Path(self.path).parent}"
        if self.source == "installed":
            return f"midas-diffusion installed in this Python at {self.path}, not the clone's copy"
        return f"midas-diffusion imported already from {self.path}"


def _package_folder(module) -> str:
    return str(Path(module.__file__).resolve().parent) if getattr(module, "__file__", None) else repr(module)


def _installed(root: Path):
    """The pip-installed copy (imported), or None; a ``midas_diffusion`` that is the clone's own
    folder (A1111 puts an extension's folder on ``sys.path`` while its scripts load) does not count."""
    spec = importlib.util.find_spec("midas_diffusion")
    if spec is None or spec.origin is None or Path(spec.origin).resolve().is_relative_to(root):
        return None
    try:
        current = importlib.util.find_spec("midas_diffusion.ui.checkout") is not None
    except ModuleNotFoundError:  # no midas_diffusion.ui (before 0.2)
        current = False
    if not current:
        raise ImportError(f"the midas-diffusion installed in this Python ({Path(spec.origin).parent}) is older than "
                          f"this clone ({root}): pip uninstall midas-diffusion (the clone then runs on its own), "
                          "or upgrade it")
    module = importlib.import_module("midas_diffusion")
    return Copy("installed", _package_folder(module))


def import_clone(root) -> Copy:
    """Make ``midas_diffusion`` (and its ``pipelines``, ``ui``) importable from the clone at
    ``root``, unless this process has a copy (imported already, or pip-installed); returns
    which copy is used. A
    failed import (e.g. a missing dependency) leaves nothing of the clone in ``sys.modules``."""
    if "midas_diffusion" in sys.modules:
        return Copy("imported", _package_folder(sys.modules["midas_diffusion"]))
    root = Path(root).resolve()
    installed = _installed(root)
    if installed is not None:
        return installed
    missing = [folder for _, folder in PACKAGES if not (root / folder / "__init__.py").is_file()]
    if missing:
        raise ImportError(f"{root} is not a midas-diffusion clone (no {', '.join(missing)} package)")
    try:
        for name, folder in PACKAGES:
            spec = importlib.util.spec_from_file_location(name, root / folder / "__init__.py",
                                                          submodule_search_locations=[str(root / folder)])
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
    except BaseException:
        for name in [n for n in sys.modules if n == "midas_diffusion" or n.startswith("midas_diffusion.")]:
            del sys.modules[name]
        raise
    return Copy("clone", str(root / "midas_diffusion"))
