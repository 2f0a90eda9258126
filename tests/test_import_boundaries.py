import subprocess
import sys


def _modules_after(statement: str) -> set:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_midas_diffusion_imports_no_diffusers_transformers_gradio_or_hosts():
    loaded = _modules_after("import midas_diffusion")
    for forbidden in ("diffusers", "transformers", "gradio", "comfy", "modules", "pipelines", "ui"):
        assert forbidden not in loaded, forbidden


def test_pipelines_import_neither_front_ends_nor_hosts():
    loaded = _modules_after("import pipelines")
    for forbidden in ("ui", "gradio", "comfy", "modules"):
        assert forbidden not in loaded, forbidden


def test_every_package_points_one_way():
    """Source check: midas_diffusion imports neither pipelines nor ui; pipelines never imports ui."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    rules = {"midas_diffusion": ("pipelines", "ui", "diffusers", "gradio"), "pipelines": ("ui", "gradio")}
    for package, forbidden in rules.items():
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    assert name.split(".")[0] not in forbidden, f"{path.relative_to(root)} imports {name}"
