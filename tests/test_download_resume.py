"""Interrupted, changed, refused and corrupted transfers, through real HTTP to loopback S3.

These tests change objects, so they fill a bucket of their own on the shared
loopback server (module-scoped) and leave the session bucket untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.cli import main
from laion_fmri.download import download, verify
from laion_fmri.download.manifest import Manifest
from laion_fmri.download.transfer import fetch_objects
from laion_fmri.errors import ObjectChangedError, UnsafeKeyError
from laion_fmri.licenses import accept_dataset_license
from laion_fmri.remote import LocalStore, S3Store

BUCKET = "laion-fmri-resume-tests"  # a bucket of our own: these tests alter objects
SUB = "sub-03"
BIG_KEY = layout.session_func_prefix(SUB, "ses-02") + "sub-03_ses-02_task-images_desc-GLMsingle_model.h5"
CHUNK = 1 << 20
BIG_SIZE = 6 * CHUNK + 12345


class Server:
    def __init__(self, url: str, client: object) -> None:
        self.url = url
        self.client = client

    def put(self, key: str, body: bytes, public: bool = True) -> None:
        self.client.put_object(  # type: ignore[attr-defined]
            Bucket=BUCKET, Key=key, Body=body, ACL="public-read" if public else "private"
        )

    def store(self) -> S3Store:
        return S3Store(BUCKET, endpoint_url=self.url)


@pytest.fixture(scope="module")
def own_s3(s3_server, sample_root: Path) -> Iterator[Server]:
    client = s3_server.client
    client.create_bucket(Bucket=BUCKET,
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    srv = Server(s3_server.endpoint_url, client)
    for path in sorted(sample_root.rglob("*")):
        key = path.relative_to(sample_root).as_posix()
        if path.is_file() and not key.startswith(layout.STATE_DIRNAME):
            srv.put(key, path.read_bytes(), public="/ses-31/" not in key)
    yield srv
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def own_source(own_s3: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.setenv("LAION_FMRI_SOURCE", f"s3://{BUCKET}")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", own_s3.url)
    return own_s3


@pytest.fixture
def big(own_s3: Server) -> bytes:
    body = os.urandom(BIG_SIZE)
    own_s3.put(BIG_KEY, body)
    return body


class _Abort(BaseException):
    """Stands in for a crash or Ctrl-C in the middle of a transfer."""


class _Recorder:
    """Wraps a real store, recording every GET (start, end, If-Match and the answer's status)."""

    def __init__(self, inner: object, ignore_range: bool = False) -> None:
        self.inner = inner
        self.url = inner.url  # type: ignore[attr-defined]
        self.gets: list[tuple[int, int | None, str | None, int]] = []
        self.ignore_range = ignore_range

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def open(self, key: str, start: int = 0, if_match: str | None = None,  # type: ignore[no-untyped-def]
             end: int | None = None, **kw: object):
        if self.ignore_range:  # a server that answers a ranged GET with the whole object
            start, end, if_match = 0, None, None
        try:
            dl = self.inner.open(key, start=start, if_match=if_match, end=end, **kw)  # type: ignore[attr-defined]
        except ObjectChangedError:
            self.gets.append((start, end, if_match, 412))
            raise
        self.gets.append((start, end, if_match, dl.status))
        return dl


def _ranges(size: int = BIG_SIZE) -> list[tuple[int, int]]:
    return [(a, min(a + CHUNK, size)) for a in range(0, size, CHUNK)]


def _interrupt(store: S3Store, data_dir: Path, after_chunks: int = 9) -> Path:
    """Stop a one-connection transfer in 1 MiB ranges in the middle of its third range."""
    seen = []

    def boom(key: str, n: int) -> None:
        seen.append(n)
        if len(seen) >= after_chunks:
            raise _Abort

    with pytest.raises(_Abort):
        fetch_objects([store.head(BIG_KEY)], store, data_dir, n_jobs=1, connections=1, progress=False,
                      chunk_size=CHUNK // 4, part_size=CHUNK, on_chunk=boom)
    target = layout.local_path(data_dir, BIG_KEY)
    assert not target.exists()  # nothing under the final name
    state = json.loads(layout.partial_state_path(target).read_text())
    assert sorted(state["done"]) == ["0", "1"]  # two whole ranges recorded, the third was cut
    return layout.partial_path(target)


def test_interrupted_transfer_resumes_missing_ranges(own_s3: Server, big: bytes, data_dir: Path) -> None:
    store = own_s3.store()
    part = _interrupt(store, data_dir)
    assert part.read_bytes()[: 2 * CHUNK] == big[: 2 * CHUNK]
    rec = _Recorder(store)
    report = fetch_objects([store.head(BIG_KEY)], rec, data_dir, progress=False, chunk_size=CHUNK,  # type: ignore[arg-type]
                           part_size=CHUNK)
    assert report.downloaded == [BIG_KEY] and not report.failed
    etag = hashlib.md5(big).hexdigest()
    assert sorted(rec.gets) == [(a, b, etag, 206) for a, b in _ranges()[2:]]
    assert report.bytes == BIG_SIZE - 2 * CHUNK
    target = layout.local_path(data_dir, BIG_KEY)
    assert target.read_bytes() == big
    assert not part.exists() and not layout.partial_state_path(target).exists()


def test_sigkilled_process_resumes(own_s3: Server, big: bytes, data_dir: Path) -> None:
    script = textwrap.dedent(f"""
        import time
        from laion_fmri.stores import S3Store
        from laion_fmri.download.transfer import fetch_objects
        store = S3Store({BUCKET!r}, endpoint_url={own_s3.url!r})
        fetch_objects([store.head({BIG_KEY!r})], store, {str(data_dir)!r}, n_jobs=2, connections=2,
                      progress=False,
                      chunk_size={CHUNK // 4}, part_size={CHUNK}, on_chunk=lambda k, n: time.sleep(0.1))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    state = layout.partial_state_path(layout.local_path(data_dir, BIG_KEY))
    deadline = time.monotonic() + 60
    done: dict[str, object] = {}
    while time.monotonic() < deadline and len(done) < 2:
        try:
            done = json.loads(state.read_text())["done"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    done = json.loads(state.read_text())["done"]
    assert 2 <= len(done) < len(_ranges())
    rec = _Recorder(own_s3.store())
    report = fetch_objects([rec.head(BIG_KEY)], rec, data_dir, progress=False, chunk_size=CHUNK,  # type: ignore[arg-type]
                           part_size=CHUNK)
    assert report.downloaded == [BIG_KEY]
    wanted = [r for i, r in enumerate(_ranges()) if str(i) not in done]
    assert sorted((g[0], g[1]) for g in rec.gets) == wanted
    assert report.bytes == sum(b - a for a, b in wanted)
    assert layout.local_path(data_dir, BIG_KEY).read_bytes() == big


def test_changed_object_restarts_from_zero(own_s3: Server, big: bytes, data_dir: Path) -> None:
    store = own_s3.store()
    stale = store.head(BIG_KEY)
    _interrupt(store, data_dir)
    new = os.urandom(BIG_SIZE)
    own_s3.put(BIG_KEY, new)
    # A stale listing: the guarded range requests fail with 412, then a clean restart.
    rec = _Recorder(store)
    report = fetch_objects([stale], rec, data_dir, n_jobs=1, connections=1, progress=False, chunk_size=CHUNK,  # type: ignore[arg-type]
                           part_size=CHUNK)
    assert report.downloaded == [BIG_KEY] and not report.failed
    fresh = hashlib.md5(new).hexdigest()
    assert rec.gets[0][3] == 412
    assert sorted(g for g in rec.gets if g[3] != 412) == [(a, b, fresh, 206) for a, b in _ranges()]
    assert layout.local_path(data_dir, BIG_KEY).read_bytes() == new
    with Manifest(data_dir) as m:
        assert m.get(BIG_KEY)["etag"] == fresh  # type: ignore[index]


def test_fresh_listing_of_changed_object_does_not_resume(
    own_s3: Server, big: bytes, data_dir: Path
) -> None:
    store = own_s3.store()
    _interrupt(store, data_dir)
    new = os.urandom(BIG_SIZE)
    own_s3.put(BIG_KEY, new)
    rec = _Recorder(store)
    fetch_objects([store.head(BIG_KEY)], rec, data_dir, progress=False, chunk_size=CHUNK,  # type: ignore[arg-type]
                  part_size=CHUNK)
    assert sorted((g[0], g[1]) for g in rec.gets) == _ranges()  # every range, none resumed
    assert all(g[3] == 206 for g in rec.gets)
    assert layout.local_path(data_dir, BIG_KEY).read_bytes() == new


def test_server_ignoring_range_restarts_cleanly(own_s3: Server, big: bytes, data_dir: Path) -> None:
    store = own_s3.store()
    _interrupt(store, data_dir)
    rec = _Recorder(store, ignore_range=True)
    report = fetch_objects([store.head(BIG_KEY)], rec, data_dir, n_jobs=1, connections=1, progress=False,  # type: ignore[arg-type]
                           chunk_size=CHUNK, part_size=CHUNK)
    assert report.downloaded == [BIG_KEY]
    # The first ranged GET came back whole (200): one plain GET of the object follows.
    assert rec.gets == [(0, None, None, 200), (0, None, None, 200)]
    assert layout.local_path(data_dir, BIG_KEY).read_bytes() == big


def test_unexpected_403_is_reported_per_key(own_source: Server, data_dir: Path) -> None:
    accept_dataset_license(data_dir)
    name = "sub-03_ses-02_task-images_desc-Private_statmap.json"
    private = layout.session_func_prefix(SUB, "ses-02") + name
    own_source.put(private, b"{}", public=False)
    try:
        with pytest.warns(UserWarning, match="Access denied"):
            report = download(subject=SUB, ses="ses-02", n_jobs=3, data_dir=data_dir)
    finally:
        own_source.client.delete_object(Bucket=BUCKET, Key=private)  # type: ignore[attr-defined]
    assert list(report.failed) == [private] and "403" in report.failed[private]
    assert len(report.downloaded) > 5
    assert not layout.local_path(data_dir, private).exists()
    assert "FAILED" in str(report)


def test_403_is_reported_once_in_cli_wording(
    own_source: Server, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    accept_dataset_license(data_dir)
    name = "sub-03_ses-02_task-images_desc-Private_statmap.json"
    private = layout.session_func_prefix(SUB, "ses-02") + name
    own_source.put(private, b"{}", public=False)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = main(["download", "--subject", SUB, "--ses", "ses-02", "--no-progress",
                         "--data-dir", str(data_dir)])
        out = capsys.readouterr()
        with pytest.warns(UserWarning, match="Access denied") as api_warnings:
            download(subject=SUB, ses="ses-02", data_dir=data_dir, progress=False)
    finally:
        own_source.client.delete_object(Bucket=BUCKET, Key=private)  # type: ignore[attr-defined]
    assert code == 1
    text = out.out + out.err + "".join(str(w.message) for w in caught)
    assert text.count(name) == 1
    assert f"FAILED {private}: access denied (HTTP 403)" in out.out
    assert "see report.failed" not in text
    # The Python warning names the object by a well-formed address.
    message = str(next(w.message for w in api_warnings if "Access denied" in str(w.message)))
    assert f"s3://{BUCKET}/{private} (endpoint {own_source.url})" in message


def test_unsafe_keys_are_refused(own_s3: Server, data_dir: Path, tmp_path: Path) -> None:
    from laion_fmri.remote import ObjectInfo

    store = own_s3.store()
    evil = ObjectInfo("../outside.txt", 3, None, None)
    report = fetch_objects([evil], store, data_dir, progress=False)
    assert "Refusing" in report.failed["../outside.txt"]
    assert not (data_dir.parent / "outside.txt").exists()
    local = LocalStore(tmp_path / "src")
    (tmp_path / "src").mkdir()
    (tmp_path / "secret.txt").write_text("x")
    for key in ("../secret.txt", "/etc/passwd", "a\\b"):
        with pytest.raises(UnsafeKeyError):
            local.open(key)
    (tmp_path / "src" / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafeKeyError):
        local.open("link/secret.txt")
    assert [o.key for o in local.list()] == []  # symlinks are not followed


def test_verify_and_repair(own_source: Server, data_dir: Path, sample_root: Path, capsys) -> None:
    accept_dataset_license(data_dir)
    report = download(subject=SUB, ses="01", data_dir=data_dir, n_jobs=2)
    keys = sorted(k for k in report.downloaded if k.endswith((".nii.gz", ".tsv")))
    missing, truncated, altered = keys[:3]
    layout.local_path(data_dir, missing).unlink()
    with open(layout.local_path(data_dir, truncated), "r+b") as fh:
        fh.truncate(5)
    path = layout.local_path(data_dir, altered)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    result = verify(subject="03", data_dir=data_dir)
    assert (result.missing, result.truncated, result.altered) == ([missing], [truncated], [altered])
    own = [k for k in report.downloaded if layout.subject_of(k) == SUB]  # no dataset-level keys
    assert len(result.ok) == len(own) - 3 and not result.clean

    assert main(["verify", "--subject", SUB, "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert f"MISSING {missing}" in out and f"ALTERED {altered}" in out

    assert main(["verify", "--repair", "--data-dir", str(data_dir)]) == 0
    for key in (missing, truncated, altered):
        assert layout.local_path(data_dir, key).read_bytes() == (sample_root / key).read_bytes()
    again = verify(data_dir=data_dir)
    assert again.clean and len(again.ok) == len(report.downloaded)
