"""Streaming betas from the loopback S3 server: same arrays as the local load, verified on the fly."""

from __future__ import annotations

import gzip
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from laion_fmri import _mask_index as mi
from laion_fmri import _nifti as nifti
from laion_fmri import _ranged_reads as ranged
from laion_fmri import _remote_betas as rb
from laion_fmri import layout
from laion_fmri.download._content import part_size_candidates
from laion_fmri.errors import CorruptFileError, IntegrityError
from laion_fmri.remote import ObjectInfo, open_store
from laion_fmri.subject import Subject

SUB = "sub-03"
MiB = 1 << 20


@pytest.fixture
def store(s3_source):  # type: ignore[no-untyped-def]
    return open_store()


def _public_sessions(sub: Subject) -> list[str]:
    return [s for s in sub.get_sessions() if s not in layout.HELD_OUT_SESSIONS]


def _offsets(root: Path) -> np.ndarray:
    return mi.derive_mask_index(root / layout.local_relpath(layout.r2mean_key(SUB))).offsets


def test_stream_equals_local_load(store, sample_root: Path, shared_downloaded: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sub = Subject(SUB, shared_downloaded)
    offsets = _offsets(sample_root)
    sessions = _public_sessions(sub)
    seen = []
    for session in sessions:
        key = layout.betas_key(SUB, session)
        # Small ranges: many requests in flight, reassembled in order.
        res = rb.stream_betas(store, key, offsets, range_bytes=64 * 1024, in_flight=3,
                              keep=tmp_path / f"{session}.nii.gz", on_verified=seen.append)
        np.testing.assert_array_equal(res.betas, sub.get_betas(session=session, mask_source="rsquare"))
        assert res.betas.flags.c_contiguous and res.betas.dtype == np.float32
        original = (sample_root / layout.local_relpath(key)).read_bytes()
        # boto3 uploads with a CRC32 that moto returns as the full-object checksum: the
        # download engine's rule makes that CRC the content check (no MD5 pass).
        assert res.info.checksum is not None and res.info.checksum[0] == "crc32"
        assert res.verified == "crc32" and res.info.size == len(original)
        assert (tmp_path / f"{session}.nii.gz").read_bytes() == original
    assert [r.header.path.name for r in seen] == [Path(layout.betas_key(SUB, s)).name for s in sessions]
    assert not list(tmp_path.glob("*.part"))


def test_sessions_pipeline_in_order(store, sample_root: Path, shared_downloaded: Path) -> None:  # type: ignore[no-untyped-def]
    sub = Subject(SUB, shared_downloaded)
    offsets = _offsets(sample_root)
    cols = np.flatnonzero(sub.get_roi_mask("face", mask_source="rsquare"))
    sessions = _public_sessions(sub)
    jobs = [(layout.betas_key(SUB, s), offsets[cols]) for s in sessions]
    results = list(rb.stream_sessions(store, jobs, sessions_in_flight=2, range_bytes=128 * 1024))
    for session, res in zip(sessions, results, strict=True):
        expected = sub.get_betas(session=session, roi="face", mask_source="rsquare")
        np.testing.assert_array_equal(res.betas, expected)


def _flip(at: int):  # type: ignore[no-untyped-def]
    """A ranged read that flips the byte at object offset ``at`` (damage in transit)."""
    real = ranged._get_range

    def read(store, key, start, end, etag=None):  # type: ignore[no-untyped-def]
        got, answer_etag, pieces = real(store, key, start, end, etag)
        data = bytearray(b"".join(pieces))
        if start <= at < got:
            data[at - start] ^= 0xFF
        return got, answer_etag, [bytes(data)]

    return read


@pytest.mark.parametrize("where", ["gzip_mtime", "deflate_data"])
def test_corrupted_byte_is_detected(  # type: ignore[no-untyped-def]
    store, sample_root: Path, tmp_path: Path, monkeypatch, where: str
) -> None:
    key = layout.betas_key(SUB, "ses-01")
    size = (sample_root / layout.local_relpath(key)).stat().st_size
    # Byte 5 is in the gzip MTIME field, which no decoder checks: only the content check can.
    at = 5 if where == "gzip_mtime" else size // 2
    monkeypatch.setattr(ranged, "_get_range", _flip(at))
    seen: list[object] = []
    keep = tmp_path / "kept.nii.gz"
    error = IntegrityError if where == "gzip_mtime" else (IntegrityError, CorruptFileError)
    with pytest.raises(error) as info:
        rb.stream_betas(store, key, _offsets(sample_root), range_bytes=32 * 1024, keep=keep,
                        on_verified=seen.append)
    assert "nothing was kept or cached" in str(info.value)
    if where == "gzip_mtime":
        assert "crc32 checksum" in str(info.value)
    assert seen == [] and not keep.exists() and not list(tmp_path.iterdir())


def _client_without_checksums(server):  # type: ignore[no-untyped-def]
    """A boto3 client that sends a checksum only when asked (``ChecksumAlgorithm=``)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=server.endpoint_url, region_name="us-west-2",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(request_checksum_calculation="when_required"))


@pytest.mark.parametrize("checksum", ["CRC64NVME", None])
def test_server_checksum_or_md5_verifies_the_stream(  # type: ignore[no-untyped-def]
    s3_source, sample_root: Path, tmp_path: Path, monkeypatch, checksum: str | None
) -> None:
    """A full-object CRC64NVME (S3's default) is the check when sent; without one, the ETag's MD5."""
    original = sample_root / layout.local_relpath(layout.betas_key(SUB, "ses-01"))
    key = f"derivatives/test/{checksum or 'plain'}_statmap.nii.gz"
    client = _client_without_checksums(s3_source)
    extra = {"ChecksumAlgorithm": checksum} if checksum else {}
    client.put_object(Bucket=s3_source.bucket, Key=key, Body=original.read_bytes(),
                      ACL="public-read", **extra)
    store = open_store()
    info = store.head(key)
    assert (info.checksum or ("none",))[0] == (checksum or "none").lower()
    offsets = _offsets(sample_root)
    res = rb.stream_betas(store, key, offsets, range_bytes=256 * 1024)
    assert res.verified == ("crc64nvme" if checksum else "md5")
    np.testing.assert_array_equal(res.betas, nifti.read_masked(original, offsets))
    # One byte the decoder cannot see (gzip MTIME) flipped in transit: the content check catches it.
    monkeypatch.setattr(ranged, "_get_range", _flip(5))
    seen: list[object] = []
    with pytest.raises(IntegrityError, match="crc64nvme checksum" if checksum else "MD5") as err:
        rb.stream_betas(store, key, offsets, range_bytes=256 * 1024, keep=tmp_path / "k.nii.gz",
                        on_verified=seen.append)
    assert "nothing was kept or cached" in str(err.value)
    assert seen == [] and not list(tmp_path.iterdir())
    client.delete_object(Bucket=s3_source.bucket, Key=key)


def test_read_ahead_budget_is_shared_and_returned() -> None:
    """Two objects streamed at once stay within one budget; every byte of it comes back."""
    import threading

    budget = rb.ReadAheadBudget(40)
    peak = [0]
    lock = threading.Lock()

    def fake_read(store, key, start, end, etag=None):  # type: ignore[no-untyped-def]
        with lock:
            peak[0] = max(peak[0], budget.held)
        return [bytes(end - start)]

    info = ObjectInfo("k", 200, None, None)
    readers = [rb.RangeReader(None, info, range_bytes=10, in_flight=4, read_range=fake_read,  # type: ignore[arg-type]
                              budget=budget) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        sizes = list(pool.map(lambda r: sum(len(c) for c in r), readers))
    assert sizes == [200, 200] and 0 < peak[0] <= 40 and budget.held == 0
    # A consumer that stops early gives back what it held and what was still in flight.
    chunks = iter(rb.RangeReader(None, info, range_bytes=10, in_flight=4, read_range=fake_read,  # type: ignore[arg-type]
                                 budget=budget))
    next(chunks)
    chunks.close()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while budget.held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert budget.held == 0


def _big_nifti(path: Path) -> None:
    """A ~10 MB gzip NIfTI (random float32 compresses little): two 5 MiB upload parts."""
    import nibabel as nib

    data = np.random.default_rng(0).standard_normal((24, 28, 20, 200)).astype(np.float32)
    plain = path.with_suffix("")  # .nii
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(plain))
    path.write_bytes(gzip.compress(plain.read_bytes(), 1))


def test_multipart_etag_is_checked(s3_source, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from boto3.s3.transfer import TransferConfig

    local = tmp_path / "big.nii.gz"
    _big_nifti(local)
    key = "derivatives/test/big_statmap.nii.gz"
    # No upload checksum: moto would return the parts' composite CRC32 without marking
    # it composite (real S3 marks it), so the multipart ETag is the check here.
    _client_without_checksums(s3_source).upload_file(
        str(local), s3_source.bucket, key, ExtraArgs={"ACL": "public-read"},
        Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB),
    )
    store = open_store()
    info = store.head(key)
    assert info.multipart_parts == 2 and info.checksum is None
    mask = np.zeros((24, 28, 20), bool)
    mask[3:20, 5:9, 2:18] = True
    offsets = nifti.gather_offsets(mask)
    res = rb.stream_betas(store, key, offsets, range_bytes=3 * MiB)
    assert res.verified == "multipart-md5"
    np.testing.assert_array_equal(res.betas, nifti.read_masked(local, offsets))
    monkeypatch.setattr(ranged, "_get_range", _flip(5))
    with pytest.raises(IntegrityError, match="MD5 of part MD5s"):
        rb.stream_betas(store, key, offsets, range_bytes=3 * MiB)


def test_part_size_inference_and_verifier() -> None:
    assert [s // MiB for s in part_size_candidates(11 * MiB, 3)] == [4, 5]
    assert part_size_candidates(100, 7) == []  # no plausible part size: size check only
    body = bytes(range(256)) * (3 * MiB // 256) + b"tail"
    parts = [body[i : i + MiB] for i in range(0, len(body), MiB)]
    etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"
    ok = rb.ContentVerifier(ObjectInfo("k", len(body), etag, None))
    for i in range(0, len(body), 700_001):  # chunk borders unrelated to part borders
        ok.update(body[i : i + 700_001])
    assert ok.method == "multipart-md5" and ok.mismatch() is None
    short = rb.ContentVerifier(ObjectInfo("k", len(body), etag, None))
    short.update(body[:-1])
    assert "bytes arrived" in (short.mismatch() or "")
    opaque = rb.ContentVerifier(ObjectInfo("k", 3, "not-an-md5", None))
    opaque.update(b"abc")
    assert opaque.method == "size" and opaque.mismatch() is None
    assert rb.plan_ranges(10, 4, first_bytes=4) == [(0, 4), (4, 8), (8, 10)]
    assert rb.plan_ranges(20, 8, first_bytes=2) == [(0, 2), (2, 6), (6, 14), (14, 20)]
    assert rb.plan_ranges(0, 8) == []
    assert rb.RangeStream([b"ab", b"", b"cd"]).read() == b"abcd"


def test_mask_index_is_stored_and_reused(shared_downloaded: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sub = Subject(SUB, shared_downloaded)
    affine, grid_shape = sub.affine, sub.grid_shape
    mask_path = shared_downloaded / layout.local_relpath(layout.r2mean_key(SUB))
    first = mi.mask_index(mask_path, tmp_path / "idx")
    np.testing.assert_array_equal(first.flat, sub.get_brain_mask(source="rsquare"))
    np.testing.assert_array_equal(first.c_index, np.flatnonzero(sub.get_brain_mask(source="rsquare")))
    stored = sorted((tmp_path / "idx").glob("mask-*"))
    assert [p.name for p in stored] == [f"mask-{first.fingerprint}"]
    # The fingerprint is remembered by size and mtime: a new process does not re-hash the file.
    (record,) = (tmp_path / "idx").glob("file-*.json")
    assert first.fingerprint in record.read_text()
    assert sorted(p.name for p in stored[0].iterdir()) == ["c_index.npy", "meta.json", "offsets.npy"]

    def no_decode(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the stored index should be used")

    monkeypatch.setattr(mi, "derive_mask_index", no_decode)
    monkeypatch.setattr(mi, "file_fingerprint", no_decode)
    again = mi.mask_index(mask_path, tmp_path / "idx")
    np.testing.assert_array_equal(again.offsets, first.offsets)
    np.testing.assert_array_equal(again.affine, affine)
    assert again.digest == first.digest and again.grid_shape == grid_shape
    monkeypatch.undo()
    # A different mask file (another source) gets its own entry.
    other = tmp_path / "other_mask.nii.gz"
    data, affine = nifti.read_volume(mask_path)
    import nibabel as nib

    nib.save(nib.Nifti1Image((np.asarray(data) != 0)[::-1].astype(np.uint8), affine), str(other))
    third = mi.mask_index(other, tmp_path / "idx")
    assert third.fingerprint != first.fingerprint and len(list((tmp_path / "idx").glob("mask-*"))) == 2


def test_local_folder_source_streams_too(sample_root: Path, shared_downloaded: Path) -> None:
    from laion_fmri.remote import LocalStore

    sub = Subject(SUB, shared_downloaded)
    key = layout.betas_key(SUB, "ses-02")
    res = rb.stream_betas(LocalStore(sample_root), key, _offsets(sample_root), range_bytes=50_000)
    np.testing.assert_array_equal(res.betas, sub.get_betas(session="ses-02", mask_source="rsquare"))
    assert res.verified == "size"  # a local folder has no ETag: size and gzip CRC32 only


def test_read_ahead_runs_without_the_consumer_and_stays_bounded() -> None:
    import threading

    calls: list[int] = []
    lock = threading.Lock()

    def fake_read(store, key, start, end, etag=None):  # type: ignore[no-untyped-def]
        with lock:
            calls.append(start)
        return bytes(end - start)

    info = ObjectInfo("k", 100, None, None)
    reader = rb.RangeReader(None, info, range_bytes=10, in_flight=2, read_range=fake_read, ahead=4)  # type: ignore[arg-type]
    reader.ranges = rb.plan_ranges(100, 10, first_bytes=10)
    chunks = iter(reader)
    assert len(next(chunks)) == 10
    time.sleep(0.3)  # the consumer is busy: requests go on, up to `ahead` unconsumed ranges
    assert len(calls) == 5  # the consumed one + 4 ahead, not all 10
    chunks.close()  # stops the feeder; nothing hangs, nothing more is requested
    time.sleep(0.1)
    assert len(calls) == 5
    assert b"".join(rb.RangeReader(None, info, 7, 3, read_range=fake_read)) == bytes(100)  # type: ignore[arg-type]


def _taken(early, start, end, etag):  # type: ignore[no-untyped-def]
    """A prefetched read's answer for ``[start, end)``, or None if not usable."""
    taken = early.take(start, end)
    if taken is None:
        return None
    answer = taken[0].result()
    early.budget.release(taken[1])
    return answer[2] if rb.ObjectStart.usable(answer, end, etag) else None


def test_listing_and_first_ranges_in_one_round_trip(store, sample_root: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = layout.betas_key(SUB, "ses-01")
    original = (sample_root / layout.local_relpath(key)).read_bytes()
    budget = rb.ReadAheadBudget(1 << 20)
    leading = rb.leading_ranges(64 * 1024, 4)
    start = rb.ObjectStart(store, key, leading, budget)
    (info, _), early = start.result(), start
    assert info.size == len(original) and len(early) == 4
    assert budget.held == sum(e - s for s, e in leading)
    for lo, hi in leading:
        assert b"".join(_taken(early, lo, hi, info.etag)) == original[lo:hi]
    assert budget.held == 0
    # An object shorter than the reads asked for: the one that covers its end is all of
    # it, the ones past the end are dropped and give their budget back.
    tiny = layout.trials_key(SUB, "ses-01")
    tiny_bytes = (sample_root / layout.local_relpath(tiny)).read_bytes()
    wide = [(0, len(tiny_bytes) + 1000), (len(tiny_bytes) + 1000, len(tiny_bytes) + 5000)]
    start = rb.ObjectStart(store, tiny, wide, budget)
    (info, _), early = start.result(), start
    assert b"".join(_taken(early, 0, len(tiny_bytes), info.etag)) == tiny_bytes
    early.close()
    deadline = time.monotonic() + 5
    while budget.held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert budget.held == 0
    # The budget bounds what is asked for before the listing: no waiting, fewer reads.
    early = rb.ObjectStart(store, key, leading, rb.ReadAheadBudget(100 * 1024))
    assert len(early) == 1  # the first range (64 KiB) fits; the second (128 KiB) does not
    early.close()
    # Another version answered the early reads than the HEAD: they are not used (the
    # ranged reads ask again with If-Match), and the stream still matches the file.
    real = ranged._get_range
    again: list[int] = []

    def other_version(store, key, start, end, etag=None):  # type: ignore[no-untyped-def]
        got, answer_etag, pieces = real(store, key, start, end, etag)
        if etag is not None:
            again.append(start)
        return got, ("0" * 32 if etag is None else answer_etag), pieces

    monkeypatch.setattr(ranged, "_get_range", other_version)
    start = rb.ObjectStart(store, key, leading, budget)
    (info, _), early = start.result(), start
    assert _taken(early, 0, leading[0][1], info.etag) is None
    early.close()
    offsets = _offsets(sample_root)
    res = rb.stream_betas(store, key, offsets, range_bytes=64 * 1024)
    local = sample_root / layout.local_relpath(key)
    np.testing.assert_array_equal(res.betas, nifti.read_masked(local, offsets))
    assert 0 in again and rb.READ_AHEAD.held == 0


def test_small_objects_and_streams_damaged_in_transit_are_refused(  # type: ignore[no-untyped-def]
    s3_source, sample_root: Path, tmp_path: Path
) -> None:
    """Real transport damage (a proxy flips one byte): refused, never returned or kept."""
    from faults.proxy import FaultProxy, Rule
    from laion_fmri.stores import S3Store

    trials = layout.trials_key(SUB, "ses-01")
    betas = layout.betas_key(SUB, "ses-01")
    with FaultProxy(s3_source.endpoint_url) as fp:
        store = S3Store(s3_source.bucket, endpoint_url=fp.url)
        info, body = rb.read_object(store, trials)
        assert body == (sample_root / layout.local_relpath(trials)).read_bytes()
        assert info.size == len(body) and info.checksum is not None  # moto: the upload's CRC32
        # One round trip: a GET whose answer carries the size, ETag and checksum.
        assert len(fp.requests("GET", trials)) == 1 and not fp.requests("HEAD", trials)
        fp.add(Rule("flip", match=trials, times=1))
        with pytest.raises(IntegrityError, match="content check"):
            rb.read_object(store, trials)
        fp.add(Rule("flip", match="SingletrialBetas", only_ranged=True, times=1, fraction=0.5))
        seen: list[object] = []
        with pytest.raises((IntegrityError, CorruptFileError), match="nothing was kept or cached"):
            rb.stream_betas(store, betas, _offsets(sample_root), range_bytes=64 * 1024,
                            keep=tmp_path / "k.nii.gz", on_verified=seen.append)
        assert fp.faults_injected == 2 and seen == [] and not list(tmp_path.iterdir())


@pytest.mark.parametrize("network_bound", [True, False])
def test_requests_in_flight_grow_only_while_the_consumer_waits(network_bound: bool) -> None:
    """A slow network gets more requests at once; a fast one keeps the initial few."""
    import threading

    lock = threading.Lock()
    running, peak = [0], [0]

    def fake_read(store, key, start, end, etag=None):  # type: ignore[no-untyped-def]
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02 if network_bound else 0.0)
        with lock:
            running[0] -= 1
        return [bytes(end - start)]

    info = ObjectInfo("k", 400, None, None)
    reader = rb.RangeReader(None, info, range_bytes=10, in_flight=8, read_range=fake_read,  # type: ignore[arg-type]
                            budget=rb.ReadAheadBudget(1000))
    total = 0
    for chunk in reader:
        total += len(chunk)
        if not network_bound:
            time.sleep(0.005)  # the consumer is the bottleneck
    assert total == 400
    if network_bound:
        assert peak[0] == 8
    else:
        assert peak[0] <= ranged.INITIAL_IN_FLIGHT
