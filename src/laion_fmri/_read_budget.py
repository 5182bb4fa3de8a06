"""What every ranged read of a process shares: the read-ahead budget and the request threads.

* :class:`ReadAheadBudget` (:data:`READ_AHEAD`) caps the bytes requested but
  not yet consumed by every reader of the process together;
* :func:`range_pool` is the one thread pool that runs ranged requests.

Used by :mod:`laion_fmri._ranged_reads`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

MiB = 1 << 20
#: Read-ahead of all streams of a process together (requested, not yet decoded).
DEFAULT_READ_AHEAD_BYTES = 32 * MiB
#: Threads running ranged requests, for all streams of a process together.
RANGE_THREADS = 16


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

    def acquire(self, n: int, stop: threading.Event | None = None, wait: bool = True) -> bool:
        """Take ``n`` bytes once they fit (``False`` if ``stop`` was set meanwhile).

        Parameters
        ----------
        n : int
            Bytes wanted.
        stop : threading.Event, optional
            Gives up waiting once set.
        wait : bool
            ``False``: take them only if they fit now (or nothing is held), never wait.

        Returns
        -------
        bool
        """
        with self._cond:
            while self.held and self.held + n > self.max_bytes:
                if not wait or (stop is not None and stop.is_set()):
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

_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def range_pool() -> ThreadPoolExecutor:
    """The process-wide threads that run ranged requests (shared by every stream).

    One pool instead of one per object keeps the thread count (and the malloc
    arenas each busy thread ends up with) bounded when sessions stream side by side.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(RANGE_THREADS, thread_name_prefix="laion-fmri-range")
            _start_threads(_POOL, RANGE_THREADS)
        return _POOL


def _start_threads(pool: ThreadPoolExecutor, n: int) -> None:
    """Start the pool's ``n`` threads now, before it runs any request.

    The executor would start a thread per submitted request, each start
    waiting for the new thread to get the interpreter lock from the request
    threads already busy: about 1.5 ms a thread, 20 ms before the first
    ranges of an object were all asked for. Idle, the same starts take
    about 0.1 ms each.
    """
    gate = threading.Barrier(n + 1)

    def arrive() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=10)

    for _ in range(n):
        pool.submit(arrive)
    with contextlib.suppress(threading.BrokenBarrierError):
        gate.wait(timeout=10)


def _forget_pool() -> None:  # a forked child does not inherit the parent's threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


__all__ = [
    "DEFAULT_READ_AHEAD_BYTES",
    "RANGE_THREADS",
    "READ_AHEAD",
    "ReadAheadBudget",
    "range_pool",
]
