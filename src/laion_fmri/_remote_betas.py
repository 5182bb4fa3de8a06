"""Stream a betas object from the source straight into the decoder (no ``.nii.gz`` on disk).

Time-to-betas by downloading first is ``network + inflate``; streaming makes it
about ``max(network, inflate)``:

* :class:`RangeReader` reads the object in ranged requests, ``in_flight`` of
  them at once on a thread pool, and hands the ranges back **in order**; a
  bounded number of ranges is fetched ahead of the decoder, and all streams
  of the process share one :class:`ReadAheadBudget` (bounded memory);
* :class:`RangeStream` exposes them as a read-only binary file, which the
  same zlib-ng streaming decoder and voxel gather as for local files
  (:func:`laion_fmri.nifti.read_masked`) consume;
* :class:`ContentVerifier` (:mod:`laion_fmri._stream_verify`) checks the
  bytes while they flow with the download engine's rules: the server's
  full-object CRC64NVME when it sends one (native, inline), else MD5 for a
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

import dataclasses
import io
import os
import queue
import tempfile
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
from laion_fmri._stream_verify import ContentVerifier, VerifyingChunks
from laion_fmri.errors import CorruptFileError, IntegrityError
from laion_fmri.stores import ObjectInfo, Store

MiB = 1 << 20
#: Bytes per ranged request once ramped up. Measured behind the WAN proxy
#: (60 MB/s per connection, 30 ms first byte, 300 MB/s link): 12 x 2 MiB in
#: flight fill the link as well as 12 x 4 MiB, 6 x 8 MiB or 4 x 16 MiB do
#: with more read-ahead memory.
DEFAULT_RANGE_BYTES = 2 * MiB
#: Ranged requests in flight per object (one connection each).
DEFAULT_IN_FLIGHT = 12
#: Read-ahead of all streams of a process together (requested, not yet decoded).
DEFAULT_READ_AHEAD_BYTES = 32 * MiB
#: Threads running ranged requests, for all streams of a process together.
RANGE_THREADS = 16
#: Bytes per socket read inside one range (small pieces: freed memory is reused at once,
#: also where malloc maps every larger block afresh, as in dask workers).
_READ_PIECE = 96 * 1024
#: Sessions streamed at once by :func:`stream_sessions`.
DEFAULT_SESSIONS_IN_FLIGHT = 2


# --------------------------------------------------------------------------- ranged reads
def _get_range(
    store: Store, key: str, start: int, end: int, etag: str | None = None
) -> tuple[int, str | None, list[Any]]:
    """One ranged GET of ``[start, end)``: ``(end of what came, the answer's ETag, pieces)``.

    The one place that issues a ranged read: a bounded ``Store.open(key,
    start, end=end)`` (``Range: bytes=start-(end-1)``, ``If-Match: etag``
    when given), so an S3 connection is read to the end of its answer and
    goes back to the pool (an open-ended range cut short would make the
    server send on and the connection be dropped). The pieces (about
    :data:`_READ_PIECE` bytes each) are handed on as they are: no copy into
    one buffer, and no allocation of the range's size per thread (which
    leaves freed memory behind in every thread's malloc arena). An object
    shorter than ``end`` ends the range early.
    """
    pieces: list[Any] = []
    with store.open(key, start=start, if_match=etag, chunk_size=min(end - start, _READ_PIECE),
                    end=end) as dl:
        skip = start - dl.start  # a server that ignored Range sends from byte 0
        want = min(end, dl.end) - start
        filled = 0
        for chunk in dl:
            piece: Any = chunk
            if skip:
                view = memoryview(chunk).cast("B")
                cut = min(skip, len(view))
                piece, skip = view[cut:], skip - cut
            take = min(len(piece), want - filled)
            if take:
                pieces.append(piece if take == len(piece) else memoryview(piece).cast("B")[:take])
                filled += take
            if filled >= want:
                break
        answer_etag = dl.info.etag
    return start + filled, answer_etag, pieces


def _read_pieces(store: Store, key: str, start: int, end: int, etag: str | None = None) -> list[Any]:
    """Bytes ``[start, end)`` of ``key`` as the pieces they arrived in (``If-Match``: ``etag``)."""
    got, _, pieces = _get_range(store, key, start, end, etag)
    if got != end:
        raise IntegrityError(
            f"{key!r}: the source sent {got - start} bytes for the range {start}-{end - 1} "
            f"({end - start} expected); the object is shorter than listed or the transfer was cut."
        )
    return pieces


def _read_range(store: Store, key: str, start: int, end: int, etag: str | None = None) -> bytes:
    """Bytes ``[start, end)`` of ``key`` in one ``bytes`` (small objects: masks, trial tables)."""
    pieces = _read_pieces(store, key, start, end, etag)
    return pieces[0] if len(pieces) == 1 and isinstance(pieces[0], bytes) else b"".join(pieces)


def head_and_start(
    store: Store, key: str, nbytes: int
) -> tuple[ObjectInfo, tuple[int, list[Any]] | None]:
    """``store.head(key)`` and the object's first ``nbytes`` at once: one round trip, not two.

    Parameters
    ----------
    store : Store
        The source.
    key : str
        Object key.
    nbytes : int
        Bytes to read from the start.

    Returns
    -------
    tuple
        The HEAD's :class:`ObjectInfo`, and ``(end, pieces)`` of the first
        bytes, or ``None`` when they cannot be used (another version of the
        object answered, or the read failed: the ranged reads then ask again,
        with ``If-Match``, and report what is wrong).

    Examples
    --------
    >>> info, start = head_and_start(store, key, 1 << 18)  # doctest: +SKIP
    """
    pool = _range_pool()
    head = pool.submit(store.head, key)
    start = pool.submit(_get_range, store, key, 0, nbytes)  # size and ETag not known yet
    try:
        info = head.result()
    except BaseException:
        start.cancel()
        raise
    try:
        end, etag, pieces = start.result()
    except Exception:
        return info, None
    if end <= 0 or end > info.size or (end < nbytes and end != info.size) or (
        info.etag is not None and etag != info.etag
    ):
        return info, None
    return info, (end, pieces)


def plan_ranges(
    size: int, range_bytes: int = DEFAULT_RANGE_BYTES, first_bytes: int | None = None
) -> list[tuple[int, int]]:
    """Split ``size`` bytes into consecutive ``[start, end)`` ranges.

    The first range is ``first_bytes`` and each next one doubles up to
    ``range_bytes``: the decoder can start after a small first read, while
    the bulk moves in large ranges.

    Parameters
    ----------
    size : int
        Object size.
    range_bytes : int
        Bytes per range once ramped up (> 0).
    first_bytes : int, optional
        Size of the first range (default ``range_bytes / 8``, at least 64 KiB).

    Returns
    -------
    list of tuple of int

    Examples
    --------
    >>> plan_ranges(10, 4, first_bytes=4)
    [(0, 4), (4, 8), (8, 10)]
    >>> plan_ranges(20, 8, first_bytes=2)
    [(0, 2), (2, 6), (6, 14), (14, 20)]
    """
    if range_bytes <= 0:
        raise ValueError(f"range_bytes must be positive, got {range_bytes}.")
    step = first_bytes if first_bytes is not None else first_range_bytes(range_bytes)
    step = max(1, min(step, range_bytes))
    out, start = [], 0
    while start < size:
        out.append((start, min(start + step, size)))
        start += step
        step = min(step * 2, range_bytes)
    return out


def first_range_bytes(range_bytes: int) -> int:
    """Size of an object's first range: ``range_bytes / 8``, at least 64 KiB (the header's read).

    Parameters
    ----------
    range_bytes : int

    Returns
    -------
    int

    Examples
    --------
    >>> first_range_bytes(2 << 20) == 256 * 1024
    True
    """
    return max(range_bytes // 8, min(range_bytes, 1 << 16))


class ReadAheadBudget:
    """Bytes of ranges requested but not yet decoded, shared by every stream of a process.

    Sessions streamed at the same time (``stream_sessions``, ``get_betas``
    of several sessions) draw on one budget, so their read-ahead together
    stays below ``max_bytes`` whatever the number of sessions; the session
    that asked first is served first. A range larger than the whole budget
    is let through when nothing else is held (no deadlock).

    Parameters
    ----------
    max_bytes : int
        The cap.

    Examples
    --------
    >>> budget = ReadAheadBudget(10)
    >>> budget.acquire(8); budget.held
    8
    >>> budget.release(8); budget.held
    0
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.held = 0
        self._cond = threading.Condition()

    def acquire(self, n: int, stop: threading.Event | None = None) -> bool:
        """Wait until ``n`` bytes fit (``False`` if ``stop`` was set meanwhile).

        Parameters
        ----------
        n : int
            Bytes wanted.
        stop : threading.Event, optional
            Gives up waiting once set.

        Returns
        -------
        bool
        """
        with self._cond:
            while self.held and self.held + n > self.max_bytes:
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(0.05)
            if stop is not None and stop.is_set():
                return False
            self.held += n
            return True

    def release(self, n: int) -> None:
        """Give ``n`` bytes back.

        Parameters
        ----------
        n : int
        """
        with self._cond:
            self.held -= n
            self._cond.notify_all()


#: The process-wide budget (:data:`DEFAULT_READ_AHEAD_BYTES`).
READ_AHEAD = ReadAheadBudget(DEFAULT_READ_AHEAD_BYTES)


class RangeReader:
    """Fetch an object's ranges concurrently and yield them in order.

    ``in_flight`` requests run at once, and new ones start as soon as a
    request finishes, independently of how fast the consumer takes ranges,
    until ``ahead`` ranges are fetched or fetching but not yet consumed, and
    while the process-wide :class:`ReadAheadBudget` allows: memory is bounded
    and the network never waits for the decoder to finish a range before
    asking for the next one.

    Parameters
    ----------
    store : Store
        Where the object lives.
    info : ObjectInfo
        The object's key, size and ETag (from ``store.head``).
    range_bytes : int
        Bytes per request.
    in_flight : int
        Requests at once.
    read_range : callable, optional
        ``(store, key, start, end, etag) -> list of bytes-like`` (the range's
        pieces in order); defaults to ``_read_pieces`` (over the module's one
        seam, ``_get_range``).
    ahead : int, optional
        Ranges fetched ahead of the consumer (default ``in_flight + 2``).
    budget : ReadAheadBudget, optional
        Shared cap on read-ahead bytes (default: the process-wide :data:`READ_AHEAD`).
    first : tuple of (int, list), optional
        ``(end, pieces)``: bytes ``[0, end)`` already read (:func:`head_and_start`).

    Examples
    --------
    >>> b"".join(RangeReader(store, store.head(key)))  # doctest: +SKIP
    """

    def __init__(
        self, store: Store, info: ObjectInfo, range_bytes: int = DEFAULT_RANGE_BYTES,
        in_flight: int = DEFAULT_IN_FLIGHT,
        read_range: Callable[[Store, str, int, int, str | None], Any] | None = None,
        ahead: int | None = None, budget: ReadAheadBudget | None = None,
        first: tuple[int, list[Any]] | None = None,
    ) -> None:
        self.store = store
        self.info = info
        self._first = first if first is not None and 0 < first[0] <= info.size else None
        self.ranges = plan_ranges(info.size, range_bytes, self._first[0] if self._first else None)
        self.in_flight = max(1, int(in_flight))
        self.ahead = max(self.in_flight, int(ahead) if ahead is not None else self.in_flight + 2)
        self.budget = budget if budget is not None else READ_AHEAD
        self._read = read_range or _read_pieces

    def __iter__(self) -> Iterator[Any]:
        slots = threading.Semaphore(self.ahead)  # ranges fetched or fetching, not yet consumed
        requests = threading.Semaphore(self.in_flight)  # requests of this object at once
        ready: queue.Queue[tuple[Future[Any], int] | None] = queue.Queue()
        stop = threading.Event()
        pool = _range_pool()
        budget = self.budget

        def feed() -> None:
            try:
                for start, end in self.ranges:
                    slots.acquire()
                    if stop.is_set() or not budget.acquire(end - start, stop):
                        break
                    if start == 0 and self._first is not None:
                        fut: Future[Any] = Future()
                        fut.set_result(self._first[1])
                        self._first = None
                        ready.put((fut, end - start))
                        continue
                    requests.acquire()
                    if stop.is_set():
                        requests.release()
                        budget.release(end - start)
                        break
                    fut = pool.submit(self._read, self.store, self.info.key, start, end, self.info.etag)
                    fut.add_done_callback(lambda _: requests.release())
                    ready.put((fut, end - start))
            finally:
                ready.put(None)

        feeder = threading.Thread(target=feed, name="laion-fmri-range-feed", daemon=True)
        feeder.start()
        held = 0  # budget of the range the consumer holds now
        try:
            while (item := ready.get()) is not None:
                fut, n = item
                data = fut.result()
                if held:
                    budget.release(held)
                held = n
                slots.release()
                if isinstance(data, list):
                    yield from data
                else:
                    yield data
        finally:
            stop.set()
            slots.release()  # wakes a feeder waiting for a slot
            requests.release()  # ... or for a request
            feeder.join()
            if held:
                budget.release(held)
            while True:
                try:
                    left = ready.get_nowait()
                except queue.Empty:
                    break
                if left is not None:
                    # A request already running gives its budget back when it ends.
                    left[0].add_done_callback(lambda _, n=left[1]: budget.release(n))
                    left[0].cancel()


_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def _range_pool() -> ThreadPoolExecutor:
    """The process-wide threads that run ranged requests (shared by every stream).

    One pool instead of one per object keeps the thread count (and the malloc
    arenas each busy thread ends up with) bounded when sessions stream side by side.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(RANGE_THREADS, thread_name_prefix="laion-fmri-range")
        return _POOL


def _forget_pool() -> None:  # a forked child does not inherit the parent's threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class RangeStream(io.RawIOBase):
    """A read-only binary file over an iterator of byte chunks (what the gzip reader reads).

    Parameters
    ----------
    chunks : iterable of bytes
        The object's bytes in order.
    name : str
        Shown in messages (the object's key).

    Examples
    --------
    >>> RangeStream([b"ab", b"c"]).read()
    b'abc'
    """

    def __init__(self, chunks: Any, name: str = "<stream>") -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._buf = memoryview(b"")
        self.name = name

    def readable(self) -> bool:
        """Always true."""
        return True

    def readinto(self, b: Any) -> int:
        """Copy the next bytes into ``b``; 0 at the end.

        Parameters
        ----------
        b : writable buffer

        Returns
        -------
        int
            Bytes copied.
        """
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


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


def _header_from_stream(stream: io.BufferedReader, key: str) -> nifti.NiftiHeader:
    """Parse the NIfTI header from the start of a (gzip) stream, without consuming it.

    The header goes through :func:`laion_fmri.nifti.read_header` (all its
    checks) via a 348-byte in-memory file: the validator works on paths.
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
    if hasattr(os, "memfd_create"):  # Linux: an in-memory file, no filesystem round trip
        fd = os.memfd_create("laion-fmri-header")
        try:
            os.write(fd, raw)
            hdr = nifti.read_header(f"/proc/self/fd/{fd}", check_size=False)
        finally:
            os.close(fd)
    else:  # pragma: no cover - other platforms
        with tempfile.TemporaryDirectory(prefix="laion-fmri-hdr-") as tmp:
            path = Path(tmp) / "header.nii"
            path.write_bytes(raw)
            hdr = nifti.read_header(path, check_size=False)
    return dataclasses.replace(hdr, path=Path(key), compressed=compressed)


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
    first = None
    if info is None:
        info, first = head_and_start(store, key, first_range_bytes(range_bytes))
    verifier = ContentVerifier(info)
    keep_path = Path(keep) if keep is not None else None
    part = keep_path.with_name(keep_path.name + ".part") if keep_path is not None else None
    if part is not None:
        part.parent.mkdir(parents=True, exist_ok=True)
    reader = RangeReader(store, info, range_bytes, in_flight, first=first)
    source = iter(reader)
    tee = VerifyingChunks(source, verifier, part)
    try:
        try:
            raw = io.BufferedReader(RangeStream(tee, name=key), buffer_size=1 << 16)
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
        if part is not None:
            part.unlink(missing_ok=True)
        raise
    result = StreamedBetas(betas, header, info, verifier.method, time.perf_counter() - t0)
    if part is not None and keep_path is not None:
        os.replace(part, keep_path)
    if on_verified is not None:
        on_verified(result)
    return result


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
    "RangeReader",
    "RangeStream",
    "ReadAheadBudget",
    "StreamedBetas",
    "first_range_bytes",
    "head_and_start",
    "plan_ranges",
    "stream_betas",
    "stream_sessions",
]
