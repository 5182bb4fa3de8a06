"""Moving bytes to disk: atomic, resumable, verified, parallel.

For every object:

1. the key becomes a local path only through :func:`laion_fmri.layout.local_path`
   (refuses keys that would leave the data directory);
2. :func:`laion_fmri.download.plan.decide` says skip / check / fetch from the
   manifest and ``stat`` (a re-run with nothing to do makes no GET at all);
3. bytes stream into ``<name>.part`` beside the target. For objects larger
   than one chunk, ``<name>.part.json`` records the ETag the partial file was
   started with, so an interrupted transfer continues with ``Range`` +
   ``If-Match``; a changed object (HTTP 412) or a server that ignores ``Range``
   restarts the file from byte 0;
4. the size is always checked, the MD5 when the ETag is a single-part MD5,
   the SHA-256 when the source publishes one; only then is the file renamed
   into place (``os.replace``) and recorded in the manifest. Error bodies are
   never written: the store raises on any non-2xx answer before a byte is
   written;
5. timeouts, resets and 5xx are retried with exponential backoff and jitter
   (resuming where the partial file ends); after the last try the failure,
   naming key and cause, lands in the report while the other files continue.

A file lock per data directory serialises concurrent runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import random
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from laion_fmri import layout
from laion_fmri.download.manifest import Manifest
from laion_fmri.download.plan import decide, dedupe, format_bytes
from laion_fmri.errors import (
    AccessDeniedError,
    DataNotFoundError,
    DownloadError,
    IntegrityError,
    LaionFMRIError,
    ObjectChangedError,
    SourceUnavailableError,
    UnsafeKeyError,
)
from laion_fmri.remote import DEFAULT_CHUNK_SIZE, ObjectInfo, Store

DEFAULT_RETRIES = 5
BACKOFF_BASE = 0.5  # seconds
BACKOFF_CAP = 20.0
_HASH_BLOCK = 8 * 1024 * 1024

ChunkCallback = Callable[[str, int], None]


class FileFailedWarning(UserWarning):
    """One file could not be fetched (also listed in ``DownloadReport.failed``).

    The command line silences it: it prints each failure once from the report.

    Examples
    --------
    >>> issubclass(FileFailedWarning, UserWarning)
    True
    """


@dataclass
class DownloadReport:
    """Outcome of a download.

    Attributes
    ----------
    downloaded : list of str
        Keys fetched in this run.
    skipped : list of str
        Keys already present and verified.
    failed : dict
        ``{key: reason}`` for keys that could not be fetched.
    held_out : list of str
        Keys of held-out sessions skipped up front.
    bytes : int
        Bytes received in this run.
    seconds : float
        Wall time.

    Examples
    --------
    >>> str(DownloadReport(downloaded=["a"], bytes=2048, seconds=0.5))
    'Downloaded 1 file(s) (2.0 kB) in 0.5 s; 0 already up to date.'
    """

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    held_out: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed

    def merge(self, other: DownloadReport) -> DownloadReport:
        """Add another report's counts to this one.

        Parameters
        ----------
        other : DownloadReport
            The report to add.

        Returns
        -------
        DownloadReport
            ``self``.
        """
        self.downloaded += other.downloaded
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.held_out += other.held_out
        self.bytes += other.bytes
        self.seconds += other.seconds
        return self

    def __str__(self) -> str:
        text = (
            f"Downloaded {len(self.downloaded)} file(s) ({format_bytes(self.bytes)}) "
            f"in {self.seconds:.1f} s; {len(self.skipped)} already up to date"
        )
        if self.held_out:
            text += f"; {len(self.held_out)} held-out skipped"
        if not self.failed:
            return text + "."
        lines = [f"{text}; {len(self.failed)} FAILED:"]
        lines += [f"  FAILED {key}: {reason}" for key, reason in sorted(self.failed.items())]
        return "\n".join(lines)


# --------------------------------------------------------------------------- hashing
def file_digests(path: Path, algorithms: Iterable[str] = ("md5",)) -> dict[str, str]:
    """Hex digests of a file, read in blocks.

    Parameters
    ----------
    path : Path
        The file.
    algorithms : iterable of str
        ``hashlib`` names.

    Returns
    -------
    dict
        ``{algorithm: hex digest}``.

    Examples
    --------
    >>> file_digests(Path(__file__))["md5"] != ""
    True
    """
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            for h in hashers.values():
                h.update(block)
    return {name: h.hexdigest() for name, h in hashers.items()}


class _StreamHasher:
    """Hashes a stream of chunks; on a helper thread for large objects.

    ``hashlib`` releases the interpreter lock on large buffers, so hashing on a
    second thread overlaps with receiving and writing the next chunk.
    """

    def __init__(self, algorithms: Iterable[str], threaded: bool) -> None:
        self._hashers = {name: hashlib.new(name) for name in algorithms}
        self._queue: queue.Queue[Any] | None = None
        if threaded and self._hashers:
            self._queue = queue.Queue(maxsize=16)
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="laion-fmri-hash")
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            for h in self._hashers.values():
                h.update(chunk)

    def update(self, chunk: Any) -> None:
        if self._queue is not None:
            self._queue.put(chunk)
        else:
            for h in self._hashers.values():
                h.update(chunk)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None

    def hexdigests(self) -> dict[str, str]:
        self.close()
        return {name: h.hexdigest() for name, h in self._hashers.items()}


def _mismatch(obj: ObjectInfo, digests: dict[str, str]) -> str | None:
    if obj.sha256 and digests.get("sha256") != obj.sha256.lower():
        return f"SHA-256 {digests.get('sha256')} != published {obj.sha256}"
    if obj.md5 and digests.get("md5") != obj.md5:
        return f"MD5 {digests.get('md5')} != ETag {obj.md5}"
    return None


def backoff_delay(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Exponential backoff with full jitter for retry ``attempt`` (1-based).

    Parameters
    ----------
    attempt : int
        Number of the failed try.
    base : float
        Seconds of the first backoff ceiling.
    cap : float
        Largest ceiling in seconds.

    Returns
    -------
    float
        Seconds to sleep, uniform in ``[0, min(cap, base * 2**(attempt-1))]``.

    Examples
    --------
    >>> 0 <= backoff_delay(3) <= 4 * BACKOFF_BASE
    True
    """
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


# --------------------------------------------------------------------------- progress
class _Progress:
    """One display for the whole job; silent when disabled or not a terminal."""

    def __init__(self, enabled: bool, n_files: int, total_bytes: int) -> None:
        self._bar: Any = None
        self._n_files = n_files
        self._done = 0
        if not enabled or n_files == 0:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        self._task = self._bar.add_task(self._label(), total=total_bytes)
        self._bar.start()

    def _label(self) -> str:
        return f"files {self._done}/{self._n_files}"

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def file_done(self) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(self._task, description=self._label())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _open_nofollow(path: str, flags: int) -> int:
    """``open`` opener that refuses to follow a symlink at ``path``."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)


# --------------------------------------------------------------------------- one object
class _Transfer:
    """Shared state of one :func:`fetch_objects` call."""

    def __init__(
        self, store: Store, data_dir: Path, manifest: Manifest, progress: _Progress,
        chunk_size: int, retries: int, on_chunk: ChunkCallback | None, checksum: bool = True,
    ) -> None:
        self.store = store
        self.data_dir = data_dir
        self.manifest = manifest
        self.progress = progress
        self.chunk_size = chunk_size
        self.retries = retries
        self.on_chunk = on_chunk
        self.checksum = checksum
        # Set when the run is interrupted (Ctrl-C): workers stop at the next chunk.
        self.cancelled = threading.Event()

    def _record(self, obj: ObjectInfo, target: Path, digests: dict[str, str]) -> None:
        st = target.stat()
        self.manifest.put(
            obj.key, target.relative_to(self.data_dir), st.st_size, obj.etag,
            digests.get("md5"), obj.sha256 or digests.get("sha256"), st.st_mtime_ns,
        )

    def check(self, obj: ObjectInfo, target: Path) -> bool:
        """Hash a present file of the right size; record it when it matches."""
        algos = ["md5"] + (["sha256"] if obj.sha256 else [])
        digests = file_digests(target, algos)
        if _mismatch(obj, digests):
            return False
        self._record(obj, target, digests)
        return True

    def fetch(self, obj: ObjectInfo, target: Path) -> int:
        """Download one object with retries; return the bytes received."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._fetch_once(obj, target)
            except ObjectChangedError:
                # The object changed under a resumed transfer: start it over
                # against its current version (fresh size and ETag, so the new
                # bytes are still checked against an MD5 where there is one).
                self._discard(target)
                if attempt > self.retries:
                    raise
                try:
                    obj = self.store.head(obj.key)
                except SourceUnavailableError:
                    obj = ObjectInfo(obj.key, obj.size, None, obj.last_modified)
            except (SourceUnavailableError, IntegrityError) as exc:
                if attempt > self.retries:
                    raise DownloadError(
                        f"Giving up on {obj.key!r} after {attempt} tries: {exc}"
                    ) from exc
                time.sleep(backoff_delay(attempt))
            except OSError as exc:
                if isinstance(exc, LaionFMRIError):
                    raise
                if not layout.partial_state_path(target).exists():
                    # Not resumable (no resume record): free the space it holds,
                    # which matters most when the disk is full.
                    self._discard(target)
                raise DownloadError(f"Writing {obj.key!r} to {target} failed: {exc}") from exc

    def _discard(self, target: Path) -> None:
        for path in (layout.partial_path(target), layout.partial_state_path(target)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _resume_offset(self, obj: ObjectInfo, part: Path, state: Path) -> int:
        if not (obj.etag and part.is_file() and state.is_file()):
            return 0
        try:
            saved = json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        if saved.get("etag") != obj.etag or saved.get("size") != obj.size:
            return 0
        size = part.stat().st_size
        return size if 0 < size < obj.size else 0

    def _fetch_once(self, obj: ObjectInfo, target: Path) -> int:
        part = layout.partial_path(target)
        state = layout.partial_state_path(target)
        if part.is_symlink():  # a planted link: never write (or resume) through it
            part.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        start = self._resume_offset(obj, part, state)
        algos = (["md5"] + (["sha256"] if obj.sha256 else [])) if self.checksum else []
        hasher = _StreamHasher(algos, threaded=obj.size > 4 * self.chunk_size)
        try:
            obj, received = self._stream(obj, part, state, start, hasher)
        finally:
            hasher.close()
        return self._finish(obj, target, part, state, hasher.hexdigests(), received)

    def _stream(
        self, obj: ObjectInfo, part: Path, state: Path, start: int, hasher: _StreamHasher
    ) -> tuple[ObjectInfo, int]:
        """Write the body to the partial file; return the (fresh) info and bytes received."""
        received = 0
        with self.store.open(
            obj.key, start=start, if_match=obj.etag if start else None,
            chunk_size=self.chunk_size,
        ) as dl:
            # Changed since it was listed (new ETag; or, without ETags, a new
            # size): the fresh answer is the truth. A different size under the
            # same ETag is a short/long response, not a new object: keep the
            # listed size so the size check below rejects it.
            changed = (dl.info.etag != obj.etag) if (dl.info.etag and obj.etag) else (
                dl.info.size != obj.size
            )
            if not start and changed:
                obj = ObjectInfo(obj.key, dl.info.size, dl.info.etag, dl.info.last_modified,
                                 obj.sha256)
            if start and (dl.status != 206 or dl.start != start):
                start = 0  # the server ignored Range and sent the whole object
            if start:
                with open(part, "rb") as fh:
                    while block := fh.read(_HASH_BLOCK):
                        hasher.update(block)
                self.progress.advance(start)
            elif obj.etag and obj.size > self.chunk_size:
                state.write_text(json.dumps({"key": obj.key, "etag": obj.etag,
                                             "size": obj.size}), encoding="utf-8")
            elif state.exists():
                state.unlink()
            with open(part, "ab" if start else "wb", opener=_open_nofollow) as fh:
                for chunk in dl:
                    if self.cancelled.is_set():
                        raise DownloadError(
                            f"{obj.key!r}: interrupted; the partial file is kept for resuming."
                        )
                    fh.write(chunk)
                    hasher.update(chunk)
                    n = len(chunk)
                    received += n
                    self.progress.advance(n)
                    if self.on_chunk is not None:
                        self.on_chunk(obj.key, n)
        return obj, received

    def _finish(
        self, obj: ObjectInfo, target: Path, part: Path, state: Path,
        digests: dict[str, str], received: int,
    ) -> int:
        size = part.stat().st_size
        if size < obj.size:
            raise SourceUnavailableError(
                f"the connection ended early ({size} of {obj.size} bytes)"
            )
        problem = f"{size} bytes, expected {obj.size}" if size != obj.size else (
            _mismatch(obj, digests) if self.checksum else None
        )
        if problem:
            self._discard(target)
            raise IntegrityError(f"{obj.key!r} arrived corrupted ({problem}); fetching it again.")
        os.replace(part, target)
        with contextlib.suppress(FileNotFoundError):
            state.unlink()
        self._record(obj, target, digests)
        return received


# --------------------------------------------------------------------------- the job
@contextlib.contextmanager
def data_dir_lock(data_dir: Path):  # type: ignore[no-untyped-def]
    """Hold the per-data-directory lock, telling the user if another run holds it.

    Parameters
    ----------
    data_dir : Path
        The data directory.

    Yields
    ------
    None
        While the lock is held.

    Examples
    --------
    >>> with data_dir_lock(Path("/tmp/laion_data")):  # doctest: +SKIP
    ...     pass
    """
    path = layout.lock_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), thread_local=False)
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        print(f"Waiting for another laion-fmri download into {data_dir} to finish...",
              file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def fetch_objects(
    objects: Iterable[ObjectInfo],
    store: Store,
    data_dir: str | os.PathLike[str],
    n_jobs: int = 4,
    progress: bool = True,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    retries: int = DEFAULT_RETRIES,
    on_chunk: ChunkCallback | None = None,
    checksum: bool = True,
) -> DownloadReport:
    """Bring objects to ``data_dir``: skip what is verified, fetch the rest.

    Parameters
    ----------
    objects : iterable of ObjectInfo
        What to have on disk (as listed by the store).
    store : Store
        Where to fetch from.
    data_dir : str or Path
        The data directory.
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show one progress display (only on a terminal).
    chunk_size : int
        Bytes per read; objects larger than one chunk get a resume record.
    retries : int
        Retries per object after the first try.
    on_chunk : callable, optional
        ``on_chunk(key, n_bytes)`` after each written chunk.
    checksum : bool
        Hash while streaming (MD5, and SHA-256 when published) and compare with
        the ETag. ``False`` checks sizes only and records no digest, so
        :func:`~laion_fmri.download.verify` can later check sizes only.

    Returns
    -------
    DownloadReport

    Examples
    --------
    >>> from laion_fmri.remote import open_store
    >>> store = open_store()  # doctest: +SKIP
    >>> objs = list(store.list("derivatives/glmsingle-tedana/sub-03/"))  # doctest: +SKIP
    >>> fetch_objects(objs, store, "/data/laion_fmri", n_jobs=8)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    root = Path(data_dir).resolve()
    objects = dedupe(list(objects))
    report = DownloadReport()
    with data_dir_lock(root), Manifest(root) as manifest:
        records = manifest.get_many(o.key for o in objects)
        work: list[tuple[ObjectInfo, Path, str]] = []
        for obj in objects:
            try:
                target = layout.local_path(root, obj.key)
            except UnsafeKeyError as exc:
                report.failed[obj.key] = str(exc)
                continue
            try:
                st: os.stat_result | None = target.stat()
            except FileNotFoundError:
                st = None
            action = decide(obj, records.get(obj.key), st)
            if action == "skip":
                report.skipped.append(obj.key)
            else:
                work.append((obj, target, action))
        bar = _Progress(progress, len(work), sum(o.size for o, _, _ in work))
        job = _Transfer(store, root, manifest, bar, chunk_size, retries, on_chunk, checksum)
        try:
            _run(job, work, max(1, n_jobs), report)
        finally:
            bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def _one(job: _Transfer, obj: ObjectInfo, target: Path, action: str) -> tuple[str, int]:
    if action == "check" and job.check(obj, target):
        return "skipped", 0
    return "downloaded", job.fetch(obj, target)


def _run(
    job: _Transfer, work: list[tuple[ObjectInfo, Path, str]], n_jobs: int,
    report: DownloadReport,
) -> None:
    def settle(obj: ObjectInfo, outcome: Callable[[], tuple[str, int]]) -> None:
        try:
            kind, n = outcome()
        except AccessDeniedError:
            report.failed[obj.key] = "access denied (HTTP 403)"
            where = getattr(job.store, "address", None)
            address = where(obj.key) if callable(where) else f"{job.store.url}/{obj.key}"
            warnings.warn(f"Access denied (HTTP 403) for {address}; skipping.",
                          FileFailedWarning, stacklevel=4)
            return
        except (DataNotFoundError, DownloadError, UnsafeKeyError) as exc:
            report.failed[obj.key] = str(exc)
            warnings.warn(str(exc), FileFailedWarning, stacklevel=4)
            return
        finally:
            job.progress.file_done()
        (report.skipped if kind == "skipped" else report.downloaded).append(obj.key)
        report.bytes += n

    if n_jobs == 1 or len(work) <= 1:
        for obj, target, action in work:
            settle(obj, lambda o=obj, t=target, a=action: _one(job, o, t, a))
        return
    pool = ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="laion-fmri-dl")
    futures: dict[Future[tuple[str, int]], ObjectInfo] = {
        pool.submit(_one, job, obj, target, action): obj for obj, target, action in work
    }
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                settle(futures[fut], fut.result)
    except BaseException:
        # Ctrl-C: do not wait for whole transfers; running ones stop at their
        # next chunk (keeping resumable .part files), queued ones never start.
        job.cancelled.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


__all__ = [
    "DownloadReport",
    "FileFailedWarning",
    "backoff_delay",
    "data_dir_lock",
    "fetch_objects",
    "file_digests",
]
