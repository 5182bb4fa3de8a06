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

:class:`VerifyingChunks` passes the ranges on to the decoder. A CRC is computed
per range on the request thread that received it (:meth:`ContentVerifier.range_digest`)
and combined in order, off the decoder's thread; slow hashes (MD5, SHA-256) and
an optional copy to a file run on a separate thread.
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
    def per_range(self) -> bool:
        """True when every content check is a CRC: ranges can be checked apart and combined."""
        algorithms = self._whole.algorithms
        return not self._parts and bool(algorithms) and all(is_crc(a) for a in algorithms)

    def range_digest(self, pieces: list[Any]) -> tuple[int, dict[str, int]]:
        """The CRCs of one range on its own (any thread); :meth:`add_range` adds them in order.

        Parameters
        ----------
        pieces : list of bytes-like
            The range's bytes.

        Returns
        -------
        tuple of (int, dict)
            Bytes in the range, and ``{crc name: value}``.
        """
        digests = FileDigests(None, self._whole.algorithms)  # CRCs only (per_range)
        n_bytes = 0
        for piece in pieces:
            view = memoryview(piece).cast("B")
            n_bytes += len(view)
            digests.update(view)
        return n_bytes, digests.result()  # type: ignore[return-value]

    def add_range(self, digest: tuple[int, dict[str, int]]) -> None:
        """Feed the next range by its :meth:`range_digest` (only when :attr:`per_range`).

        Parameters
        ----------
        digest : tuple of (int, dict)

        Raises
        ------
        ValueError
            When a check cannot be combined from ranges (MD5, SHA-256).
        """
        if not self.per_range:
            raise ValueError(f"{self.method} cannot be combined from ranges; feed the bytes with update().")
        n_bytes, crcs = digest
        self.n_bytes += n_bytes
        self._whole.append_crcs(crcs, n_bytes)

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
    """Pass an object's ranges through to the decoder while they are verified (and optionally kept).

    A range that comes with its digest (its CRCs, computed on the request
    thread: :meth:`ContentVerifier.range_digest`) is added to the
    verifier's; otherwise its bytes are fed to it, a CRC inline, while
    MD5/SHA-256 and the copy to ``keep`` run on a separate thread next to
    the decoder, fed through a bounded queue (a verifier that falls behind
    slows the decoder instead of piling up ranges).

    Parameters
    ----------
    ranges : iterator of (list, object)
        The object's ranges in order: ``(pieces, digest or None)``
        (:meth:`laion_fmri._ranged_reads.RangeReader.iter_ranges`).
    verifier : ContentVerifier
        Fed every byte.
    keep : pathlib.Path, optional
        Also write the bytes there.
    """

    def __init__(self, ranges: Iterator[tuple[list[Any], Any]], verifier: ContentVerifier,
                 keep: Path | None) -> None:
        self._ranges = ranges
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
            while (item := self._queue.get()) is not None:
                pieces, digest = item
                for piece in pieces:
                    if digest is None:
                        self._verifier.update(piece)
                    if fh is not None:
                        fh.write(piece)
        except BaseException as exc:  # reported by finish()
            self._error = exc
            while self._queue.get() is not None:
                pass
        finally:
            if fh is not None:
                fh.close()

    def _pass(self, pieces: list[Any], digest: Any) -> None:
        if digest is not None:
            self._verifier.add_range(digest)
        if self._queue is not None:
            self._queue.put((pieces, digest))
        elif digest is None:
            for piece in pieces:
                self._verifier.update(piece)

    def __iter__(self) -> Iterator[list[Any]]:
        for pieces, digest in self._ranges:
            self._pass(pieces, digest)
            yield pieces

    def drain(self) -> None:
        """Feed the rest of the object (bytes the decoder did not need) to the verifier."""
        for pieces, digest in self._ranges:
            self._pass(pieces, digest)

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
