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
        self.send_header("ETag", f'"{self.server.etag}"')
        self.send_header("Last-Modified", formatdate(0, usegmt=True))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.server.checksum and status in (200,) and self.headers.get("x-amz-checksum-mode"):
            self.send_header("x-amz-checksum-crc32c", self.server.checksum)
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
        first, _, last = rng.split("=")[1].partition("-") if rng else ("0", "", "")
        start = int(first)
        stop = int(last) + 1 if last else len(BODY)
        data = BODY[start:stop]
        if self.server.corrupt:
            self.server.corrupt -= 1
            at = int.from_bytes(os.urandom(2), "big") if self.server.corrupt_random else 100
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]  # same size, bad bytes
        if rng:
            self._headers(206, len(data), {"Content-Range": f"bytes {start}-{stop - 1}/{len(BODY)}"})
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
        self.corrupt_random = False  # flip a random byte (else always byte 100)
        self.etag = ETAG
        self.checksum: str | None = None  # x-amz-checksum-crc32c to send, if any
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
    faulty.statuses = [503] * 3  # no library retries below ours: each is one of our tries
    report = fetch_objects([info], store, tmp_path, progress=False, retries=3)
    assert report.downloaded == [KEY]
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY


def test_connection_cut_mid_body_is_survived(faulty: _FaultyServer, tmp_path: Path) -> None:
    # A small object is one GET; after a cut it is fetched again whole.
    store = _store(faulty)
    faulty.cuts = [(1 << 20) + 5000]
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False, chunk_size=1 << 20)
    assert report.downloaded == [KEY] and not report.failed
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY
    assert faulty.log == [(None, None), (None, None)]


def test_repeated_cuts_refetch_only_the_cut_range(faulty: _FaultyServer, tmp_path: Path) -> None:
    # In 1 MiB ranges: cuts in a row hit the first range; only that range is asked
    # for again (with If-Match), the other ranges are fetched once each.
    store = _store(faulty)
    faulty.cuts = [5000] * 4
    report = fetch_objects([store.head(KEY)], store, tmp_path, n_jobs=1, connections=1, progress=False,
                           chunk_size=1 << 16, part_size=1 << 20)
    assert report.downloaded == [KEY] and not report.failed
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY
    ranges = [r for r, _ in faulty.log]
    assert ranges.count(f"bytes=0-{(1 << 20) - 1}") == 5
    assert len(ranges) == 5 + 3  # four ranges, the first one tried five times
    assert all(m == f'"{ETAG}"' for _, m in faulty.log)
    assert len(BODY) <= report.bytes <= len(BODY) + 4 * 5000  # cut attempts count too


def test_backoff_grows_with_jitter() -> None:
    samples = [backoff_delay(4) for _ in range(200)]
    assert max(samples) <= 0.5 * 2**3 and min(samples) >= 0
    assert len(set(samples)) > 150  # jittered, not a fixed schedule
    assert max(backoff_delay(30) for _ in range(50)) <= 20.0


def test_corrupted_body_is_caught_and_fetched_again(faulty: _FaultyServer, tmp_path: Path) -> None:
    store = _store(faulty)
    faulty.corrupt = 1
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False)
    assert report.downloaded == [KEY] and not report.unverified
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY
    assert len(faulty.log) == 2 and faulty.log[1] == (None, None)  # restarted from byte 0


def test_corruption_every_time_fails_with_reason(faulty: _FaultyServer, tmp_path: Path) -> None:
    store = _store(faulty)
    faulty.corrupt = 100
    faulty.corrupt_random = True  # different damage each time: never "the same bytes twice"
    with pytest.warns(UserWarning, match="corrupted"):
        report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False, retries=2)
    assert "MD5" in report.failed[KEY] and KEY in report.failed[KEY]
    assert "fetching it again" not in report.failed[KEY]
    target = layout.local_path(tmp_path, KEY)
    assert not target.exists() and not layout.partial_path(target).exists()


def test_etag_that_is_not_an_md5_is_classified_after_two_identical_results(
    faulty: _FaultyServer, tmp_path: Path
) -> None:
    # 32 hex digits that are not the MD5 of the body (some S3-compatible servers):
    # two identical fetches, then it stops and says so instead of six retries.
    store = _store(faulty)
    faulty.etag = "0123456789abcdef0123456789abcdef"
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False)
    assert report.downloaded == [KEY] and not report.failed
    assert report.unverified == {KEY: "the server's ETag is not a content hash"}
    assert "not a content hash" in str(report)
    assert len(faulty.log) == 2
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY


def test_checksum_off_checks_sizes_only(faulty: _FaultyServer, tmp_path: Path) -> None:
    from laion_fmri.download.manifest import Manifest

    store = _store(faulty)
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False, checksum=False)
    assert report.downloaded == [KEY]
    with Manifest(tmp_path) as m:
        assert m.get(KEY)["md5"] is None  # type: ignore[index]


def test_opaque_etag_is_size_checked_and_said_once(faulty: _FaultyServer, tmp_path: Path) -> None:
    from laion_fmri.download import verify
    from laion_fmri.download._content import OPAQUE_ETAG

    store = _store(faulty)
    faulty.etag = "opaque-version-7"
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False)
    assert report.downloaded == [KEY] and report.unverified == {KEY: OPAQUE_ETAG}
    assert str(report).count("no content check was possible") == 1
    assert len(faulty.log) == 1  # never retried for an ETag that cannot be checked
    result = verify(data_dir=tmp_path)
    assert result.ok == [KEY] and result.size_only == [KEY]
    assert "size-checked only" in str(result)


def test_checksum_header_catches_damage_behind_an_opaque_etag(
    faulty: _FaultyServer, tmp_path: Path
) -> None:
    import base64

    from laion_fmri.download._content import crc_update
    from laion_fmri.download.manifest import Manifest

    store = _store(faulty)
    faulty.etag = "opaque-version-8"
    faulty.checksum = base64.b64encode(crc_update("crc32c", BODY).to_bytes(4, "big")).decode()
    faulty.corrupt = 1
    faulty.corrupt_random = True
    report = fetch_objects([store.head(KEY)], store, tmp_path, progress=False)
    assert report.downloaded == [KEY] and not report.unverified
    assert len(faulty.log) == 2  # the damaged body was caught by the CRC and fetched again
    assert layout.local_path(tmp_path, KEY).read_bytes() == BODY
    with Manifest(tmp_path) as m:
        assert m.get(KEY)["content"] == "checksum"  # type: ignore[index]


def test_verify_on_a_read_only_data_dir(
    faulty: _FaultyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from laion_fmri.download import _verify, verify

    store = _store(faulty)
    fetch_objects([store.head(KEY)], store, tmp_path, progress=False)
    lock = layout.lock_path(tmp_path)
    lock.unlink(missing_ok=True)
    lock.mkdir()  # taking the lock would now fail: verify must not need it
    manifest = layout.manifest_path(tmp_path)
    before = manifest.read_bytes()
    monkeypatch.setattr(_verify, "_writable", lambda root: False)
    path = layout.local_path(tmp_path, KEY)
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    result = verify(data_dir=tmp_path, repair=True)
    assert result.read_only and result.altered == [KEY]
    assert "read-only" in result.failed[KEY] and "cannot repair" in str(result)
    assert manifest.read_bytes() == before and path.read_bytes() == bytes(data)
