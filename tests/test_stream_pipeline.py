"""The streamer's hand-offs: what runs on which thread, and when the decoder gets its bytes."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from laion_fmri import _read_budget
from laion_fmri import _remote_betas as rb
from laion_fmri._stream_verify import ContentVerifier, VerifyingChunks
from laion_fmri.download._content import checksum_text, crc_update
from laion_fmri.remote import ObjectInfo


def test_a_read_takes_what_has_arrived_without_waiting_for_more() -> None:
    """The decoder starts on the first small range; a range still in flight is not waited for."""
    second_asked = threading.Event()

    def ranges():  # type: ignore[no-untyped-def]
        yield [b"ab", b"cd"]
        second_asked.set()
        yield b"ef"

    stream = rb.RangeStream(ranges(), name="k")
    assert stream.peek(3) == b"abc"  # peeking consumes nothing
    buf = bytearray(1 << 20)
    assert stream.readinto(buf) == 4 and bytes(buf[:4]) == b"abcd"
    assert not second_asked.is_set()
    small = bytearray(1)
    assert stream.readinto(small) == 1 and small == b"e" and second_asked.is_set()
    assert stream.read() == b"f" and stream.readinto(buf) == 0
    # A peek that needs more than one range waits for the next one.
    assert rb.RangeStream(iter([b"a", [b"", b"bc"]])).peek(3) == b"abc"


def _crc_info(body: bytes) -> ObjectInfo:
    value = checksum_text("crc64nvme", crc_update("crc64nvme", body))
    return ObjectInfo("k", len(body), None, None, checksum=("crc64nvme", value))


def test_range_crcs_are_computed_on_the_request_threads_and_combined() -> None:
    """Each range's CRC runs where the range arrived, not on the consumer's thread."""
    body = os.urandom(1000)
    verifier = ContentVerifier(_crc_info(body))
    assert verifier.per_range and not verifier.slow
    digest_threads: list[int] = []

    def digest(pieces):  # type: ignore[no-untyped-def]
        digest_threads.append(threading.get_ident())
        return verifier.range_digest(pieces)

    def fake_read(store, key, start, end, etag=None):  # type: ignore[no-untyped-def]
        return [body[start:end]]

    reader = rb.RangeReader(None, ObjectInfo("k", len(body), None, None),  # type: ignore[arg-type]
                            range_bytes=64, in_flight=4, read_range=fake_read, digest=digest)
    tee = VerifyingChunks(reader.iter_ranges(), verifier, None)
    got = b"".join(b"".join(pieces) for pieces in tee)
    tee.finish()
    assert got == body and verifier.mismatch() is None
    assert len(digest_threads) == len(reader.ranges) > 1
    assert threading.get_ident() not in digest_threads
    # One byte changed in one range: the combined CRC no longer matches the server's.
    bad = ContentVerifier(_crc_info(body))
    damaged = body[:500] + bytes([body[500] ^ 1]) + body[501:]
    for start, end in rb.plan_ranges(len(body), 64):
        bad.add_range(bad.range_digest([damaged[start:end]]))
    assert "crc64nvme checksum" in (bad.mismatch() or "")


def test_ranges_without_a_crc_are_hashed_whole() -> None:
    """An MD5 ETag cannot be combined from ranges: no per-range digest, the bytes are fed in order."""
    import hashlib

    body = os.urandom(300)
    verifier = ContentVerifier(ObjectInfo("k", len(body), hashlib.md5(body).hexdigest(), None))
    assert not verifier.per_range
    with pytest.raises(ValueError, match="update"):
        verifier.add_range((3, {}))
    tee = VerifyingChunks(iter([([body[:100]], None), ([body[100:]], None)]), verifier, None)
    assert b"".join(b"".join(p) for p in tee) == body
    tee.finish()
    assert verifier.mismatch() is None and verifier.method == "md5"


def test_request_threads_are_started_before_any_request() -> None:
    """Threads started ahead of the work do not wait on busy request threads for the interpreter lock."""
    prefix = "laion-fmri-test-prestart"
    pool = ThreadPoolExecutor(5, thread_name_prefix=prefix)
    try:
        _read_budget._start_threads(pool, 5)
        named = [t for t in threading.enumerate() if t.name.startswith(prefix)]
        assert len(named) == 5
        assert pool.submit(threading.current_thread).result().name.startswith(prefix)
        assert len([t for t in threading.enumerate() if t.name.startswith(prefix)]) == 5
    finally:
        pool.shutdown()
    shared = _read_budget.range_pool()
    assert len([t for t in threading.enumerate() if t.name.startswith("laion-fmri-range")]) \
        >= _read_budget.RANGE_THREADS
    assert shared is _read_budget.range_pool()
