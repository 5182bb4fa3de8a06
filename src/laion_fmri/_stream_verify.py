"""Content checks of an object read from the source, on the fly (size, MD5, multipart ETag).

:class:`ContentVerifier` checks the bytes while they flow: size, MD5 for a
single-part ETag, MD5 of the part MD5s for a multipart ``<hex>-N`` ETag (part
size inferred from ``N`` and the size). :class:`VerifyingChunks` runs it on a
separate thread next to the decoder and optionally tees the bytes to a file.
Used by :mod:`laion_fmri._remote_betas`.
"""

from __future__ import annotations

import hashlib
import math
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

from laion_fmri.remote import ObjectInfo

MiB = 1 << 20
#: Part sizes multipart uploaders commonly use (AWS CLI/boto3 8 MiB, S3 minimum 5 MiB ...).
COMMON_PART_SIZES = (8 * MiB, 16 * MiB, 5 * MiB, 64 * MiB)


# --------------------------------------------------------------------------- content checks
def etag_part_count(etag: str | None) -> int | None:
    """Parts of a multipart ETag (``"<32 hex>-N"`` -> N), 1 for a plain MD5, else ``None``.

    Parameters
    ----------
    etag : str, optional
        ETag without quotes.

    Returns
    -------
    int or None

    Examples
    --------
    >>> etag_part_count("0" * 32 + "-3"), etag_part_count("0" * 32), etag_part_count("xyz")
    (3, 1, None)
    """
    if not etag:
        return None
    digest, _, parts = etag.lower().partition("-")
    if len(digest) != 32 or any(c not in "0123456789abcdef" for c in digest):
        return None
    if not parts:
        return 1
    return int(parts) if parts.isdigit() and int(parts) > 0 else None


def candidate_part_sizes(size: int, n_parts: int) -> list[int]:
    """Part sizes that split ``size`` bytes into exactly ``n_parts`` (multipart ETag check).

    Tried in order: ``ceil(size / n_parts)`` rounded up to a whole MiB (what
    most uploaders that pick the part size from the file size do), then the
    common fixed sizes 8, 16, 5 and 64 MiB; only sizes giving ``n_parts``
    parts are kept.

    Parameters
    ----------
    size : int
        Object size.
    n_parts : int
        ``N`` of the ETag.

    Returns
    -------
    list of int
        Distinct candidates (possibly empty: then the ETag cannot be checked).

    Examples
    --------
    >>> [s // MiB for s in candidate_part_sizes(11 * MiB, 3)]
    [4, 5]
    """
    guesses = [math.ceil(math.ceil(size / n_parts) / MiB) * MiB, *COMMON_PART_SIZES]
    out: list[int] = []
    for part in guesses:
        if part > 0 and math.ceil(size / part) == n_parts and part not in out:
            out.append(part)
    return out


class _PartHasher:
    """MD5 of each ``part_size`` slice, then MD5 of their digests (the multipart ETag)."""

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self._digests: list[bytes] = []
        self._md5 = hashlib.md5()
        self._filled = 0

    def update(self, data: memoryview) -> None:
        while data:
            take = min(len(data), self.part_size - self._filled)
            self._md5.update(data[:take])
            self._filled += take
            data = data[take:]
            if self._filled == self.part_size:
                self._digests.append(self._md5.digest())
                self._md5, self._filled = hashlib.md5(), 0

    def etag(self) -> str:
        digests = [*self._digests, *([self._md5.digest()] if self._filled else [])]
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


class ContentVerifier:
    """Size, MD5 and multipart-ETag checks of an object computed while it streams.

    Parameters
    ----------
    info : ObjectInfo
        What the source listed (size, ETag).

    Attributes
    ----------
    method : str
        ``"md5"``, ``"multipart-md5"`` or ``"size"`` (an opaque ETag, or a
        multipart ETag whose part size cannot be inferred: only the size and
        the decoder's gzip CRC32 vouch for the bytes).

    Examples
    --------
    >>> v = ContentVerifier(ObjectInfo("k", 3, hashlib.md5(b"abc").hexdigest(), None))
    >>> v.update(b"abc"); v.mismatch() is None
    True
    """

    def __init__(self, info: ObjectInfo) -> None:
        self.info = info
        self.n_bytes = 0
        self._md5 = None
        self._parts: list[_PartHasher] = []
        n_parts = etag_part_count(info.etag)
        if n_parts == 1:
            self._md5 = hashlib.md5()
            self.method = "md5"
        elif n_parts:
            self._parts = [_PartHasher(p) for p in candidate_part_sizes(info.size, n_parts)]
            self.method = "multipart-md5" if self._parts else "size"
        else:
            self.method = "size"

    def update(self, chunk: bytes | memoryview) -> None:
        """Feed the next bytes of the object.

        Parameters
        ----------
        chunk : bytes or memoryview
        """
        view = memoryview(chunk).cast("B")
        self.n_bytes += len(view)
        if self._md5 is not None:
            self._md5.update(view)
        for hasher in self._parts:
            hasher.update(view)

    def mismatch(self) -> str | None:
        """What failed (for the message), or ``None`` when every check passed.

        Returns
        -------
        str or None
        """
        if self.n_bytes != self.info.size:
            return f"{self.n_bytes} bytes arrived but the source lists {self.info.size}"
        etag = (self.info.etag or "").lower()
        if self._md5 is not None and self._md5.hexdigest() != etag:
            return f"MD5 {self._md5.hexdigest()} != ETag {etag}"
        if self._parts and all(h.etag() != etag for h in self._parts):
            tried = ", ".join(f"{h.part_size // MiB} MiB" for h in self._parts)
            return f"multipart MD5 != ETag {etag} (part sizes tried: {tried})"
        return None


class VerifyingChunks:
    """Pass chunks through to the decoder while a thread verifies (and optionally keeps) them."""

    def __init__(self, chunks: Iterator[bytes], verifier: ContentVerifier, keep: Path | None) -> None:
        self._chunks = chunks
        self._verifier = verifier
        # Bounded: a verifier that falls behind slows the decoder instead of piling up ranges.
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._keep = keep
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="laion-fmri-verify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fh = open(self._keep, "wb") if self._keep is not None else None  # noqa: SIM115
        try:
            while (chunk := self._queue.get()) is not None:
                self._verifier.update(chunk)
                if fh is not None:
                    fh.write(chunk)
        except BaseException as exc:  # reported by finish()
            self._error = exc
            while self._queue.get() is not None:
                pass
        finally:
            if fh is not None:
                fh.close()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._queue.put(chunk)
            yield chunk

    def drain(self) -> None:
        """Feed the rest of the object (bytes the decoder did not need) to the verifier."""
        for chunk in self._chunks:
            self._queue.put(chunk)

    def finish(self) -> None:
        """Wait for the verifier thread; re-raise what it hit."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


__all__ = [
    "COMMON_PART_SIZES",
    "ContentVerifier",
    "VerifyingChunks",
    "candidate_part_sizes",
    "etag_part_count",
]
