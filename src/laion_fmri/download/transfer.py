"""Moving bytes to disk: parallel ranged transfers, resumable per part, every byte verified.

For every object:

1. the key becomes a local path only through :func:`laion_fmri.layout.local_path`
   after :func:`~laion_fmri.download._paths.check_local_names` refused unsafe,
   reserved, over-long and colliding names (each fails alone);
2. :func:`laion_fmri.download.plan.decide` says skip / check / fetch from the
   manifest and ``stat`` (a re-run with nothing to do makes no GET at all);
3. objects larger than one part are fetched as concurrent byte ranges written
   in place (``os.pwrite``) into ``<name>.part``; multipart objects use their
   upload part size, so each range's MD5 is a part MD5. All ranges of all
   objects share one budget of ``n_jobs`` connections. ``<name>.part.json``
   records the ETag and every completed range with its digests, so an
   interrupted transfer refetches only missing ranges (each guarded by
   ``If-Match``; a changed object restarts from scratch);
4. the content is checked by the rules of :mod:`laion_fmri.download._content`
   (single-part MD5, MD5 of part MD5s, full-object CRC/SHA-256 checksums);
   a damaged multipart object has its parts fetched again and only the parts
   that differ rewritten; only then is the file renamed into place
   (``os.replace``) and recorded in the manifest;
5. timeouts, resets and 5xx are retried per range with exponential backoff
   and jitter; after the last try the failure, naming key and cause, lands in
   the report while the other files continue.

A file lock per data directory serialises concurrent runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from laion_fmri import layout
from laion_fmri.download._content import (
    DEFAULT_RANGE_SIZE,
)
from laion_fmri.download._decide import decide, dedupe
from laion_fmri.download._engine import _Engine
from laion_fmri.download._job import (
    DEFAULT_CONNECTIONS,
    DEFAULT_RETRIES,
    ChunkCallback,
    _Job,
    backoff_delay,
    file_digests,
)
from laion_fmri.download._paths import check_local_names
from laion_fmri.download._report import DownloadReport, FileFailedWarning, _Progress
from laion_fmri.download.manifest import Manifest
from laion_fmri.errors import (
    AccessDeniedError,
    DataNotFoundError,
    DownloadError,
    IntegrityError,
    SourceUnavailableError,
    UnsafeKeyError,
)
from laion_fmri.stores.base import DEFAULT_CHUNK_SIZE, ObjectInfo, Store


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


def default_connections() -> int:
    """Connections used when ``n_jobs`` is not given (:data:`DEFAULT_CONNECTIONS`).

    Returns
    -------
    int

    Examples
    --------
    >>> default_connections() == DEFAULT_CONNECTIONS
    True
    """
    return DEFAULT_CONNECTIONS


def fetch_objects(
    objects: Iterable[ObjectInfo],
    store: Store,
    data_dir: str | os.PathLike[str],
    n_jobs: int | None = None,
    progress: bool = True,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    part_size: int = DEFAULT_RANGE_SIZE,
    retries: int = DEFAULT_RETRIES,
    on_chunk: ChunkCallback | None = None,
    checksum: bool = True,
    connections: int | None = None,
) -> DownloadReport:
    """Bring objects to ``data_dir``: skip what is verified, fetch the rest.

    Every transfer is a (ranged) GET. ``n_jobs`` files are in flight at once;
    their requests share one budget of connections (``max(32, n_jobs)``), so
    a large object is fetched over many connections at once and small files
    keep every connection busy.

    Parameters
    ----------
    objects : iterable of ObjectInfo
        What to have on disk (as listed by the store).
    store : Store
        Where to fetch from.
    data_dir : str or Path
        The data directory.
    n_jobs : int, optional
        Files transferred at once (default :data:`DEFAULT_CONNECTIONS`).
    progress : bool
        Show one progress display (only on a terminal).
    chunk_size : int
        Bytes per read from a connection.
    part_size : int
        Range size for objects whose upload part size is unknown (multipart
        objects use their upload part size).
    retries : int
        Retries per range (and per object for content mismatches) after the first try.
    on_chunk : callable, optional
        ``on_chunk(key, n_bytes)`` after each written chunk.
    checksum : bool
        Verify content (ETag MD5 or MD5 of part MD5s, full-object checksums,
        published SHA-256). ``False`` checks sizes only.
    connections : int, optional
        Requests in flight for the whole job, all files together (default
        ``max(32, n_jobs)``).

    Returns
    -------
    DownloadReport

    Examples
    --------
    >>> from laion_fmri.stores import open_store
    >>> store = open_store()  # doctest: +SKIP
    >>> objs = list(store.list("derivatives/glmsingle-tedana/sub-03/"))  # doctest: +SKIP
    >>> fetch_objects(objs, store, "/data/laion_fmri", n_jobs=8)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    root = Path(data_dir).resolve()
    files = max(1, n_jobs if n_jobs is not None else DEFAULT_CONNECTIONS)
    connections = max(1, connections if connections is not None else max(DEFAULT_CONNECTIONS, files))
    objects, refused = check_local_names(dedupe(list(objects)))
    report = DownloadReport()
    for key, reason in refused.items():
        report.failed[key] = reason
        warnings.warn(reason, FileFailedWarning, stacklevel=2)
    with data_dir_lock(root), Manifest(root) as manifest:
        records = manifest.get_many(o.key for o in objects)
        work: list[tuple[ObjectInfo, Path, str]] = []
        for obj in objects:
            try:
                target = layout.local_path(root, obj.key)
                try:
                    st: os.stat_result | None = target.stat()
                except (FileNotFoundError, NotADirectoryError):
                    st = None
                action = decide(obj, records.get(obj.key), st)
            except (UnsafeKeyError, OSError) as exc:
                report.failed[obj.key] = str(exc)
                continue
            if action == "skip":
                report.skipped.append(obj.key)
            else:
                work.append((obj, target, action))
        bar = _Progress(progress, len(work), sum(o.size for o, _, _ in work))
        engine = _Engine(store, root, manifest, bar, connections, chunk_size, part_size,
                         retries, on_chunk, checksum, files)
        try:
            _run(engine, work, report)
        finally:
            bar.close()
    report.seconds = time.perf_counter() - t0
    return report


#: Failures that concern one file: reported, while the rest of the run continues.
_PER_FILE_ERRORS = (AccessDeniedError, DataNotFoundError, DownloadError, UnsafeKeyError,
                    IntegrityError, SourceUnavailableError, OSError)


def _run(engine: _Engine, work: list[tuple[ObjectInfo, Path, str]], report: DownloadReport) -> None:
    def settle(obj: ObjectInfo, kind: str, detail: Any) -> None:
        engine.progress.file_done()
        if kind == "skipped":
            report.skipped.append(obj.key)
            return
        if kind == "downloaded":
            received, unverified = detail
            report.downloaded.append(obj.key)
            report.bytes += received
            if unverified:
                report.unverified[obj.key] = unverified
            return
        exc = detail
        if isinstance(exc, AccessDeniedError):
            report.failed[obj.key] = "access denied (HTTP 403)"
            where = getattr(engine.store, "address", None)
            address = where(obj.key) if callable(where) else f"{engine.store.url}/{obj.key}"
            warnings.warn(f"Access denied (HTTP 403) for {address}; skipping.",
                          FileFailedWarning, stacklevel=4)
            return
        if not isinstance(exc, _PER_FILE_ERRORS):
            # Not about this file (Ctrl-C, a revoked grant, a bug): stop the run.
            raise exc
        report.failed[obj.key] = str(exc)
        warnings.warn(str(exc), FileFailedWarning, stacklevel=4)

    try:
        # Largest first: its ranges fill the connections while small files fill the gaps.
        pending = sorted(work, key=lambda w: -w[0].size)
        settled = 0
        for obj, target, action in pending:
            while not engine.slots.acquire(timeout=0.05):
                while not engine.settled.empty():
                    settle(*engine.settled.get())
                    settled += 1
            if action == "check":
                engine.pool.submit(engine.check, obj, target)
            else:
                engine.start(_Job(obj, target, engine.range_size))
        for _ in range(len(work) - settled):
            obj, kind, detail = engine.settled.get()
            settle(obj, kind, detail)
    except BaseException:
        # Ctrl-C: do not wait for whole transfers; running ranges stop at their
        # next chunk (keeping resumable .part files), queued ones never start.
        engine.cancelled.set()
        engine.pool.shutdown(wait=False, cancel_futures=True)
        raise
    engine.pool.shutdown(wait=True)


# Documented (and pickled) under their historical public home.
for _moved in (DownloadReport, FileFailedWarning,):
    _moved.__module__ = __name__


__all__ = [
    "DEFAULT_CONNECTIONS",
    "DownloadReport",
    "FileFailedWarning",
    "backoff_delay",
    "data_dir_lock",
    "default_connections",
    "fetch_objects",
    "file_digests",
]
