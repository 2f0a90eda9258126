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


def test_only_the_ray_modules_import_ray():
    """``ray`` is an optional extra: midas_diffusion/ray.py and cli/depth_ray.py import it (inside functions),
    no other module does, and importing those two (or the CLI) loads no Ray."""
    allowed = {"midas_diffusion.ray", "midas_diffusion.cli.depth_ray"}
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {target}" for path in _our_files() if _module_name(path) not in allowed
             for target, _, line in _imports(path) if target.split(".")[0] == "ray"]
    assert not wrong, "\n".join(wrong)
    loaded = _modules_after("import midas_diffusion.ray, midas_diffusion.cli.depth_ray, midas_diffusion.cli.main")
    assert "ray" not in loaded


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


# --- the layers inside midas_diffusion/ (each folder's __init__ docstring says the same) ---------------------
# layer -> the layers its modules may import; the package root (``__init__`` and the documented re-export
# modules) may import every layer but ``cli``; nothing outside ``cli`` imports ``cli`` but the CLI plugins of
# pipelines/ and ui/ (their ``cli.py``/``*_cli.py``), and those only its public names.
LAYERS = {
    "zoo": {"zoo"},
    "loading": {"zoo", "loading"},
    "io": {"io"},
    "inference": {"zoo", "loading", "io", "inference"},
    "evaluation": {"zoo", "loading", "io", "inference", "evaluation"},
    "cli": {"zoo", "loading", "io", "inference", "evaluation", "cli"},
}


def _module_name(path: Path) -> str:
    """The installed module name of a file under one of the three roots."""
    for folder, package in FOLDERS.items():
        try:
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
        except ValueError:
            continue
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        return ".".join((package, *parts))
    raise ValueError(path)


def _imports(path: Path):
    """(imported module, imported names, line) for every import in a file, relative ones resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = [a.name for a in node.names]
            # ``from .x import y`` may import a module y: record it as its own import too
            yield target, names, node.lineno
            for name in names:
                yield f"{target}.{name}", [], node.lineno


def _our_files():
    for folder in FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _is_module(name: str) -> bool:
    parts = name.split(".")
    for folder, package in sorted(FOLDERS.items(), key=lambda item: -len(item[1])):  # the longest package first
        pparts = package.split(".")
        if parts[: len(pparts)] == pparts:
            rest = parts[len(pparts):]
            base = ROOT / folder / Path(*rest) if rest else ROOT / folder
            return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()
    return False


def test_core_layers_import_only_the_layers_below():
    """zoo <- loading <- inference <- evaluation <- cli, io beside them: checked on every import statement."""
    core, wrong = ROOT / "midas_diffusion", []
    for path in sorted(core.rglob("*.py")):
        parts = path.relative_to(core).parts
        layer = parts[0] if len(parts) > 1 else None
        allowed = LAYERS[layer] if layer else set(LAYERS) - {"cli"}
        for target, _, line in _imports(path):
            tparts = target.split(".")
            if tparts[0] != "midas_diffusion" or len(tparts) < 2 or not _is_module(".".join(tparts[:2])):
                continue
            if tparts[1] in LAYERS and tparts[1] not in allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({layer or 'root'}) imports {target}")
            elif tparts[1] not in LAYERS and layer is not None:  # a root re-export module, from inside a layer
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports the root module {target}; import its layer")
    assert not wrong, "\n".join(wrong)


def test_only_cli_plugins_import_the_cli():
    wrong = []
    for path in _our_files():
        module = _module_name(path)
        if module.startswith("midas_diffusion.cli"):
            continue
        for target, names, line in _imports(path):
            if target == "midas_diffusion.cli" or target.startswith("midas_diffusion.cli."):
                if not (path.stem == "cli" or path.stem.endswith("_cli")):
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_names():
    wrong = []
    for path in _our_files():
        for target, names, line in _imports(path):
            if not target.startswith("midas_diffusion") or not _is_module(target):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {private} from {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    """Between our modules, counting imports inside functions too (a lazy import is still a dependency)."""
    graph = {}
    for path in _our_files():
        module = _module_name(path)
        edges = graph.setdefault(module, set())
        for target, _, _ in _imports(path):
            if _is_module(target) and target != module:
                edges.add(target)
    # a package's own __init__ importing its submodules is not a circle with them
    def is_parent(a, b):
        return b.startswith(a + ".")
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if is_parent(nxt, node) or is_parent(node, nxt):
                continue
            if state.get(nxt) == "open":
                circle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_at_most_eight_files_at_the_core_root():
    files = sorted(p.name for p in (ROOT / "midas_diffusion").glob("*.py"))
    assert len(files) <= 8, files
