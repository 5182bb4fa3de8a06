"""Content verification of every object type, through real HTTP to loopback S3 (moto).

moto serves multipart ETags computed as S3 does (``md5(part md5s)-N``) and
full-object checksums (``x-amz-checksum-crc64nvme``) when asked; the fault
proxy of ``tests/faults`` flips one byte of a response body (length kept).
"""

from __future__ import annotations

import base64
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

from faults.proxy import FaultProxy, Rule
from laion_fmri import layout
from laion_fmri.download import verify
from laion_fmri.download._content import crc_update, multipart_etag, part_size_candidates
from laion_fmri.download.manifest import Manifest
from laion_fmri.download.transfer import fetch_objects
from laion_fmri.stores import S3Store

BUCKET = "laion-fmri-multipart-tests"
MiB = 1 << 20
FUNC = "derivatives/glmsingle-tedana/sub-03/ses-01/func/"
MP5 = FUNC + "sub-03_ses-01_task-images_desc-Mp5_statmap.nii.gz"  # 3 parts of 5 MiB
MP8 = FUNC + "sub-03_ses-01_task-images_desc-Mp8_statmap.nii.gz"  # 3 parts of 8 MiB
SMALL = FUNC + "sub-03_ses-01_task-images_desc-Small_statmap.json"
CRC = FUNC + "sub-03_ses-01_task-images_desc-Crc_statmap.nii.gz"


def _multipart_put(client, key: str, body: bytes, part: int) -> str:  # type: ignore[no-untyped-def]
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key, ACL="public-read")
    parts = []
    for i, start in enumerate(range(0, len(body), part), 1):
        r = client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=i,
                               Body=body[start:start + part])
        parts.append({"ETag": r["ETag"], "PartNumber": i})
    client.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts})
    return multipart_etag(hashlib.md5(body[s:s + part]).digest() for s in range(0, len(body), part))


@pytest.fixture(scope="module")
def bodies(s3_server) -> Iterator[dict[str, bytes]]:  # type: ignore[no-untyped-def]
    client = s3_server.client
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    out = {MP5: os.urandom(12 * MiB + 333), MP8: os.urandom(17 * MiB), SMALL: os.urandom(300_000),
           CRC: os.urandom(2 * MiB + 5)}
    _multipart_put(client, MP5, out[MP5], 5 * MiB)
    _multipart_put(client, MP8, out[MP8], 8 * MiB)
    client.put_object(Bucket=BUCKET, Key=SMALL, Body=out[SMALL], ACL="public-read")
    client.put_object(Bucket=BUCKET, Key=CRC, Body=out[CRC], ACL="public-read",
                      ChecksumAlgorithm="CRC64NVME")
    yield out
    for key in out:
        client.delete_object(Bucket=BUCKET, Key=key)
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def fp(s3_server) -> Iterator[FaultProxy]:  # type: ignore[no-untyped-def]
    with FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


def _store(fp: FaultProxy) -> S3Store:
    return S3Store(BUCKET, endpoint_url=fp.url)


def _gets(fp: FaultProxy, key: str) -> list[str | None]:
    return [r.range for r in fp.requests("GET", key)]


def _requested_bytes(fp: FaultProxy, key: str, size: int) -> int:
    total = 0
    for rng in _gets(fp, key):
        if rng is None:
            total += size
        else:
            first, last = rng[len("bytes="):].split("-")
            total += int(last) + 1 - int(first)
    return total


def test_part_size_inference() -> None:
    assert part_size_candidates(12 * MiB + 333, 3) == [5 * MiB]
    assert part_size_candidates(17 * MiB, 3) == [6 * MiB, 8 * MiB]  # ambiguous: both give 3
    assert part_size_candidates(1000, 3) == []  # no plausible part size: an opaque ETag


def test_multipart_object_is_verified_by_its_part_md5s(bodies, fp, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    store = _store(fp)
    info = store.head(MP5)
    assert info.multipart_parts == 3
    report = fetch_objects([info], store, data_dir, progress=False)
    assert report.downloaded == [MP5] and not report.failed and not report.unverified
    assert layout.local_path(data_dir, MP5).read_bytes() == bodies[MP5]
    # The ranges are the upload parts, so each range's MD5 is a part MD5.
    assert sorted(_gets(fp, MP5)) == sorted(
        f"bytes={a}-{min(a + 5 * MiB, len(bodies[MP5])) - 1}" for a in range(0, len(bodies[MP5]), 5 * MiB))
    with Manifest(data_dir) as m:
        rec = m.get(MP5)
    assert rec["content"] == "multipart" and rec["part_size"] == 5 * MiB  # type: ignore[index]
    assert verify(data_dir=data_dir).ok == [MP5]


def test_ambiguous_part_size_is_resolved_by_the_etag(bodies, fp, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    store = _store(fp)
    report = fetch_objects([store.head(MP8)], store, data_dir, progress=False)
    assert report.downloaded == [MP8] and not report.unverified
    assert layout.local_path(data_dir, MP8).read_bytes() == bodies[MP8]
    with Manifest(data_dir) as m:
        assert m.get(MP8)["part_size"] == 8 * MiB  # type: ignore[index]


def test_flipped_byte_in_one_part_refetches_that_part_only(bodies, fp, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    store = _store(fp)
    size = len(bodies[MP5])
    fp.add(Rule("flip", match=MP5, only_ranged=True, times=1, fraction=0.5))
    report = fetch_objects([store.head(MP5)], store, data_dir, n_jobs=1, connections=1, progress=False)
    assert report.downloaded == [MP5] and not report.failed and not report.unverified
    assert layout.local_path(data_dir, MP5).read_bytes() == bodies[MP5]
    assert fp.faults_injected == 1
    gets = _gets(fp, MP5)
    assert len(gets) == 4 and gets.count(f"bytes=0-{5 * MiB - 1}") == 2  # part 1 again, only
    assert _requested_bytes(fp, MP5, size) == size + 5 * MiB


def test_flipped_byte_in_a_single_part_object_is_fetched_again(bodies, fp, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    store = _store(fp)
    fp.add(Rule("flip", match=SMALL, times=1))
    report = fetch_objects([store.head(SMALL)], store, data_dir, progress=False)
    assert report.downloaded == [SMALL] and not report.unverified
    assert layout.local_path(data_dir, SMALL).read_bytes() == bodies[SMALL]
    assert _gets(fp, SMALL) == [None, None]


def test_full_object_checksum_is_verified_natively(bodies, fp, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    store = _store(fp)
    info = store.head(CRC)
    expected = base64.b64encode(crc_update("crc64nvme", bodies[CRC]).to_bytes(8, "big")).decode()
    assert info.checksum == ("crc64nvme", expected)  # our CRC64NVME equals the server's
    # In 1 MiB ranges the checksum is combined from the ranges' CRCs; one range is damaged.
    fp.add(Rule("flip", match=CRC, only_ranged=True, times=1))
    report = fetch_objects([info], store, data_dir, progress=False, part_size=MiB)
    assert report.downloaded == [CRC] and not report.unverified
    assert layout.local_path(data_dir, CRC).read_bytes() == bodies[CRC]
    with Manifest(data_dir) as m:
        assert m.get(CRC)["checksum"] == f"crc64nvme:{expected}"  # type: ignore[index]


def test_verify_rehashes_a_multipart_object_on_disk(bodies, fp, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    store = _store(fp)
    fetch_objects([store.head(MP5)], store, data_dir, progress=False)
    path = layout.local_path(data_dir, MP5)
    data = bytearray(path.read_bytes())
    data[7 * MiB] ^= 0x40  # same size: only a content check sees it
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert verify(data_dir=data_dir).altered == [MP5]


def test_sigkill_mid_multipart_transfer_refetches_only_missing_parts(bodies, fp, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    size = len(bodies[MP5])
    script = textwrap.dedent(f"""
        import time
        from laion_fmri.stores import S3Store
        from laion_fmri.download.transfer import fetch_objects
        store = S3Store({BUCKET!r}, endpoint_url={fp.url!r})
        fetch_objects([store.head({MP5!r})], store, {str(data_dir)!r}, n_jobs=1, connections=1,
                      progress=False,
                      chunk_size=1 << 18, on_chunk=lambda k, n: time.sleep(0.05))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    state = layout.partial_state_path(layout.local_path(data_dir, MP5))
    deadline = time.monotonic() + 60
    done: dict[str, object] = {}
    while time.monotonic() < deadline and not done:
        try:
            done = json.loads(state.read_text())["done"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    done = json.loads(state.read_text())["done"]
    assert 1 <= len(done) < 3
    fp.reset_records()
    store = _store(fp)
    report = fetch_objects([store.head(MP5)], store, data_dir, progress=False)
    assert report.downloaded == [MP5] and not report.unverified
    assert layout.local_path(data_dir, MP5).read_bytes() == bodies[MP5]
    have = sum(min(5 * MiB, size - int(i) * 5 * MiB) for i in done)
    assert _requested_bytes(fp, MP5, size) == size - have == report.bytes
    assert not state.exists()
