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
