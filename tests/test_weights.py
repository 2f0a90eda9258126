"""Download logic against a local HTTP server on 127.0.0.1 (no internet)."""

import hashlib
import http.server
import threading
from functools import partial

import pytest

from midas_diffusion.loading.weights import DownloadError, download_file


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        data = open(path, "rb").read()
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_verifies_and_resumes(server, tmp_path):
    root, url = server
    payload = bytes(range(256)) * 4000
    (root / "w.pt").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "w.pt"
    dest.parent.mkdir()
    (dest.parent / "w.pt.part").write_bytes(payload[:1000])  # an interrupted earlier download
    assert download_file(f"{url}/w.pt", dest, digest, progress=False) == dest
    assert dest.read_bytes() == payload and not (dest.parent / "w.pt.part").exists()


def test_checksum_mismatch_removes_the_file(server, tmp_path):
    root, url = server
    (root / "w.pt").write_bytes(b"tampered")
    dest = tmp_path / "w.pt"
    with pytest.raises(DownloadError, match="does not match"):
        download_file(f"{url}/w.pt", dest, "0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "w.pt.part").exists()


def test_http_error_is_reported(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match="failed"):
        download_file(f"{url}/missing.pt", tmp_path / "m.pt", progress=False)
