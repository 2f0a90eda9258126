"""The repository cloned as a host extension: the files at its root that ComfyUI and A1111/Forge
use (``__init__.py``, ``requirements.txt``, ``install.py``, ``scripts/``).

The A1111 test follows "Extensions -> Install from URL" (clone into ``extensions/``, run
``install.py`` with the webui's ``launch`` helpers, load ``scripts/*.py`` the way
``modules/scripts.py`` does) in a Python where midas-diffusion was never pip-installed
(``comfyui_engine.python_without_midas_diffusion``), so only the clone can provide it. The real
ComfyUI engine loads a clone in ``test_comfyui_engine.py``.
"""

import json
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import comfyui_engine

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {re.split(r"[<>=!~\[ ]", r)[0].lower().replace("_", "-"): r for r in specs}


def _requirements_txt():
    lines = (line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines())
    return [line for line in lines if line]


def _install_py_requirements(is_installed):
    """Run install.py as the webui does (``launch`` importable); returns its ``run_pip`` commands."""
    requests = []
    launch = types.ModuleType("launch")
    launch.is_installed = is_installed
    launch.run_pip = lambda command, desc=None, live=False: requests.append(command)
    saved = sys.modules.get("launch")
    sys.modules["launch"] = launch
    try:
        code = compile((ROOT / "install.py").read_text(), str(ROOT / "install.py"), "exec")
        namespace = {"__name__": "install", "__file__": str(ROOT / "install.py")}
        exec(code, namespace)  # noqa: S102  (the webui runs it as a script)
    finally:
        if saved is None:
            sys.modules.pop("launch", None)
        else:
            sys.modules["launch"] = saved
    return requests, namespace["REQUIREMENTS"]


def test_requirements_are_pyprojects_and_never_torch():
    known = _pyproject_requirements()
    _, webui = _install_py_requirements(lambda package: True)
    for requirement in [*_requirements_txt(), *webui]:
        name = re.split(r"[<>=!~\[ ]", requirement)[0].lower().replace("_", "-")
        assert name not in ("torch", "torchvision") and known.get(name) == requirement, requirement


def test_install_py_asks_the_webuis_pip_for_what_is_missing_only():
    requests, webui = _install_py_requirements(lambda package: package != "trimesh")
    assert requests == ['install "trimesh>=4.0"']
    requests, _ = _install_py_requirements(lambda package: False)
    assert requests == [f'install "{r}"' for r in webui] and not any("torch" in r for r in requests)


def test_install_py_does_nothing_outside_a_webui(tmp_path):
    """ComfyUI-Manager runs a node pack's install.py with ComfyUI's Python (no ``launch`` module)."""
    run = subprocess.run([sys.executable, str(ROOT / "install.py")], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0 and not run.stdout and not run.stderr


def test_setuptools_does_not_package_the_root():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert all(p == "midas_diffusion" or p.startswith("midas_diffusion.") for p in config["tool"]["setuptools"]["packages"])
    comfy = config["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["Icon"].endswith("assets/icon.png")
    assert (ROOT / "assets" / "icon.png").is_file() and config["project"]["urls"]["Repository"]


def test_root_init_outside_comfyui_imports_nothing(tmp_path):
    """pytest imports the repository root as a package; outside ComfyUI its __init__ is inert."""
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('pack', {str(ROOT / '__init__.py')!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print(m.NODE_CLASS_MAPPINGS, sorted(n for n in sys.modules if n.startswith(('midas', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "{} []"


WEBUI = r'''
import importlib.util, json, os, sys, types
from pathlib import Path

ext, tests = Path(sys.argv[1]), sys.argv[2]


def load_module(path):  # modules/script_loading.py: executed under its basename
    spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


requests = []
launch = types.ModuleType("launch")  # modules/launch_utils.py
launch.is_installed = lambda package: importlib.util.find_spec(package) is not None
launch.run_pip = lambda command, desc=None, live=False: requests.append(command)
sys.modules["launch"] = launch
load_module(ext / "install.py")

callbacks = {"ui_tabs": [], "before_ui": []}
modules = types.ModuleType("modules")
modules.__path__ = []
script_callbacks = types.ModuleType("modules.script_callbacks")
script_callbacks.on_ui_tabs = lambda callback, *, name=None: callbacks["ui_tabs"].append(callback)
script_callbacks.on_before_ui = lambda callback, *, name=None: callbacks["before_ui"].append(callback)
modules.script_callbacks = script_callbacks
sys.modules.update({"modules": modules, "modules.script_callbacks": script_callbacks})

before = list(sys.path)
for script in sorted((ext / "scripts").glob("*.py")):  # modules/scripts.py load_scripts
    sys.path = [str(ext)] + before
    try:
        load_module(script)
    finally:
        sys.path = before
generic = [n for n in ("ui", "pipelines", "tests", "bench") if n in sys.modules]

sys.path.insert(0, tests)
from test_ui_a1111 import _supported_preprocessor_module  # sd-webui-controlnet's registry (stub)

scripts = types.ModuleType("scripts")
scripts.__path__ = []
supported = _supported_preprocessor_module()
sys.modules.update({"scripts": scripts, "scripts.supported_preprocessor": supported})
for callback in callbacks["before_ui"]:
    callback()
import midas_diffusion, midas_diffusion.ui.a1111 as a1111

print(json.dumps(dict(pip=requests, core=midas_diffusion.__file__, ui=a1111.__file__, generic=generic,
                      tabs=[c is a1111.on_ui_tabs for c in callbacks["ui_tabs"]],
                      preprocessors=sorted(supported.Preprocessor.all_processors_by_name))))
'''


def test_a1111_installs_a_clone_in_a_python_without_midas_diffusion(tmp_path):
    python = comfyui_engine.python_without_midas_diffusion(tmp_path / "python")
    ext = comfyui_engine.clone_repository(tmp_path / "webui" / "extensions" / "midas-diffusion")
    (tmp_path / "webui.py").write_text(WEBUI)
    run = subprocess.run([str(python), str(tmp_path / "webui.py"), str(ext), str(ROOT / "tests")],
                         capture_output=True, text=True, cwd=tmp_path / "webui", env={"HF_HUB_OFFLINE": "1",
                                                                                       "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    log, result = run.stdout.strip().splitlines()[:-1], json.loads(run.stdout.strip().splitlines()[-1])
    assert result["pip"] == []  # this Python has every requirement
    assert Path(result["core"]).resolve().is_relative_to(ext.resolve())  # the clone's code, nothing else
    assert Path(result["ui"]).resolve() == (ext / "ui" / "a1111.py").resolve() and result["generic"] == []
    assert result["tabs"] == [True] and len(result["preprocessors"]) >= 13
    assert all(name.startswith("depth_midas31_") for name in result["preprocessors"])
    registered = [line for line in log if "registered by" in line]
    assert registered == [f"[midas-diffusion] registered by {ext / 'scripts' / 'midas_diffusion_webui.py'} "
                          f"(midas-diffusion from the clone at {ext.resolve()})"]
