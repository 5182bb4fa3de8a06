"""Network faults between the download engine and the S3 server.

Every test downloads through :class:`~faults.proxy.FaultProxy` (real HTTP to the
loopback moto server), injects one kind of fault, and then asserts that the
bytes on disk equal the source bytes, that no temporary file is left, and that
nothing else in the data directory changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from faults.helpers import BETAS_KEY, SES, SUB, accept_license, assert_mirror, temp_files
from faults.proxy import Rule
from laion_fmri import layout
from laion_fmri.download import download
from laion_fmri.download.transfer import fetch_objects
from laion_fmri.errors import SourceUnavailableError
from laion_fmri.remote import open_store

pytestmark = pytest.mark.timeout(120)


def _prepare(data_dir: Path) -> None:
    accept_license(data_dir)
    # A file the download has nothing to do with: must survive untouched.
    (data_dir / "notes").mkdir(exist_ok=True)
    (data_dir / "notes" / "keep.txt").write_text("my own notes\n")


def _download(data_dir: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return download(subject=SUB, ses=SES, progress=False, data_dir=data_dir, **kwargs)


def _check(report, data_dir: Path, source: Path, before, after) -> int:  # type: ignore[no-untyped-def]
    assert report.failed == {}
    assert BETAS_KEY in report.downloaded
    return assert_mirror(data_dir, source, report.downloaded + report.skipped, before, after)


@pytest.mark.parametrize(
    ("fault", "times"),
    [
        ("reset", 3),  # RST after half the body, three times in a row
        ("truncate", 3),  # correct Content-Length, then FIN after half the body
        ("short_length", 2),  # a well-formed response that is too short
        ("long_length", 2),  # Content-Length larger than the body
    ],
)
def test_broken_body_is_retried_and_verified(
    fault, times, proxy, data_dir, sample_root, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    _prepare(data_dir)
    before = snapshot(data_dir)
    proxy.add(Rule(fault, match=BETAS_KEY, times=times))
    report = _download(data_dir)
    verified = _check(report, data_dir, sample_root, before, snapshot(data_dir))
    broken = [r for r in proxy.requests("GET", BETAS_KEY) if r.fault == fault]
    assert len(broken) == times
    fault_log(fault, injected=len(broken), bytes_verified=verified)


def test_short_response_with_multipart_etag_is_rejected(
    proxy, s3_server, data_dir, tmp_path, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    """Large dataset files are multipart uploads: their ETag is not an MD5.

    The size is then the only check, so a short but well-formed response must
    not be accepted as the whole object.
    """
    key = "faults/multipart/betas-like.bin"
    body = os.urandom(5 * 1024 * 1024) + os.urandom(4096)
    client = s3_server.client
    up = client.create_multipart_upload(Bucket=s3_server.bucket, Key=key, ACL="public-read")
    parts = []
    for number, start, stop in ((1, 0, 5 * 1024 * 1024), (2, 5 * 1024 * 1024, len(body))):
        etag = client.upload_part(
            Bucket=s3_server.bucket, Key=key, PartNumber=number, UploadId=up["UploadId"],
            Body=body[start:stop],
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(
        Bucket=s3_server.bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    try:
        store = open_store()
        objects = list(store.list("faults/multipart/"))
        assert objects[0].md5 is None  # multipart: nothing but the size to check
        source = tmp_path / "source"
        (source / "faults/multipart").mkdir(parents=True)
        (source / key).write_bytes(body)
        before = snapshot(data_dir)
        proxy.add(Rule("short_length", match=key, times=1))
        report = fetch_objects(objects, store, data_dir, n_jobs=1, connections=1, progress=False)
        assert report.failed == {}
        verified = assert_mirror(data_dir, source, [key], before, snapshot(data_dir))
        fault_log("short_length_multipart", injected=1, bytes_verified=verified)
    finally:
        s3_server.delete(key)


def test_stalled_server_times_out_and_resumes(
    proxy, data_dir, sample_root, snapshot, fault_log, monkeypatch
):  # type: ignore[no-untyped-def]
    # A short read timeout through the documented env knob.
    monkeypatch.setenv("LAION_FMRI_READ_TIMEOUT", "1")
    _prepare(data_dir)
    before = snapshot(data_dir)
    proxy.add(Rule("stall", match=BETAS_KEY, times=2, delay=30.0))
    report = _download(data_dir)
    verified = _check(report, data_dir, sample_root, before, snapshot(data_dir))
    stalls = [r for r in proxy.requests("GET", BETAS_KEY) if r.fault == "stall"]
    assert len(stalls) == 2
    fault_log("stall", injected=2, bytes_verified=verified)


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_burst_then_success(
    status, proxy, data_dir, sample_root, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    _prepare(data_dir)
    before = snapshot(data_dir)
    # Every object of the session folder answers `status` four times first.
    proxy.add(Rule("status", match=f"/{SES}/func/", status=status, times=4))
    proxy.add(Rule("status", match=BETAS_KEY, status=status, times=4))
    report = _download(data_dir)
    verified = _check(report, data_dir, sample_root, before, snapshot(data_dir))
    errors = [r for r in proxy.records if r.fault == "status"]
    assert len(errors) == 8
    assert all(r.status == status for r in errors)
    fault_log(f"http_{status}_burst", injected=len(errors), bytes_verified=verified)


def test_forbidden_key_fails_alone_and_writes_nothing(
    proxy, data_dir, sample_root, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    _prepare(data_dir)
    before = snapshot(data_dir)
    proxy.add(Rule("status", match=BETAS_KEY, status=403, times=None))
    with pytest.warns(UserWarning, match="(?i)access denied"):
        report = _download(data_dir)
    assert set(report.failed) == {BETAS_KEY}
    assert "403" in report.failed[BETAS_KEY]
    target = layout.local_path(data_dir, BETAS_KEY)
    assert not target.exists()
    assert not layout.partial_path(target).exists()
    others = [k for k in report.downloaded + report.skipped if k != BETAS_KEY]
    assert others
    verified = assert_mirror(data_dir, sample_root, others, before, snapshot(data_dir))
    fault_log("http_403", injected=len(proxy.requests("GET", BETAS_KEY)), bytes_verified=verified)


def test_held_out_session_is_never_requested(proxy, data_dir, snapshot, fault_log):  # type: ignore[no-untyped-def]
    from laion_fmri.sample import spec_for

    held = spec_for("tiny").held_out_sessions[0]
    _prepare(data_dir)
    before = snapshot(data_dir)
    report = download(subject=SUB, ses=[SES, held], progress=False, data_dir=data_dir)
    assert report.failed == {}
    assert report.held_out and all(f"/{held}/" in k for k in report.held_out)
    assert not proxy.requests("GET", f"/{held}/func/")
    assert not (data_dir / layout.session_func_prefix(SUB, held)).exists()
    after = snapshot(data_dir)
    assert {k: v for k, v in after.items() if k in before} == before


def test_listing_page_fails_once(proxy, data_dir, sample_root, snapshot, fault_log):  # type: ignore[no-untyped-def]
    _prepare(data_dir)
    before = snapshot(data_dir)
    proxy.add(Rule("status", match="list-type=2", status=503, times=1))
    report = _download(data_dir)
    verified = _check(report, data_dir, sample_root, before, snapshot(data_dir))
    assert [r.status for r in proxy.records if r.fault == "status"] == [503]
    fault_log("listing_503_once", injected=1, bytes_verified=verified)


def test_listing_down_raises_clearly_and_writes_nothing(proxy, data_dir, snapshot, fault_log):  # type: ignore[no-untyped-def]
    _prepare(data_dir)
    before = snapshot(data_dir)
    proxy.add(Rule("status", match="list-type=2", status=503, times=None))
    with pytest.raises(SourceUnavailableError, match=r"127\.0\.0\.1"):
        _download(data_dir)
    assert snapshot(data_dir) == before
    assert temp_files(data_dir) == []
    fault_log("listing_down", injected=sum(r.fault == "status" for r in proxy.records), bytes_verified=0)


def test_noop_rerun_makes_no_get(proxy, data_dir, sample_root, snapshot):  # type: ignore[no-untyped-def]
    _prepare(data_dir)
    first = _download(data_dir)
    assert first.failed == {} and first.downloaded
    on_disk = snapshot(data_dir)
    proxy.reset_records()
    second = _download(data_dir)
    assert second.downloaded == [] and sorted(second.skipped) == sorted(first.downloaded)
    object_gets = [r for r in proxy.requests("GET") if r.key and "list-type" not in r.query]
    assert object_gets == []
    assert snapshot(data_dir) == on_disk


# --------------------------------------------------------------------------- resume-level faults
#: Range size for the resume tests: the tiny betas file (~770 kB) travels in several ranges.
PART = 128 * 1024


def _interrupted_part(proxy, data_dir: Path, chunk_size: int):  # type: ignore[no-untyped-def]
    """Leave a ``.part`` with two completed ranges and its resume record, as a crash would."""
    store = open_store()
    objects = [o for o in store.list(layout.session_func_prefix(SUB, SES)) if o.key == BETAS_KEY]
    proxy.add(Rule("passthrough", match=BETAS_KEY, times=2, only_ranged=True))
    rule = proxy.add(Rule("truncate", match=BETAS_KEY, times=None, fraction=0.4))
    with pytest.warns(UserWarning, match="Giving up"):
        report = fetch_objects(objects, store, data_dir, n_jobs=1, connections=1, progress=False,
                               chunk_size=chunk_size, part_size=PART, retries=0)
    proxy.clear()
    assert set(report.failed) == {BETAS_KEY}
    target = layout.local_path(data_dir, BETAS_KEY)
    assert layout.partial_path(target).is_file()
    assert sorted(json.loads(layout.partial_state_path(target).read_text())["done"]) == ["0", "1"]
    assert not target.exists()
    return store, objects, rule.fired


def test_server_ignoring_range_restarts_from_zero(
    proxy, data_dir, sample_root, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    before = snapshot(data_dir)
    store, objects, fired = _interrupted_part(proxy, data_dir, chunk_size=64 * 1024)
    proxy.reset_records()
    proxy.add(Rule("ignore_range", match=BETAS_KEY, times=None))
    report = fetch_objects(objects, store, data_dir, n_jobs=1, connections=1, progress=False,
                           chunk_size=64 * 1024,
                           part_size=PART)
    assert report.failed == {}
    assert any(r.range and r.status == 200 for r in proxy.requests("GET", BETAS_KEY))
    verified = assert_mirror(data_dir, sample_root, [BETAS_KEY], before, snapshot(data_dir))
    fault_log("ignore_range", injected=fired + 1, bytes_verified=verified)


def test_resume_uses_range_and_if_match(proxy, data_dir, sample_root, snapshot, fault_log):  # type: ignore[no-untyped-def]
    before = snapshot(data_dir)
    store, objects, fired = _interrupted_part(proxy, data_dir, chunk_size=64 * 1024)
    proxy.reset_records()
    report = fetch_objects(objects, store, data_dir, n_jobs=1, connections=1, progress=False,
                           chunk_size=64 * 1024,
                           part_size=PART)
    assert report.failed == {}
    gets = proxy.requests("GET", BETAS_KEY)
    assert gets[0].range == f"bytes={2 * PART}-{3 * PART - 1}"  # the first missing range
    assert all(g.if_match and objects[0].etag in g.if_match for g in gets)
    assert report.bytes == objects[0].size - 2 * PART
    verified = assert_mirror(data_dir, sample_root, [BETAS_KEY], before, snapshot(data_dir))
    fault_log("resume_after_truncation", injected=fired, bytes_verified=verified)


def test_object_changed_before_resume_restarts(
    proxy, s3_server, data_dir, sample_root, tmp_path, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    original = (sample_root / BETAS_KEY).read_bytes()
    before = snapshot(data_dir)
    store, objects, fired = _interrupted_part(proxy, data_dir, chunk_size=64 * 1024)
    changed = bytes(b ^ 0x5A for b in original)  # same size, other bytes, other ETag
    s3_server.put(BETAS_KEY, changed)
    try:
        proxy.reset_records()
        report = fetch_objects(objects, store, data_dir, n_jobs=1, connections=1, progress=False,
                               chunk_size=64 * 1024, part_size=PART)
        assert report.failed == {}
        statuses = [(r.range is not None, r.status) for r in proxy.requests("GET", BETAS_KEY)]
        assert (True, 412) in statuses  # the stale resume was refused by If-Match
        source = tmp_path / "source"
        (source / BETAS_KEY).parent.mkdir(parents=True)
        (source / BETAS_KEY).write_bytes(changed)
        verified = assert_mirror(data_dir, source, [BETAS_KEY], before, snapshot(data_dir))
        fault_log("etag_changed_on_resume", injected=fired + 1, bytes_verified=verified)
    finally:
        s3_server.put(BETAS_KEY, original)


def test_object_changed_during_transparent_retry(
    proxy, s3_server, data_dir, sample_root, tmp_path, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    """The client's own retry after a cut hits a newer version of the object."""
    original = (sample_root / BETAS_KEY).read_bytes()
    changed = bytes(b ^ 0xA5 for b in original)
    _prepare(data_dir)
    before = snapshot(data_dir)
    proxy.add(Rule("reset", match=BETAS_KEY, times=1))
    proxy.add(Rule("passthrough", match=BETAS_KEY, times=1,
                   before=lambda: s3_server.put(BETAS_KEY, changed)))
    try:
        report = _download(data_dir)
        assert report.failed == {}
        got = layout.local_path(data_dir, BETAS_KEY).read_bytes()
        assert got == changed  # all new bytes, never a splice of two versions
        others = [k for k in report.downloaded if k != BETAS_KEY]
        source = tmp_path / "source"
        for key in others:
            (source / key).parent.mkdir(parents=True, exist_ok=True)
            (source / key).write_bytes((sample_root / key).read_bytes())
        (source / BETAS_KEY).parent.mkdir(parents=True, exist_ok=True)
        (source / BETAS_KEY).write_bytes(changed)
        verified = assert_mirror(data_dir, source, report.downloaded, before, snapshot(data_dir))
        fault_log("etag_changed_mid_body", injected=2, bytes_verified=verified)
    finally:
        s3_server.put(BETAS_KEY, original)


# --------------------------------------------------------------------------- paginated listings
def _paged_store(proxy_url: str, bucket: str):  # type: ignore[no-untyped-def]
    from laion_fmri.remote import S3Store

    return S3Store(bucket, endpoint_url=proxy_url)


def test_later_listing_page_fails_once(fault_log):  # type: ignore[no-untyped-def]
    """A 5,000-key listing (five pages) whose third page answers 503 once: complete, no duplicates."""
    from faults.listing import ListingServer
    from faults.proxy import FaultProxy

    keys = [f"derivatives/glmsingle-tedana/{SUB}/k{i:05d}.bin" for i in range(5000)]
    with ListingServer("paged", keys) as server, FaultProxy(server.url) as fp:
        # Rules fire in insertion order: the first continuation (page 2) passes,
        # the second (page 3) fails once.
        fp.add(Rule("passthrough", match="continuation-token", times=1))
        fp.add(Rule("status", match="continuation-token", status=503, times=1))
        listed = [o.key for o in _paged_store(fp.url, "paged").list(layout.subject_glm_prefix(SUB))]
        assert listed == keys
        assert [r.status for r in fp.records if r.fault == "status"] == [503]
        fault_log("listing_page3_503_once", injected=1, bytes_verified=0, pages=len(fp.records))


def test_listing_page_that_keeps_failing_is_an_error_not_a_short_plan(fault_log):  # type: ignore[no-untyped-def]
    from faults.listing import ListingServer
    from faults.proxy import FaultProxy

    keys = [f"derivatives/glmsingle-tedana/{SUB}/k{i:05d}.bin" for i in range(3000)]
    with ListingServer("paged", keys) as server, FaultProxy(server.url) as fp:
        fp.add(Rule("status", match="continuation-token", status=503, times=None))
        store = _paged_store(fp.url, "paged")
        seen = []
        with pytest.raises(SourceUnavailableError):
            seen.extend(o.key for o in store.list(layout.subject_glm_prefix(SUB)))
        assert seen == keys[:1000]  # what came before the failure, never silently "complete"
        fault_log("listing_page2_down", injected=sum(r.fault == "status" for r in fp.records),
                  bytes_verified=0)


def test_listing_page_the_client_library_rejects_does_not_block_the_prefix():  # type: ignore[no-untyped-def]
    """A key XML cannot carry makes the page unparseable: the rest is listed anyway."""
    from faults.listing import ListingServer
    from laion_fmri.errors import UnsafeKeyError

    base = f"derivatives/glmsingle-tedana/{SUB}/"
    hostile = base + "bad\x01name.json"
    keys = [f"{base}k{i:04d}.bin" for i in range(2500)] + [hostile]
    with ListingServer("rejected", keys) as server:
        listed = [o.key for o in _paged_store(server.url, "rejected").list(layout.subject_glm_prefix(SUB))]
    assert sorted(listed) == sorted(keys)  # nothing lost, nothing twice
    with pytest.raises(UnsafeKeyError):  # and that one key fails alone in the plan
        layout.local_path("/tmp/x", hostile)
