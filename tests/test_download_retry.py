"""Retries against a deliberately faulty S3-style server on loopback.

moto always answers well, so these tests run a tiny HTTP server that speaks
just enough of S3 (path-style GET/HEAD with ``Range`` and ``If-Match``) and
misbehaves on request: 5xx answers, or a connection cut in the middle of a body.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.download.transfer import backoff_delay, fetch_objects
from laion_fmri.remote import S3Store

BUCKET = "faulty"
KEY = "derivatives/glmsingle-tedana/sub-03/ses-01/func/big.h5"
BODY = os.urandom(3 * (1 << 20) + 777)
ETAG = hashlib.md5(BODY).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FaultyServer

    def log_message(self, *args: object) -> None:
        return

    def _headers(self, status: int, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", f'"{ETAG}"')
        self.send_header("Last-Modified", formatdate(0, usegmt=True))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def do_HEAD(self) -> None:
        self._headers(200, len(BODY))

    def do_GET(self) -> None:
        rng = self.headers.get("Range")
        self.server.log.append((rng, self.headers.get("If-Match")))
        if self.server.statuses:
            status = self.server.statuses.pop(0)
            body = b"<Error><Code>ServiceUnavailable</Code></Error>"
            self._headers(status, len(body))
            self.wfile.write(body)
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        data = BODY[start:]
        if self.server.corrupt:
            self.server.corrupt -= 1
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]  # same size, bad bytes
        if rng:
            self._headers(206, len(data), {"Content-Range": f"bytes {start}-{len(BODY) - 1}/{len(BODY)}"})
        else:
            self._headers(200, len(data))
        if self.server.cuts:
            cut = self.server.cuts.pop(0)
            self.wfile.write(data[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(data)


class _FaultyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses: list[int] = []
        self.corrupt = 0  # how many GETs answer with one flipped byte
        self.cuts: list[int] = []  # bytes sent by successive GETs before the connection drops
        self.log: list[tuple[str | None, str | None]] = []


@pytest.fixture
def faulty() -> Iterator[_FaultyServer]:
    server = _FaultyServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _store(server: _FaultyServer) -> S3Store:
    return S3Store(BUCKET, endpoint_url=f"http://127.0.0.1:{server.server_address[1]}")


def test_5xx_retried_then_clear_error(faulty: _FaultyServer, tmp_path: Path) -> None:
    faulty.statuses = [503] * 100
    store = _store(faulty)
    with pytest.warns(UserWarning, match="Giving up"):
        report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False, retries=2)
    reason = report.failed[KEY]
    assert KEY in reason and "3 tries" in reason and "503" in reason
    assert len(faulty.log) >= 3  # at least one GET per try of ours
    target = layout.local_path(tmp_path, KEY)
    assert not target.exists()
    assert not layout.partial_path(target).exists()  # the error body was never written


def test_transient_5xx_recovers(faulty: _FaultyServer, tmp_path: Path) -> None:
    store = _store(faulty)
    info = store.head(KEY)
    faulty.statuses = [503] * 4  # more than obstore's own retries absorb
    report = fetch_objects([info], store, tmp_path, progress=False, retries=3)
    assert report.downloaded == [KEY]
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY


def test_connection_cut_mid_body_is_survived(faulty: _FaultyServer, tmp_path: Path) -> None:
    store = _store(faulty)
    faulty.cuts = [(1 << 20) + 5000]
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False, chunk_size=1 << 20)
    assert report.downloaded == [KEY] and not report.failed
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY
    assert faulty.log[0] == (None, None)
    assert all(r[0] and r[0].startswith("bytes=") for r in faulty.log[1:])


def test_repeated_cuts_resume_from_the_partial_file(faulty: _FaultyServer, tmp_path: Path) -> None:
    # More cuts in a row than the client library retries on its own: our retry
    # loop takes over and continues from the .part file with Range + If-Match.
    store = _store(faulty)
    faulty.cuts = [(1 << 20) + 5000] + [1000] * 5
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False, chunk_size=1 << 20)
    assert report.downloaded == [KEY] and not report.failed
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY
    ours = [r for r in faulty.log if r[1] == f'"{ETAG}"']  # only our resume sends If-Match
    assert ours and ours[0][0].startswith("bytes=") and ours[0][0].endswith("-")
    resumed_at = int(ours[0][0][len("bytes="):-1])
    assert (1 << 20) <= resumed_at <= (1 << 20) + 5000  # where the .part file ended


def test_backoff_grows_with_jitter() -> None:
    samples = [backoff_delay(4) for _ in range(200)]
    assert max(samples) <= 0.5 * 2**3 and min(samples) >= 0
    assert len(set(samples)) > 150  # jittered, not a fixed schedule
    assert max(backoff_delay(30) for _ in range(50)) <= 20.0


def test_corrupted_body_is_caught_and_fetched_again(faulty: _FaultyServer, tmp_path: Path) -> None:
    store = _store(faulty)
    faulty.corrupt = 1
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False)
    assert report.downloaded == [KEY]
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY
    assert len(faulty.log) == 2 and faulty.log[1] == (None, None)  # restarted from byte 0


def test_corruption_every_time_fails_with_reason(faulty: _FaultyServer, tmp_path: Path) -> None:
    store = _store(faulty)
    faulty.corrupt = 100
    with pytest.warns(UserWarning, match="corrupted"):
        report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False, retries=1)
    assert "MD5" in report.failed[KEY] and KEY in report.failed[KEY]
    target = layout.local_path(tmp_path, KEY)
    assert not target.exists() and not layout.partial_path(target).exists()


def test_checksum_off_checks_sizes_only(faulty: _FaultyServer, tmp_path: Path) -> None:
    from laion_fmri.download.manifest import Manifest

    store = _store(faulty)
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False, checksum=False)
    assert report.downloaded == [KEY]
    with Manifest(tmp_path) as m:
        assert m.get(KEY)["md5"] is None  # type: ignore[index]
