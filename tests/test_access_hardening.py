"""The access-service client does not trust its server: URL schemes, redirects, secrets, grant folder."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from laion_fmri import access
from laion_fmri.errors import AccessServiceError, SourceUnavailableError
from laion_fmri.stores._presigned import PresignedStore, check_url
from laion_fmri.stores.base import redact

SECRET = "X-Amz-Signature=deadbeefcafe"


class _Redirector(BaseHTTPRequestHandler):
    target = ""

    def log_message(self, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def redirector() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.org/x", "http://example.org/x?sig=1", "https:///nohost",
    "gopher://127.0.0.1/x",
])
def test_only_https_urls_are_opened(url: str) -> None:
    with pytest.raises(AccessServiceError, match="only https"):
        check_url(url, "a file")


def test_https_and_loopback_http_are_allowed() -> None:
    assert check_url("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=1", "k")
    assert check_url("http://127.0.0.1:9000/k", "k") and check_url("http://localhost/k", "k")


def test_a_file_url_in_a_grant_is_never_read(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("local secret")
    manifest = access.Manifest(terms_version="1", files=(
        access.RemoteFile(name="task-images_stimuli.h5", size=12, sha256=None),))
    store = PresignedStore(access.AccessClient("http://127.0.0.1:9"), manifest, lambda: "lfm_x")
    store._urls = {"stimuli/task-images_stimuli.h5": f"file://{secret_file}?{SECRET}"}
    with pytest.raises(AccessServiceError) as err:
        store.open("stimuli/task-images_stimuli.h5")
    assert SECRET not in str(err.value) and "deadbeef" not in str(err.value)


def test_cross_host_redirects_are_refused(redirector: ThreadingHTTPServer) -> None:
    port = redirector.server_address[1]
    _Redirector.target = f"http://127.0.0.2:{port}/api/v1/manifest?{SECRET}"
    client = access.AccessClient(f"http://127.0.0.1:{port}")
    with pytest.raises(AccessServiceError, match="redirected") as err:
        client.manifest()
    assert "deadbeef" not in str(err.value)


def test_http_service_url_only_on_loopback() -> None:
    with pytest.raises(AccessServiceError):
        access.access_url("http://example.org")
    assert access.access_url("https://example.org/") == "https://example.org"


def test_signed_urls_never_appear_in_messages() -> None:
    manifest = access.Manifest(terms_version="1", files=(
        access.RemoteFile(name="task-images_stimuli.h5", size=12, sha256=None),))
    store = PresignedStore(access.AccessClient("http://127.0.0.1:9"), manifest, lambda: "lfm_x")
    store._urls = {"stimuli/task-images_stimuli.h5": f"http://127.0.0.1:9/k?{SECRET}"}
    with pytest.raises(SourceUnavailableError) as err, \
            store.open("stimuli/task-images_stimuli.h5") as dl:  # nothing listens on port 9
        b"".join(dl)
    assert "deadbeef" not in str(err.value)
    assert redact(f"see https://h/k?{SECRET}&b=2 now") == "see https://h/k?<redacted> now"


def test_grant_folder_is_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LAION_FMRI_REQUEST_ID", raising=False)
    path = access.save_grant("lfm_secret", server_url="https://example.org")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert access.load_grant("https://example.org") == "lfm_secret"
    os.chmod(path.parent, 0o777)  # someone else could swap the grant file
    with pytest.raises(AccessServiceError, match="chmod 700"):
        access.load_grant("https://example.org")
    with pytest.raises(AccessServiceError, match="chmod 700"):
        access.save_grant("lfm_other", server_url="https://example.org")
