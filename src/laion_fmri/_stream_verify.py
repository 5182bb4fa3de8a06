"""Content checks of an object read from the source, on the fly (the download engine's rules).

:class:`ContentVerifier` applies the checks the download engine applies to
the same object (:func:`laion_fmri.download._content.rule_for`), computed
while the bytes flow instead of over a file:

* a full-object CRC the server sent (``x-amz-checksum-crc64nvme``, S3's
  default for new objects; also CRC32/CRC32C): that CRC. It covers every
  byte and runs natively at memory speed, so, as for a ranged download, it
  replaces the ETag's MD5 (~0.5 GB/s on one core, slower than a fast link);
* otherwise the MD5 of a single-part ETag, the MD5 of the part MD5s of a
  multipart ``<hex>-N`` ETag (part size inferred from ``N`` and the size;
  every plausible part size is hashed, as the bytes cannot be read twice),
  or a published SHA-256;
* the size, always.

:class:`VerifyingChunks` passes the chunks on to the decoder; slow hashes (MD5,
SHA-256) and an optional copy to a file run on a separate thread, a CRC inline.
Used by :mod:`laion_fmri._remote_betas`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from laion_fmri.download._content import (
    COMMON_PART_SIZES,
    FileDigests,
    algorithms_for,
    is_crc,
    mismatch,
    multipart_etag,
    part_size_candidates,
    rule_for,
)
from laion_fmri.stores import ObjectInfo

MiB = 1 << 20
_METHODS = {"md5": "md5", "multipart": "multipart-md5", "sha256": "sha256", "size": "size"}


class ContentVerifier:
    """Size and content checks of an object computed while it streams.

    Parameters
    ----------
    info : ObjectInfo
        What the source listed (size, ETag, full-object checksum).

    Attributes
    ----------
    method : str
        The content check in force: the CRC's name (``"crc64nvme"``,
        ``"crc32c"``, ``"crc32"``), ``"md5"``, ``"multipart-md5"``,
        ``"sha256"``, or ``"size"`` (an opaque ETag and no checksum, or a
        multipart ETag whose part size cannot be inferred: only the size and
        the decoder's gzip CRC32 vouch for the bytes).
    rule : laion_fmri.download._content.ContentRule
        The expected values.

    Examples
    --------
    >>> import hashlib
    >>> v = ContentVerifier(ObjectInfo("k", 3, hashlib.md5(b"abc").hexdigest(), None))
    >>> v.update(b"abc"); v.mismatch() is None
    True
    """

    def __init__(self, info: ObjectInfo) -> None:
        self.info = info
        self.n_bytes = 0
        rule = rule_for(info)
        if rule.checksum and is_crc(rule.checksum[0]):
            rule = replace(rule, md5=None, multipart=None, part_sizes=())
        self.rule = rule
        kind = rule.kind
        self.method = rule.checksum[0] if kind == "checksum" and rule.checksum else _METHODS[kind]
        self._whole = FileDigests(None, algorithms_for(rule))
        self._parts = [FileDigests(p, []) for p in rule.part_sizes] if rule.multipart else []

    @property
    def slow(self) -> bool:
        """True when a hash slower than memory speed runs (MD5, SHA-256): worth its own thread."""
        return bool(self._parts) or any(not is_crc(a) for a in self._whole.algorithms)

    def update(self, chunk: bytes | memoryview) -> None:
        """Feed the next bytes of the object.

        Parameters
        ----------
        chunk : bytes or memoryview
        """
        view = memoryview(chunk).cast("B")
        self.n_bytes += len(view)
        self._whole.update(view)
        for parts in self._parts:
            parts.update(view)

    def mismatch(self) -> str | None:
        """What failed (for the message), or ``None`` when every check passed.

        Returns
        -------
        str or None
        """
        if self.n_bytes != self.info.size:
            return f"{self.n_bytes} bytes arrived but the source lists {self.info.size}"
        digests = self._whole.result()
        if self._parts:
            etags = [multipart_etag(p.result()["parts"]) for p in self._parts]  # type: ignore[arg-type]
            digests["multipart"] = self.rule.multipart if self.rule.multipart in etags else etags[0]
        problem = mismatch(self.rule, digests)
        if problem and self._parts:
            tried = ", ".join(f"{p.part_size / MiB:g} MiB" for p in self._parts if p.part_size)
            problem += f" (part sizes tried: {tried})"
        return problem


class VerifyingChunks:
    """Pass chunks through to the decoder while they are verified (and optionally kept).

    A CRC (memory speed) is computed inline; MD5/SHA-256 and the copy to
    ``keep`` run on a separate thread next to the decoder, fed through a
    bounded queue (a verifier that falls behind slows the decoder instead of
    piling up ranges).

    Parameters
    ----------
    chunks : iterator of bytes
        The object's bytes in order.
    verifier : ContentVerifier
        Fed every byte.
    keep : pathlib.Path, optional
        Also write the bytes there.
    """

    def __init__(self, chunks: Iterator[Any], verifier: ContentVerifier, keep: Path | None) -> None:
        self._chunks = chunks
        self._verifier = verifier
        self._keep = keep
        self._error: BaseException | None = None
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        if verifier.slow or keep is not None:
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(target=self._run, name="laion-fmri-verify", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
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

    def _pass(self, chunk: Any) -> None:
        if self._queue is not None:
            self._queue.put(chunk)
        else:
            self._verifier.update(chunk)

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._chunks:
            self._pass(chunk)
            yield chunk

    def drain(self) -> None:
        """Feed the rest of the object (bytes the decoder did not need) to the verifier."""
        for chunk in self._chunks:
            self._pass(chunk)

    def finish(self) -> None:
        """Wait for the verifier thread; re-raise what it hit."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


__all__ = [
    "COMMON_PART_SIZES",
    "ContentVerifier",
    "VerifyingChunks",
    "part_size_candidates",
]
