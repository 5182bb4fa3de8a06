"""Stream a betas object from the source straight into the decoder (no ``.nii.gz`` on disk).

Time-to-betas by downloading first is ``network + inflate``; streaming makes it
about ``max(network, inflate)``:

* :class:`RangeReader` (:mod:`laion_fmri._ranged_reads`) reads the object in
  ranged requests, ``in_flight`` of them at once on a thread pool, and hands
  the ranges back **in order**; a
  bounded number of ranges is fetched ahead of the decoder, and all streams
  of the process share one :class:`ReadAheadBudget` (bounded memory);
* :class:`RangeStream` exposes them as a read-only binary file, which the
  same zlib-ng streaming decoder and voxel gather as for local files
  (:func:`laion_fmri.nifti.read_masked`) consume, each range as soon as it
  is in;
* :class:`ContentVerifier` (:mod:`laion_fmri._stream_verify`) checks the
  bytes while they flow with the download engine's rules: the server's
  full-object CRC64NVME when it sends one (each range's CRC computed on the
  request thread that received it, combined in order), else MD5 for a
  single-part ETag or MD5 of the part MD5s for a multipart ``<hex>-N`` ETag
  (on a separate thread), and the size; on top of the per-member gzip CRC32
  the decoder checks;
* :func:`stream_betas` returns the gathered array only after every check
  passed (``on_verified`` runs then, e.g. to fill the masked cache);
  :func:`stream_sessions` pipelines several sessions across a thread pool.

Workers that share nothing with the client build on it in
:mod:`laion_fmri._distributed_betas`; the brain-mask index the offsets come
from is :mod:`laion_fmri._mask_index`.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laion_fmri import _nifti as nifti
from laion_fmri._ranged_reads import (  # noqa: F401 - re-exported: the streamer's building blocks
    DEFAULT_IN_FLIGHT,
    DEFAULT_RANGE_BYTES,
    DEFAULT_READ_AHEAD_BYTES,
    READ_AHEAD,
    ObjectStart,
    RangeReader,
    ReadAheadBudget,
    first_range_bytes,
    initial_in_flight,
    leading_ranges,
    plan_ranges,
    read_object,
)
from laion_fmri._stream_verify import ContentVerifier, VerifyingChunks
from laion_fmri.errors import CorruptFileError, IntegrityError
from laion_fmri.stores import ObjectInfo, Store

MiB = 1 << 20
#: Sessions streamed at once by :func:`stream_sessions`.
DEFAULT_SESSIONS_IN_FLIGHT = 2


class RangeStream(io.RawIOBase):
    """A read-only binary file over an object's ranges as they arrive (what the gzip reader reads).

    A read returns what has arrived of the range being read, up to the
    size asked for, and waits only when nothing is left: the decoder starts
    on the first (small) range instead of waiting until its whole input
    buffer is filled, and later takes a range per read.

    Parameters
    ----------
    ranges : iterable
        The object's ranges in order, each a list of bytes-like pieces or one
        bytes-like object.
    name : str
        Shown in messages (the object's key).

    Examples
    --------
    >>> RangeStream([b"ab", [b"c", b"d"]]).read()
    b'abcd'
    """

    def __init__(self, ranges: Any, name: str = "<stream>") -> None:
        super().__init__()
        self._ranges = iter(ranges)
        self._pieces: deque[memoryview] = deque()
        self._ended = False
        self.name = name

    def readable(self) -> bool:
        """Always true."""
        return True

    def _next_range(self) -> bool:
        """Wait for the next range with bytes in it; ``False`` at the end."""
        while not self._ended:
            item = next(self._ranges, None)
            if item is None:
                self._ended = True
                break
            views = [memoryview(p).cast("B") for p in (item if isinstance(item, list) else [item])]
            self._pieces.extend(v for v in views if len(v))
            if self._pieces:
                return True
        return False

    def peek(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer at the end), without consuming them.

        Parameters
        ----------
        n : int

        Returns
        -------
        bytes
        """
        while sum(len(v) for v in self._pieces) < n and self._next_range():
            pass
        head = bytearray()
        for piece in self._pieces:
            head += piece[: n - len(head)]
            if len(head) >= n:
                break
        return bytes(head)

    def readinto(self, b: Any) -> int:
        """Copy what has arrived (waiting only if nothing has) into ``b``; 0 at the end.

        Parameters
        ----------
        b : writable buffer

        Returns
        -------
        int
            Bytes copied.
        """
        if not self._pieces and not self._next_range():
            return 0
        out = memoryview(b).cast("B")
        filled, pieces = 0, self._pieces
        while pieces and filled < len(out):
            piece = pieces[0]
            n = min(len(piece), len(out) - filled)
            out[filled : filled + n] = piece[:n]
            filled += n
            if n == len(piece):
                pieces.popleft()
            else:
                pieces[0] = piece[n:]
        return filled


# --------------------------------------------------------------------------- one object
@dataclass(frozen=True)
class StreamedBetas:
    """A session read from the source and verified.

    Attributes
    ----------
    betas : numpy.ndarray
        ``(n_volumes, n_selected)`` float32, C-contiguous.
    header : laion_fmri.nifti.NiftiHeader
        The image header (``path`` is the object key).
    info : ObjectInfo
        Size and ETag the bytes were checked against.
    verified : str
        The content check passed (:attr:`ContentVerifier.method`: ``"crc64nvme"``,
        ``"md5"``, ``"multipart-md5"``, ``"size"`` ...), plus the gzip CRC32 in every case.
    seconds : float
        Wall time from the first request to the verified array.
    """

    betas: np.ndarray
    header: nifti.NiftiHeader
    info: ObjectInfo
    verified: str
    seconds: float


def _header_from_stream(stream: RangeStream, key: str) -> nifti.NiftiHeader:
    """Parse the NIfTI header from the start of a (gzip) stream, without consuming it.

    The header goes through every check of :func:`laion_fmri.nifti.read_header`
    that does not need the file's size (:func:`laion_fmri._nifti.parse_header`).
    """
    import zlib

    head = stream.peek(1 << 16)
    compressed = head[:2] == b"\x1f\x8b"
    if compressed:
        try:
            raw = zlib.decompressobj(wbits=31).decompress(head, nifti.HEADER_SIZE)
        except zlib.error as exc:
            raise CorruptFileError(f"{key} is not a readable NIfTI-1 file: bad gzip start ({exc}).") from exc
    else:
        raw = head[: nifti.HEADER_SIZE]
    return nifti.parse_header(raw, Path(key), compressed)


def stream_betas(
    store: Store,
    key: str,
    offsets: np.ndarray | None = None,
    *,
    info: ObjectInfo | None = None,
    range_bytes: int = DEFAULT_RANGE_BYTES,
    in_flight: int = DEFAULT_IN_FLIGHT,
    keep: str | os.PathLike[str] | None = None,
    on_verified: Callable[[StreamedBetas], None] | None = None,
) -> StreamedBetas:
    """Read a betas object from the source, decode and gather it while it arrives, verify it.

    Parameters
    ----------
    store : Store
        The source (``laion_fmri.remote.open_store()``).
    key : str
        Object key (``laion_fmri.layout.betas_key(subject, session)``).
    offsets : numpy.ndarray, optional
        Disk-order voxel offsets (:func:`laion_fmri.nifti.gather_offsets`);
        ``None`` keeps every voxel.
    info : ObjectInfo, optional
        The object's listing; fetched with ``store.head`` when not given.
    range_bytes : int
        Bytes per ranged request.
    in_flight : int
        Ranged requests at once (bounded read-ahead of the decoder).
    keep : str or os.PathLike, optional
        Also write the object there (as ``<keep>.part``, renamed only after
        every check passed).
    on_verified : callable, optional
        Called with the result after verification, before returning (e.g. to
        fill the masked cache); never called for data that failed a check.

    Returns
    -------
    StreamedBetas

    Raises
    ------
    IntegrityError
        Size or MD5/multipart ETag mismatch (nothing is kept or cached).
    CorruptFileError
        The bytes are not a readable NIfTI (bad header, damaged gzip, CRC32).
    DataNotFoundError, AccessDeniedError, ObjectChangedError, SourceUnavailableError
        From the source.

    Examples
    --------
    >>> res = stream_betas(open_store(), layout.betas_key("sub-03", "ses-01"), offsets)  # doctest: +SKIP
    >>> res.betas.shape, res.verified  # doctest: +SKIP
    ((1044, 61234), 'md5')
    """
    t0 = time.perf_counter()
    early, initial = None, None
    if info is None:
        info, early, initial = start_object(store, key, range_bytes, in_flight)
    keep_path = Path(keep) if keep is not None else None
    part = keep_path.with_name(keep_path.name + ".part") if keep_path is not None else None
    try:
        if part is not None:
            part.parent.mkdir(parents=True, exist_ok=True)
        verifier = ContentVerifier(info)
        # Each range's CRC is computed on the thread that received it, not the decoder's.
        reader = RangeReader(store, info, range_bytes, in_flight, prefetch=early,
                             initial_in_flight=initial,
                             digest=verifier.range_digest if verifier.per_range else None)
        source = reader.iter_ranges()
        tee = VerifyingChunks(source, verifier, part)
        try:
            raw = RangeStream(tee, name=key)
            header = _header_from_stream(raw, key)
            if header.compressed and header.data_bytes > info.size * 1032 + MiB:
                raise CorruptFileError(
                    f"{key}: the header claims {header.data_bytes} bytes, impossible for a "
                    f"{info.size}-byte gzip object."
                )
            betas = nifti.read_masked(raw, offsets, header=header)
            tee.drain()  # bytes after the image data still belong to the object
        except CorruptFileError as exc:
            raise CorruptFileError(
                f"{key} from {store.url} could not be decoded ({exc}); nothing was kept or "
                "cached. Try again; if it persists the source copy is damaged."
            ) from exc
        finally:
            source.close()  # cancels read-ahead that is not needed any more
            tee.finish()
        problem = verifier.mismatch()
        if problem is not None:
            raise IntegrityError(
                f"{key} from {store.url} failed its content check ({problem}); nothing was kept "
                "or cached. Try again; if it persists the source copy is damaged."
            )
    except BaseException:
        if early is not None:
            early.close()  # reads the reader never took give their budget back
        if part is not None:
            part.unlink(missing_ok=True)
        raise
    result = StreamedBetas(betas, header, info, verifier.method, time.perf_counter() - t0)
    if part is not None and keep_path is not None:
        os.replace(part, keep_path)
    if on_verified is not None:
        on_verified(result)
    return result


_STARTED_LOCK = threading.Lock()
_STARTED: dict[tuple[str, str], ObjectStart] = {}


def start_object(
    store: Store, key: str, range_bytes: int = DEFAULT_RANGE_BYTES,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> tuple[ObjectInfo, ObjectStart, int]:
    """An object's listing, its first ranges in flight, and the requests to start the reader with.

    The first ranges go out with the listing (one first-byte latency before
    decoding), unless :func:`started` asked for them already.

    Parameters
    ----------
    store : Store
        The source.
    key : str
        Object key.
    range_bytes : int
        Bytes per ranged request once ramped up.
    in_flight : int
        The most requests at once.

    Returns
    -------
    tuple of (ObjectInfo, ObjectStart, int)
        For ``RangeReader(store, info, prefetch=start, initial_in_flight=n)``.

    Examples
    --------
    >>> info, start, n = start_object(store, key)  # doctest: +SKIP
    """
    with _STARTED_LOCK:
        start = _STARTED.pop((store.url, key), None)
    if start is None:
        start = ObjectStart(store, key, leading_ranges(range_bytes, in_flight))
    info, round_trip = start.result()
    return info, start, initial_in_flight(round_trip, in_flight)


@contextlib.contextmanager
def started(store: Store, keys: Sequence[str]) -> Iterator[None]:
    """Ask for these objects' listings and first ranges now, for :func:`stream_betas` to take.

    For work that must precede decoding but not the network (fetching the
    brain mask the voxel offsets come from): inside the block,
    :func:`stream_betas` of one of ``keys`` from the same source picks its
    start up instead of asking again; at the end of the block, what was not
    picked up gives its read-ahead budget back.

    Parameters
    ----------
    store : Store
        The source.
    keys : sequence of str
        Object keys (each at most once at a time; a key already started is
        left to its first starter).

    Examples
    --------
    >>> with started(store, [key]):  # doctest: +SKIP
    ...     offsets = fetch_mask_and_derive_offsets()
    ...     res = stream_betas(store, key, offsets)
    """
    mine: dict[tuple[str, str], ObjectStart] = {}
    try:
        with _STARTED_LOCK:
            for key in keys:
                if (store.url, key) not in _STARTED:
                    start = ObjectStart(store, key, leading_ranges())
                    mine[(store.url, key)] = _STARTED[(store.url, key)] = start
        yield
    finally:
        with _STARTED_LOCK:
            for name, start in mine.items():
                if _STARTED.get(name) is start:
                    del _STARTED[name]
        for start in mine.values():
            start.close()


def stream_sessions(
    store: Store,
    jobs: Sequence[tuple[str, np.ndarray | None]],
    *,
    sessions_in_flight: int = DEFAULT_SESSIONS_IN_FLIGHT,
    in_flight: int = DEFAULT_IN_FLIGHT,
    **kwargs: Any,
) -> Iterator[StreamedBetas]:
    """Stream several objects, ``sessions_in_flight`` at once, yielding results in ``jobs`` order.

    Parameters
    ----------
    store : Store
        The source.
    jobs : sequence of (key, offsets)
        One per session.
    sessions_in_flight : int
        Sessions decoded concurrently (each with its own ranged reads).
    in_flight : int
        Ranged requests at once per session (the process-wide
        :class:`ReadAheadBudget` bounds the read-ahead of all of them together;
        the earlier session is served first).
    **kwargs
        Passed to :func:`stream_betas` (``range_bytes``, ``on_verified`` ...).

    Yields
    ------
    StreamedBetas
        In the order of ``jobs``.

    Examples
    --------
    >>> keys = [layout.betas_key("sub-03", s) for s in ("ses-01", "ses-02")]  # doctest: +SKIP
    >>> [r.betas.shape for r in stream_sessions(store, [(k, offsets) for k in keys])]  # doctest: +SKIP
    """
    n = max(1, min(int(sessions_in_flight), len(jobs)))
    with ThreadPoolExecutor(n, thread_name_prefix="laion-fmri-session") as pool:
        pending: deque[Future[StreamedBetas]] = deque()
        try:
            for key, offsets in jobs:
                pending.append(pool.submit(
                    stream_betas, store, key, offsets, in_flight=in_flight, **kwargs))
                if len(pending) >= n:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()


__all__ = [
    "READ_AHEAD",
    "ContentVerifier",
    "ObjectStart",
    "RangeReader",
    "RangeStream",
    "ReadAheadBudget",
    "StreamedBetas",
    "first_range_bytes",
    "plan_ranges",
    "read_object",
    "start_object",
    "started",
    "stream_betas",
    "stream_sessions",
]
