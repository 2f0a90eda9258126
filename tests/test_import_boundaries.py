"""Dependencies point one way: midas_diffusion (core) <- midas_diffusion.pipelines <- midas_diffusion.ui.

The repository keeps ``pipelines/`` and ``ui/`` at its root; they install as
``midas_diffusion.pipelines`` and ``midas_diffusion.ui`` (pyproject ``package-dir``), so nothing of
ours lands as a generic top-level ``pipelines`` or ``ui`` beside ComfyUI or A1111.
"""

import ast
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
# repository folder -> the package it installs as
FOLDERS = {"midas_diffusion": "midas_diffusion", "pipelines": "midas_diffusion.pipelines", "ui": "midas_diffusion.ui"}


def _modules_after(statement: str, cwd=None) -> set:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd)
    return set(out.stdout.split())


def test_core_imports_no_diffusers_transformers_gradio_hosts_or_front_ends():
    loaded = _modules_after("import midas_diffusion")
    for forbidden in ("diffusers", "transformers", "gradio", "comfy", "modules", "pipelines", "ui",
                      "midas_diffusion.pipelines", "midas_diffusion.ui"):
        assert forbidden not in loaded, forbidden


def test_pipelines_import_neither_front_ends_nor_hosts():
    loaded = _modules_after("import midas_diffusion.pipelines")
    for forbidden in ("midas_diffusion.ui", "ui", "gradio", "comfy", "modules"):
        assert forbidden not in loaded, forbidden


def test_installed_names_are_namespaced(tmp_path):
    """Outside the repository, ``import ui`` and ``import pipelines`` find nothing of ours."""
    code = ("import importlib.util as u, midas_diffusion.pipelines, midas_diffusion.ui; "
            "print(u.find_spec('ui') is None, u.find_spec('pipelines') is None, "
            "midas_diffusion.pipelines.__name__, midas_diffusion.ui.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split() == ["True", "True", "midas_diffusion.pipelines", "midas_diffusion.ui"]


def test_every_package_folder_is_installed():
    """Each folder with an ``__init__.py`` under the three roots is listed in pyproject's packages."""
    if tomllib is None:
        return
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for folder, package in FOLDERS.items():
        assert config["package-dir"][package] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            assert ".".join((package, *relative)) in config["packages"], init


def test_every_package_points_one_way():
    """Source check: the core imports neither pipelines nor ui; pipelines never imports ui."""
    rules = {"midas_diffusion": ("pipelines", "ui", "diffusers", "gradio", "midas_diffusion.pipelines",
                                 "midas_diffusion.ui"),
             "pipelines": ("ui", "gradio", "midas_diffusion.ui")}
    for folder, forbidden in rules.items():
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.ImportFrom) and node.level > 0 and folder == "pipelines":
                    # relative imports inside pipelines/ stay inside it (level 1) or reach the core (level 2)
                    names = ["midas_diffusion.ui"] if (node.module or "").startswith("ui") and node.level == 2 else []
                for name in names:
                    parts = name.split(".")
                    assert parts[0] not in forbidden and ".".join(parts[:2]) not in forbidden, \
                        f"{path.relative_to(ROOT)} imports {name}"
