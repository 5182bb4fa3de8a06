"""Ranged reads of an object from the source, fetched ahead of a consumer with bounded memory.

* :func:`_get_range` is the one place that issues a ranged GET (bounded
  ``Range``, ``If-Match``); :class:`ObjectStart` asks for the object's
  listing and its first ranges in one round trip (:class:`ObjectStart`);
  :func:`read_object` reads a small object in one GET, checked against that
  answer's headers;
* :class:`RangeReader` fetches an object's ranges on the process-wide thread
  pool, ``in_flight`` at once, and yields their pieces in order, within the
  process-wide read-ahead budget (both in :mod:`laion_fmri._read_budget`).

Used by :mod:`laion_fmri._remote_betas` (streaming decode) and
:mod:`laion_fmri._distributed_betas` (small objects on workers).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from laion_fmri._read_budget import (
    DEFAULT_READ_AHEAD_BYTES,
    RANGE_THREADS,
    READ_AHEAD,
    ReadAheadBudget,
    range_pool,
)
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


def read_object(store: Store, key: str, etag: str | None = None) -> tuple[ObjectInfo, bytes]:
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
    etag : str, optional
        Only this version (``If-Match``; e.g. the ETag a HEAD reported).

    Returns
    -------
    tuple of (ObjectInfo, bytes)

    Raises
    ------
    IntegrityError
        The bytes fail the size or content check.
    ObjectChangedError
        Another version than ``etag`` is at ``key`` now.
    DataNotFoundError, AccessDeniedError, SourceUnavailableError
        From the source.

    Examples
    --------
    >>> info, body = read_object(open_store(), layout.trials_key("sub-03", "ses-01"))  # doctest: +SKIP
    """
    with store.open(key, if_match=etag) as dl:
        info = dl.info
        body = b"".join(bytes(c) for c in dl)
    verifier = ContentVerifier(info)
    verifier.update(body)
    problem = verifier.mismatch()
    if problem is not None:
        raise IntegrityError(f"{key} from {store.url} failed its content check ({problem}).")
    return info, body


class ObjectStart:
    """An object's listing and first ranges, asked for now; whoever streams it takes them later.

    The HEAD (size, ETag, full-object checksum) and ranged reads of
    ``ranges`` go out at once, without waiting: a long first-byte latency is
    paid once, not once for the listing and again for every range of the
    ramp, and the caller can do other work (e.g. fetch the brain mask the
    decoder needs) meanwhile. Each read holds its bytes of ``budget`` from
    the start; a read the object turns out not to need (past its end), or
    that another version of the object answered, gives them back when it
    ends, and the range is then asked for again with ``If-Match``.

    Parameters
    ----------
    store : Store
        The source.
    key : str
        Object key.
    ranges : sequence of (int, int)
        The first ``[start, end)`` ranges the reader will want
        (:func:`leading_ranges`), as many as ``budget`` allows at once
        without waiting; the size is not known yet, so some may lie past the
        object's end.
    budget : ReadAheadBudget, optional
        Default: the process-wide :data:`READ_AHEAD`.

    Examples
    --------
    >>> start = ObjectStart(store, key, leading_ranges())  # doctest: +SKIP
    >>> info, round_trip = start.result()  # doctest: +SKIP
    >>> reader = RangeReader(store, info, prefetch=start)  # doctest: +SKIP
    """

    def __init__(
        self, store: Store, key: str, ranges: Sequence[tuple[int, int]],
        budget: ReadAheadBudget | None = None,
    ) -> None:
        self.budget = budget if budget is not None else READ_AHEAD
        pool = range_pool()
        t0 = time.perf_counter()

        def head() -> tuple[ObjectInfo, float]:
            info = store.head(key)
            return info, time.perf_counter() - t0

        self._head = pool.submit(head)
        self._pending: dict[int, tuple[int, Future[Any]]] = {}
        for start, end in ranges:
            if not self.budget.acquire(end - start, wait=False):
                break
            self._pending[start] = (end, pool.submit(_get_range, store, key, start, end))

    def __len__(self) -> int:
        return len(self._pending)

    def result(self) -> tuple[ObjectInfo, float]:
        """The listing and the seconds it took (the link's round trip); waits for it.

        Raises what the HEAD raised (``DataNotFoundError`` ...), after giving
        the early reads' budget back.
        """
        try:
            return self._head.result()
        except BaseException:
            self.close()
            raise

    def take(self, start: int, end: int) -> tuple[Future[Any], int] | None:
        """The read of ``[start, end)`` if one was started: ``(future of its answer, bytes held)``.

        The future's result is ``(end of what came, the answer's ETag,
        pieces)`` (:func:`_get_range`); :meth:`usable` tells whether it
        serves the range. ``None`` when no read starting at ``start`` was
        asked for, or it asked for less than ``end``.
        """
        item = self._pending.pop(start, None)
        if item is None:
            return None
        asked_end, fut = item
        if asked_end < end:
            self._give_back(asked_end - start, fut)
            return None
        return fut, asked_end - start

    @staticmethod
    def usable(answer: tuple[int, str | None, list[Any]], end: int, etag: str | None) -> bool:
        """True when an early answer is exactly ``[..., end)`` of the listed version."""
        got, answer_etag, _ = answer
        return got == end and (etag is None or answer_etag == etag)

    def close(self) -> None:
        """Give back the budget of every read not taken (when each ends); cancel those not started."""
        for start, (end, fut) in list(self._pending.items()):
            self._give_back(end - start, fut)
        self._pending.clear()

    def _give_back(self, n: int, fut: Future[Any]) -> None:
        fut.cancel()
        fut.add_done_callback(lambda _: self.budget.release(n))


def leading_ranges(
    range_bytes: int = DEFAULT_RANGE_BYTES, count: int = DEFAULT_IN_FLIGHT
) -> list[tuple[int, int]]:
    """The first ``count`` ranges :func:`plan_ranges` gives any object large enough.

    Parameters
    ----------
    range_bytes : int
        Bytes per range once ramped up.
    count : int
        How many.

    Returns
    -------
    list of tuple of int

    Examples
    --------
    >>> leading_ranges(8 * MiB, 3) == plan_ranges(100 * MiB, 8 * MiB)[:3]
    True
    """
    return list(itertools.islice(_ramp(range_bytes), max(0, count)))


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
        Size of the first range (default :func:`first_range_bytes`).

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
    out = []
    for start, end in _ramp(range_bytes, first_bytes):
        if start >= size:
            break
        out.append((start, min(end, size)))
    return out


def _ramp(range_bytes: int, first_bytes: int | None = None) -> Iterator[tuple[int, int]]:
    """Consecutive ``[start, end)`` ranges without end: ``first_bytes``, doubling to ``range_bytes``."""
    step = first_bytes if first_bytes is not None else first_range_bytes(range_bytes)
    step, start = max(1, min(step, range_bytes)), 0
    while True:
        yield start, start + step
        start += step
        step = min(step * 2, range_bytes)


def first_range_bytes(range_bytes: int) -> int:
    """Size of an object's first range: ``range_bytes / 32``, at least 64 KiB (the header's read).

    Small, so decoding starts after one first-byte latency and little
    transfer; measured behind the WAN proxy, 64 KiB then doubling to 2 MiB
    started decoding sooner than 256 KiB did.

    Parameters
    ----------
    range_bytes : int

    Returns
    -------
    int

    Examples
    --------
    >>> first_range_bytes(2 << 20) == 64 * 1024
    True
    """
    return max(range_bytes // 32, min(range_bytes, 1 << 16))


def initial_in_flight(round_trip_s: float, in_flight: int) -> int:
    """Requests to start with, from the first round trip's duration.

    A link with a long first-byte latency needs many requests in flight from
    the start to fill it (bandwidth x delay); on a fast, short link a few keep
    up, and fewer busy request threads leave the decoder the interpreter lock.

    Parameters
    ----------
    round_trip_s : float
        Seconds the HEAD took (:meth:`ObjectStart.result`).
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
    prefetch : ObjectStart, optional
        Reads of the first ranges already in flight (:class:`ObjectStart`);
        each serves its range if it brought exactly that range of this
        version of the object, else the range is asked for again.
    initial_in_flight : int, optional
        Requests at once to start with (default :data:`INITIAL_IN_FLIGHT`;
        :func:`initial_in_flight` picks it from the first round trip).
    digest : callable, optional
        ``pieces -> value``, run on the request thread as soon as a range has
        arrived (e.g. the range's CRC, :meth:`ContentVerifier.range_digest`),
        off the consumer's thread; :meth:`iter_ranges` yields its value.

    Examples
    --------
    >>> b"".join(RangeReader(store, store.head(key)))  # doctest: +SKIP
    """

    def __init__(
        self, store: Store, info: ObjectInfo, range_bytes: int = DEFAULT_RANGE_BYTES,
        in_flight: int = DEFAULT_IN_FLIGHT,
        read_range: Callable[[Store, str, int, int, str | None], Any] | None = None,
        ahead: int | None = None, budget: ReadAheadBudget | None = None,
        prefetch: ObjectStart | None = None, initial_in_flight: int | None = None,
        digest: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        self.store = store
        self.info = info
        self.prefetch = prefetch
        self.initial_in_flight = initial_in_flight or INITIAL_IN_FLIGHT
        self.ranges = plan_ranges(info.size, range_bytes)
        self.in_flight = max(1, int(in_flight))
        self.ahead = max(self.in_flight, int(ahead) if ahead is not None else self.in_flight + 2)
        self.budget = budget if budget is not None else READ_AHEAD
        self._read = read_range or _read_pieces
        self.digest = digest

    def _fetch(self, start: int, end: int) -> tuple[list[Any], Any]:
        """Read ``[start, end)`` and digest it, on a request thread."""
        return self._digested(self._read(self.store, self.info.key, start, end, self.info.etag))

    def _digested(self, data: Any) -> tuple[list[Any], Any]:
        pieces = data if isinstance(data, list) else [data]
        return pieces, (self.digest(pieces) if self.digest is not None else None)

    def __iter__(self) -> Iterator[Any]:
        """The object's bytes in order, as the pieces they arrived in."""
        for pieces, _ in self.iter_ranges():
            yield from pieces

    def iter_ranges(self) -> Iterator[tuple[list[Any], Any]]:
        """The object's ranges in order: ``(pieces, digest)`` (``None`` without ``digest``).

        Yields
        ------
        tuple of (list, object)
            The range's bytes as the pieces they arrived in, and ``digest(pieces)``.
        """
        slots = threading.Semaphore(self.ahead)  # ranges fetched or fetching, not yet consumed
        # Requests of this object at once: a few to start with, more each time the
        # consumer has to wait for a range (the network is the bottleneck), up to
        # ``in_flight``. Where the network outpaces the consumer (loopback, a fast
        # link), fewer busy request threads leave the decoder the interpreter lock.
        limit = max(1, min(self.in_flight, self.initial_in_flight))
        requests = threading.Semaphore(limit)
        ready: queue.Queue[tuple[Future[Any], int] | None] = queue.Queue()
        stop = threading.Event()
        pool = range_pool()
        budget = self.budget

        def feed() -> None:
            try:
                for start, end in self.ranges:
                    slots.acquire()
                    if stop.is_set():
                        break
                    early = self.prefetch.take(start, end) if self.prefetch else None
                    if early is not None:  # its budget is held already
                        ready.put((self._serve_prefetched(early[0], start, end), early[1]))
                        continue
                    if not budget.acquire(end - start, stop):
                        break
                    requests.acquire()
                    if stop.is_set():
                        requests.release()
                        budget.release(end - start)
                        break
                    fut = pool.submit(self._fetch, start, end)
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
                yield data
        finally:
            stop.set()
            slots.release()  # wakes a feeder waiting for a slot
            requests.release()  # ... or for a request
            feeder.join()
            if self.prefetch is not None:
                self.prefetch.close()  # reads past the object's end, or not needed any more
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

    def _serve_prefetched(self, early: Future[Any], start: int, end: int) -> Future[Any]:
        """``[start, end)`` as :meth:`_fetch` gives it: the prefetched answer if usable, else a new read."""
        out: Future[Any] = Future()
        out.set_running_or_notify_cancel()  # ends only when a request has ended (budget)

        def settle(fut: Future[Any]) -> None:
            try:
                out.set_result(fut.result())
            except BaseException as exc:
                out.set_exception(exc)

        def answered(fut: Future[Any]) -> None:
            try:
                answer = fut.result()
            except BaseException:
                answer = None
            if answer is not None and ObjectStart.usable(answer, end, self.info.etag):
                try:
                    out.set_result(self._digested(answer[2]))
                except BaseException as exc:
                    out.set_exception(exc)
                return
            range_pool().submit(self._fetch, start, end).add_done_callback(settle)

        early.add_done_callback(answered)
        return out


__all__ = [
    "DEFAULT_IN_FLIGHT",
    "DEFAULT_RANGE_BYTES",
    "DEFAULT_READ_AHEAD_BYTES",
    "INITIAL_IN_FLIGHT",
    "RANGE_THREADS",
    "READ_AHEAD",
    "ObjectStart",
    "RangeReader",
    "ReadAheadBudget",
    "first_range_bytes",
    "initial_in_flight",
    "leading_ranges",
    "plan_ranges",
    "read_object",
]
