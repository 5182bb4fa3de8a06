"""Ranged reads of an object from the source, fetched ahead of a consumer with bounded memory.

* :func:`_get_range` is the one place that issues a ranged GET (bounded
  ``Range``, ``If-Match``); :func:`head_and_start` asks for the object's
  listing and its first bytes in one round trip; :func:`read_object` reads a
  small object in one GET, checked against that answer's headers;
* :class:`RangeReader` fetches an object's ranges on a process-wide thread
  pool, ``in_flight`` at once, and yields their pieces in order;
* :class:`ReadAheadBudget` (:data:`READ_AHEAD`) caps the bytes requested but
  not yet consumed by every reader of the process together.

Used by :mod:`laion_fmri._remote_betas` (streaming decode) and
:mod:`laion_fmri._distributed_betas` (small objects on workers).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from laion_fmri._stream_verify import ContentVerifier
from laion_fmri.errors import IntegrityError
from laion_fmri.stores import ObjectInfo, Store

MiB = 1 << 20
#: Bytes per ranged request once ramped up. Measured behind the WAN proxy
#: (60 MB/s per connection, 30 ms first byte, 300 MB/s link): 12 x 2 MiB in
#: flight fill the link as well as 12 x 4 MiB, 6 x 8 MiB or 4 x 16 MiB do
#: with more read-ahead memory.
DEFAULT_RANGE_BYTES = 2 * MiB
#: Ranged requests in flight per object (one connection each).
DEFAULT_IN_FLIGHT = 12
#: Requests in flight per object at the start; more are added while the consumer
#: waits for data (up to ``in_flight``).
INITIAL_IN_FLIGHT = 3
#: A consumer wait longer than this for a range means the network is the bottleneck:
#: that many more requests at once (a thread switch takes well under a millisecond).
_WAIT_SIGNAL_S = 0.002
_GROW_STEP = 2
#: A first round trip longer than this is a long link: all requests from the start.
_HIGH_LATENCY_S = 0.010
#: Read-ahead of all streams of a process together (requested, not yet decoded).
DEFAULT_READ_AHEAD_BYTES = 32 * MiB
#: Threads running ranged requests, for all streams of a process together.
RANGE_THREADS = 16
#: Bytes per socket read inside one range. Measured (4 sessions on loopback,
#: interleaved runs): 256 KiB beat 96 KiB and 1 MiB; also where malloc's
#: thresholds are fixed (dask workers set ``MALLOC_TRIM_THRESHOLD_``) it did no worse.
_READ_PIECE = 256 * 1024


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


def read_object(store: Store, key: str) -> tuple[ObjectInfo, bytes]:
    """A small object (mask, trial table) in one GET, checked against that answer's headers.

    One round trip instead of a HEAD and a GET: the whole-object answer
    carries the size, ETag and any full-object checksum, and the bytes are
    checked against them as a download checks them (:class:`ContentVerifier`).

    Parameters
    ----------
    store : Store
        The source.
    key : str
        Object key.

    Returns
    -------
    tuple of (ObjectInfo, bytes)

    Raises
    ------
    IntegrityError
        The bytes fail the size or content check.
    DataNotFoundError, AccessDeniedError, SourceUnavailableError
        From the source.

    Examples
    --------
    >>> info, body = read_object(open_store(), layout.trials_key("sub-03", "ses-01"))  # doctest: +SKIP
    """
    with store.open(key) as dl:
        info = dl.info
        body = b"".join(bytes(c) for c in dl)
    verifier = ContentVerifier(info)
    verifier.update(body)
    problem = verifier.mismatch()
    if problem is not None:
        raise IntegrityError(f"{key} from {store.url} failed its content check ({problem}).")
    return info, body


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


def initial_in_flight(round_trip_s: float, in_flight: int) -> int:
    """Requests to start with, from the first round trip's duration.

    A link with a long first-byte latency needs many requests in flight from
    the start to fill it (bandwidth x delay); on a fast, short link a few keep
    up, and fewer busy request threads leave the decoder the interpreter lock.

    Parameters
    ----------
    round_trip_s : float
        Seconds the HEAD and first bytes took (:func:`head_and_start`).
    in_flight : int
        The most requests at once.

    Returns
    -------
    int

    Examples
    --------
    >>> initial_in_flight(0.04, 12), initial_in_flight(0.002, 12)
    (12, 3)
    """
    return in_flight if round_trip_s > _HIGH_LATENCY_S else min(in_flight, INITIAL_IN_FLIGHT)


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
    >>> budget.acquire(8), budget.held
    (True, 8)
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
        Requests at once at most (from :data:`INITIAL_IN_FLIGHT`, more each
        time the consumer waits for a range).
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
    initial_in_flight : int, optional
        Requests at once to start with (default :data:`INITIAL_IN_FLIGHT`;
        :func:`initial_in_flight` picks it from the first round trip).

    Examples
    --------
    >>> b"".join(RangeReader(store, store.head(key)))  # doctest: +SKIP
    """

    def __init__(
        self, store: Store, info: ObjectInfo, range_bytes: int = DEFAULT_RANGE_BYTES,
        in_flight: int = DEFAULT_IN_FLIGHT,
        read_range: Callable[[Store, str, int, int, str | None], Any] | None = None,
        ahead: int | None = None, budget: ReadAheadBudget | None = None,
        first: tuple[int, list[Any]] | None = None, initial_in_flight: int | None = None,
    ) -> None:
        self.store = store
        self.info = info
        self._first = first if first is not None and 0 < first[0] <= info.size else None
        self.initial_in_flight = initial_in_flight or INITIAL_IN_FLIGHT
        self.ranges = plan_ranges(info.size, range_bytes, self._first[0] if self._first else None)
        self.in_flight = max(1, int(in_flight))
        self.ahead = max(self.in_flight, int(ahead) if ahead is not None else self.in_flight + 2)
        self.budget = budget if budget is not None else READ_AHEAD
        self._read = read_range or _read_pieces

    def __iter__(self) -> Iterator[Any]:
        slots = threading.Semaphore(self.ahead)  # ranges fetched or fetching, not yet consumed
        # Requests of this object at once: a few to start with, more each time the
        # consumer has to wait for a range (the network is the bottleneck), up to
        # ``in_flight``. Where the network outpaces the consumer (loopback, a fast
        # link), fewer busy request threads leave the decoder the interpreter lock.
        limit = max(1, min(self.in_flight, self.initial_in_flight))
        requests = threading.Semaphore(limit)
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
                waited = time.perf_counter()
                data = fut.result()
                waited = time.perf_counter() - waited
                # A real wait (not a thread switch) for a range after the first (which is
                # waited for in any case): the network is the bottleneck, ask for more at once.
                if held and waited > _WAIT_SIGNAL_S and limit < self.in_flight:
                    more = min(_GROW_STEP, self.in_flight - limit)
                    limit += more
                    requests.release(more)
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


__all__ = [
    "DEFAULT_IN_FLIGHT",
    "DEFAULT_RANGE_BYTES",
    "DEFAULT_READ_AHEAD_BYTES",
    "INITIAL_IN_FLIGHT",
    "RANGE_THREADS",
    "READ_AHEAD",
    "RangeReader",
    "ReadAheadBudget",
    "first_range_bytes",
    "head_and_start",
    "initial_in_flight",
    "plan_ranges",
    "read_object",
]
