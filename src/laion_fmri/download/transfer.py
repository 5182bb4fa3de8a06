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
import hashlib
import os
import queue
import random
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from laion_fmri import layout
from laion_fmri.download._content import (
    DEFAULT_RANGE_SIZE,
    ETAG_NOT_CONTENT_HASH,
    OPAQUE_ETAG,
    ContentRule,
    FileDigests,
    algorithms_for,
    checksum_text,
    crc_combine,
    crc_update,
    digest_file,
    is_crc,
    mismatch,
    multipart_etag,
    rule_for,
)
from laion_fmri.download._paths import check_local_names, read_state, write_state
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
from laion_fmri.stores.base import DEFAULT_CHUNK_SIZE, ObjectInfo, Store

DEFAULT_RETRIES = 5
BACKOFF_BASE = 0.5  # seconds
BACKOFF_CAP = 20.0
#: Connections (requests in flight) and files at once when ``n_jobs`` is not given:
#: enough to fill a fast link at S3's per-connection speed (~60 MB/s) and to keep
#: small files from waiting on first-byte latency (30+ ms each).
DEFAULT_CONNECTIONS = 32
_HASH_BLOCK = 8 * 1024 * 1024
#: Checksum computed for every ranged object while it arrives (see ``_Job.algorithms``).
DEFAULT_CRC = "crc64nvme"

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
    unverified : dict
        ``{key: reason}`` for files whose bytes could only be size-checked
        (the source's ETag is not a content hash and it sent no checksum).
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
    unverified: dict[str, str] = field(default_factory=dict)

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
        self.unverified.update(other.unverified)
        self.seconds += other.seconds
        return self

    def __str__(self) -> str:
        text = (
            f"Downloaded {len(self.downloaded)} file(s) ({format_bytes(self.bytes)}) "
            f"in {self.seconds:.1f} s; {len(self.skipped)} already up to date"
        )
        if self.held_out:
            text += f"; {len(self.held_out)} held-out skipped"
        if self.unverified:
            reasons = sorted(set(self.unverified.values()))
            text += (f"; {len(self.unverified)} size-checked only ({'; '.join(reasons)}: "
                     "no content check was possible)")
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


# --------------------------------------------------------------------------- one object
class _Cancelled(DownloadError):
    """The run was interrupted; partial files stay for resuming."""


class _RangeIgnored(Exception):
    """The server answered a range request with the whole object."""


@dataclass
class _Range:
    index: int
    start: int
    end: int


class _Job:
    """One object in flight: its ranges, the partial file and what each range hashed."""

    def __init__(self, obj: ObjectInfo, target: Path, range_size: int) -> None:
        self.target = target
        self.part = layout.partial_path(target)
        self.state = layout.partial_state_path(target)
        self.lock = threading.Lock()
        self.restarts = 0
        self.mismatches: list[str] = []
        self.received = 0
        self._range_size = range_size
        self.reset(obj)

    def reset(self, obj: ObjectInfo) -> None:
        """Plan the ranges of (a possibly new version of) the object."""
        self.obj = obj
        self.rule = rule_for(obj)
        # Multipart: ranges are the upload parts, so each range's MD5 is a part MD5.
        self.part_size = self.rule.part_sizes[0] if self.rule.kind == "multipart" else None
        size = self.part_size or self._range_size
        if obj.size <= size and not (self.part_size and obj.size > self.part_size):
            self.ranges = [_Range(0, 0, obj.size)]
        else:
            self.ranges = [_Range(i, a, min(a + size, obj.size))
                           for i, a in enumerate(range(0, obj.size, size))]
        self.results: dict[int, dict[str, Any]] = {}
        self.failure: BaseException | None = None
        self.changed = False
        self.range_ignored = False
        self.fd: int | None = None
        self.pending = 0
        self.head: Any = None  # Future of the HEAD giving a ranged object's checksum
        self.repair_changed = False  # a range came back different when fetched again

    @property
    def ranged(self) -> bool:
        return len(self.ranges) > 1

    def algorithms(self) -> list[str]:
        """Digests each range computes while it arrives.

        Ranged objects always compute CRC64NVME (S3's default full-object
        checksum, native and cheap), so the HEAD that says which checksum the
        server has can run alongside the ranges instead of before them.
        """
        algos = algorithms_for(self.rule)
        if self.ranged:
            algos = [a for a in algos if is_crc(a)]
        # Also the fingerprint the manifest keeps, so verify catches later damage.
        return algos if DEFAULT_CRC in algos else [*algos, DEFAULT_CRC]

    def state_record(self) -> dict[str, Any]:
        return {
            "key": self.obj.key, "etag": self.obj.etag, "size": self.obj.size,
            "ranges": [[r.start, r.end] for r in self.ranges],
            "done": {str(i): {k: (v.hex() if isinstance(v, bytes) else v)
                              for k, v in d.items() if k != "bytes"}
                     for i, d in self.results.items()},
        }

    def load_resume(self) -> None:
        """Take over the ranges a previous run completed (same ETag, same plan)."""
        if not (self.obj.etag and self.ranged):
            return
        saved = read_state(self.state)
        try:
            st = os.stat(self.part, follow_symlinks=False)
        except OSError:
            return
        if not saved or not stat.S_ISREG(st.st_mode) or st.st_size != self.obj.size:
            return
        same = (saved.get("key") == self.obj.key and saved.get("etag") == self.obj.etag
                and saved.get("size") == self.obj.size
                and saved.get("ranges") == [[r.start, r.end] for r in self.ranges])
        done = saved.get("done")
        if not same or not isinstance(done, dict):
            return
        # A range without its part MD5 is still resumable: the full-object CRC
        # (or a re-read at the end) covers it.
        wanted = set(self.algorithms())
        for index, digests in done.items():
            if not (isinstance(index, str) and index.isdigit() and isinstance(digests, dict)):
                continue
            i = int(index)
            if i >= len(self.ranges) or not wanted <= set(digests):
                continue
            try:
                self.results[i] = {k: (bytes.fromhex(v) if k == "md5" else int(v))
                                   for k, v in digests.items() if k in wanted | {"md5"}}
            except (TypeError, ValueError):
                continue


class _Engine:
    """Shared state of one :func:`fetch_objects` call: one connection budget for all."""

    def __init__(
        self, store: Store, data_dir: Path, manifest: Manifest, progress: _Progress,
        connections: int, chunk_size: int, range_size: int, retries: int,
        on_chunk: ChunkCallback | None, checksum: bool, files: int,
    ) -> None:
        self.store = store
        self.data_dir = data_dir
        self.manifest = manifest
        self.progress = progress
        self.connections = connections
        self.chunk_size = chunk_size
        self.range_size = range_size
        self.retries = retries
        self.on_chunk = on_chunk
        self.checksum = checksum
        self.cancelled = threading.Event()
        self.settled: queue.Queue[tuple[ObjectInfo, str, Any]] = queue.Queue()
        # Files in flight (n_jobs); their ranges share the connection budget.
        self.slots = threading.Semaphore(files)
        self.pool = ThreadPoolExecutor(max_workers=connections, thread_name_prefix="laion-fmri-dl")

    # ------------------------------------------------------------------ scheduling
    def _settle(self, item: tuple[ObjectInfo, str, Any]) -> None:
        """Hand one file's outcome to the main thread and free its slot."""
        self.settled.put(item)
        self.slots.release()

    def start(self, job: _Job) -> None:
        """Open the partial file and queue every range not done yet."""
        try:
            self._prepare(job)
        except Exception as exc:
            self._settle_failure(job, exc)
            return
        todo = [r for r in job.ranges if r.index not in job.results]
        if job.ranged and self.checksum and job.obj.checksum is None:
            # A ranged GET carries no full-object checksum; a HEAD does. It runs
            # first on one connection while the ranges start on the others.
            job.head = self.pool.submit(self._head, job.obj)
        if not todo:
            self.pool.submit(self._finish_guarded, job)
            return
        job.pending = len(todo)
        for rng in todo:
            self.pool.submit(self._range_task, job, rng)

    def _prepare(self, job: _Job) -> None:
        target = job.target
        if job.part.is_symlink():  # a planted link: never write (or resume) through it
            job.part.unlink()
        if job.state.is_symlink():
            job.state.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if not _inside(self.data_dir, target.parent):
            raise UnsafeKeyError(f"Refusing key {job.obj.key!r}: its folder leads outside "
                                 f"{self.data_dir}.")
        job.load_resume()
        if not job.results:
            with contextlib.suppress(FileNotFoundError):
                job.state.unlink()
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        if not job.results:
            flags |= os.O_TRUNC
        job.fd = os.open(job.part, flags, 0o644)
        if job.ranged:
            os.ftruncate(job.fd, job.obj.size)
        done = sum(job.ranges[i].end - job.ranges[i].start for i in job.results)
        if done:
            self.progress.advance(done)

    def _crc_known(self, job: _Job) -> bool:
        """True once the server's full-object CRC of this version is known.

        That CRC covers every byte and is computed natively at memory speed, so
        ranges starting after it is known skip their part MD5 (MD5 runs at
        ~0.5 GB/s per core, slower than a fast link). Without it, part MD5s
        against the multipart ETag are the content check.
        """
        if job.obj.checksum is not None:
            return is_crc(job.obj.checksum[0])
        head = job.head
        if head is None or not head.done() or head.cancelled() or head.exception() is not None:
            return False
        fresh = head.result()
        known = bool(fresh and fresh.checksum and is_crc(fresh.checksum[0])
                     and not (job.obj.etag and fresh.etag and fresh.etag != job.obj.etag))
        if known:
            with job.lock:  # later ranges compute this CRC as they arrive
                if job.obj.checksum is None:
                    job.obj = replace(job.obj, checksum=fresh.checksum)
                    job.rule = rule_for(job.obj)
                    if job.part_size and not job.rule.part_sizes:
                        job.part_size = None
        return known

    def _head(self, obj: ObjectInfo) -> ObjectInfo | None:
        try:
            return self.store.head(obj.key)
        except Exception:
            return None  # the ranges themselves report what is wrong

    def _take_head(self, job: _Job) -> None:
        """Adopt the checksum of the HEAD (or notice that the object changed)."""
        head, job.head = job.head, None
        try:
            fresh = head.result() if head is not None else None
        except BaseException:  # cancelled with the run
            fresh = None
        if fresh is None:
            return
        if job.obj.etag and fresh.etag and fresh.etag != job.obj.etag:
            job.changed = True
        elif fresh.checksum:
            job.obj = replace(job.obj, checksum=fresh.checksum)
            job.rule = rule_for(job.obj)

    def _range_task(self, job: _Job, rng: _Range) -> None:
        try:
            if job.failure is None and not job.changed and not job.range_ignored:
                self._fetch_range_with_retries(job, rng)
        finally:
            with job.lock:
                job.pending -= 1
                last = job.pending == 0
            if last:
                self._finish_guarded(job)

    def _fetch_range_with_retries(self, job: _Job, rng: _Range) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                digests = self._fetch_range(job, rng)
            except ObjectChangedError:
                job.changed = True
                return
            except _RangeIgnored:
                job.range_ignored = True
                return
            except SourceUnavailableError as exc:
                if self.cancelled.is_set():
                    job.failure = _Cancelled(str(exc))
                    return
                if attempt > self.retries:
                    job.failure = DownloadError(
                        f"Giving up on {job.obj.key!r} after {attempt} tries: {exc}")
                    return
                time.sleep(backoff_delay(attempt))
                continue
            except BaseException as exc:
                job.failure = exc
                return
            with job.lock:
                job.results[rng.index] = digests
                if job.ranged and job.obj.etag:
                    write_state(job.state, job.state_record())
            return

    def _fetch_range(self, job: _Job, rng: _Range) -> dict[str, Any]:
        obj = job.obj
        ranged = job.ranged
        if_match = obj.etag if (ranged or rng.end < obj.size) else None
        with self.store.open(
            obj.key, start=rng.start if ranged else 0, if_match=if_match,
            chunk_size=self.chunk_size, end=rng.end if ranged else None,
        ) as dl:
            if ranged and (dl.status != 206 or dl.start != rng.start):
                raise _RangeIgnored()
            if not ranged:
                self._adopt_fresh(job, rng, dl.info)
            crc_known = bool(ranged and self.checksum and self._crc_known(job))
            digests = FileDigests(job.part_size if not ranged else None,
                                  job.algorithms() if self.checksum else [])
            part_md5 = bool(ranged and job.part_size and self.checksum and not crc_known)
            if part_md5:
                digests = FileDigests(rng.end - rng.start, job.algorithms())
            offset = rng.start
            assert job.fd is not None
            for chunk in dl:
                if self.cancelled.is_set():
                    raise _Cancelled(f"{obj.key!r}: interrupted; the partial file is kept "
                                     "for resuming.")
                n = len(chunk)
                if offset + n > rng.end:
                    raise SourceUnavailableError(
                        f"the server sent more bytes than asked for {obj.key!r}")
                _pwrite_all(job.fd, chunk, offset)
                if part_md5 and self._crc_known(job):
                    # The HEAD answered with a full-object CRC while this range was
                    # arriving: the CRC covers it, the part MD5 is not needed.
                    digests.drop_parts()
                    part_md5 = False
                digests.update(chunk)
                offset += n
                with job.lock:
                    job.received += n
                self.progress.advance(n)
                if self.on_chunk is not None:
                    self.on_chunk(obj.key, n)
            if offset != rng.end:
                raise SourceUnavailableError(
                    f"the connection ended early ({offset - rng.start} of "
                    f"{rng.end - rng.start} bytes of {obj.key!r})")
        out = digests.result()
        if part_md5:
            out["md5"] = out.pop("parts")[0]  # type: ignore[index]
        out["bytes"] = rng.end - rng.start
        return out

    def _adopt_fresh(self, job: _Job, rng: _Range, fresh: ObjectInfo) -> None:
        """A whole-object GET: the answer's ETag, size and checksum are the truth.

        Changed since it was listed (new ETag; or, without ETags, a new size):
        adopt the fresh version. A different size under the same ETag is a
        short/long response, not a new object: keep the listed size so the
        size check rejects it.
        """
        obj = job.obj
        changed = (fresh.etag != obj.etag) if (fresh.etag and obj.etag) else (fresh.size != obj.size)
        if changed:
            obj = ObjectInfo(obj.key, fresh.size, fresh.etag, fresh.last_modified, obj.sha256,
                             fresh.checksum)
        elif fresh.checksum and not obj.checksum:
            obj = ObjectInfo(obj.key, obj.size, obj.etag, obj.last_modified, obj.sha256,
                             fresh.checksum)
        if obj is not job.obj:
            job.obj = obj
            job.rule = rule_for(obj)
            job.part_size = job.rule.part_sizes[0] if job.rule.kind == "multipart" else None
            rng.end = obj.size
            job.ranges = [rng]

    # ------------------------------------------------------------------ completion
    def _finish_guarded(self, job: _Job) -> None:
        try:
            self._finish(job)
        except BaseException as exc:
            self._settle_failure(job, exc)

    def _close(self, job: _Job) -> None:
        if job.fd is not None:
            os.close(job.fd)
            job.fd = None

    def _finish(self, job: _Job) -> None:
        self._close(job)
        if job.failure is not None:
            raise job.failure
        if job.head is not None:
            self._take_head(job)
        if job.changed or job.range_ignored:
            self._restart(job)
            return
        size = os.stat(job.part, follow_symlinks=False).st_size
        if size != job.obj.size:
            raise IntegrityError(f"{job.obj.key!r}: {size} bytes, expected {job.obj.size}")
        problem, digests = (self._content_problem(job) if self.checksum else (None, {}))
        unverified = None
        if problem and job.ranged:
            problem, digests = self._repair_parts(job, problem)
        if problem:
            if self._same_bytes_twice(job, digests, problem):
                unverified = ETAG_NOT_CONTENT_HASH
            else:
                self._retry_whole(job, problem)
                return
        elif self.checksum and not job.rule.content_checked and job.obj.etag is not None:
            unverified = OPAQUE_ETAG  # (a local folder has no ETags: nothing to report)
        os.replace(job.part, job.target)
        with contextlib.suppress(FileNotFoundError):
            job.state.unlink()
        self._record(job, digests, unverified)
        self._settle((job.obj, "downloaded", (job.received, unverified)))

    def _content_problem(self, job: _Job) -> tuple[str | None, dict[str, Any]]:
        """Combine the ranges' digests (re-reading only what cannot be combined)."""
        rule = job.rule
        digests: dict[str, Any] = {}
        parts = [job.results[r.index] for r in job.ranges]
        if not job.ranged:
            digests.update(parts[0])
            if job.part_size:
                digests["multipart"] = multipart_etag(digests.pop("parts"))
        else:
            if job.part_size and all("md5" in p for p in parts):
                digests["multipart"] = multipart_etag(p["md5"] for p in parts)
            elif job.part_size and rule.checksum and is_crc(rule.checksum[0]):
                # Ranges that started after the CRC was known skipped their part
                # MD5: the full-object CRC is the content check.
                rule = job.rule = replace(rule, multipart=None, part_sizes=())
                job.part_size = None
            elif job.part_size:
                digests.update(digest_file(str(job.part), ContentRule(
                    multipart=rule.multipart, part_sizes=(job.part_size,)), job.part_size))
            crcs = [a for a in algorithms_for(rule) if is_crc(a)]
            for name in crcs if DEFAULT_CRC in crcs else [*crcs, DEFAULT_CRC]:
                for rng, p in zip(job.ranges, parts, strict=True):
                    if name not in p:  # started before the HEAD named this CRC: read it back
                        p[name] = _crc_of_range(job.part, name, rng.start, rng.end)
                value = parts[0][name]
                for rng, p in zip(job.ranges[1:], parts[1:], strict=True):
                    value = crc_combine(name, value, p[name], rng.end - rng.start)
                digests[name] = value
            if rule.md5 and rule.checksum and rule.checksum[0] in digests:
                # The combined full-object CRC covers every byte: no second read for MD5.
                rule = job.rule = replace(rule, md5=None)
            sequential = [a for a in algorithms_for(rule) if a not in digests]
            if sequential:  # MD5 / SHA-256 of the whole file cannot be combined from ranges
                digests.update(digest_file(str(job.part), ContentRule(
                    md5=rule.md5, sha256=rule.sha256,
                    checksum=rule.checksum if rule.checksum and rule.checksum[0] in sequential
                    else None)))
        problem = mismatch(rule, digests)
        if problem and rule.kind == "multipart" and len(rule.part_sizes) > 1:
            # Ambiguous part size: try the other candidates on the bytes on disk.
            for other in rule.part_sizes[1:]:
                alt = digest_file(str(job.part), ContentRule(multipart=rule.multipart,
                                                             part_sizes=(other,)), other)
                if alt["multipart"] == rule.multipart:
                    digests["multipart"] = alt["multipart"]
                    job.part_size = other
                    return mismatch(rule, digests), digests
        return problem, digests

    def _repair_parts(self, job: _Job, problem: str) -> tuple[str | None, dict[str, Any]]:
        """Find the damaged part(s) by fetching parts again; rewrite only those that differ.

        A part's fresh MD5 that differs from the first one marks the damaged
        part. It stops as soon as the ETag matches.
        """
        job.fd = os.open(job.part, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        try:
            for rng in job.ranges:
                if self.cancelled.is_set():
                    raise _Cancelled(f"{job.obj.key!r}: interrupted.")
                before = job.results[rng.index]
                fresh = self._fetch_range_again(job, rng)
                if _fingerprint(fresh) == _fingerprint(before):
                    continue
                job.repair_changed = True
                job.results[rng.index] = fresh
                problem, digests = self._content_problem(job)
                if problem is None:
                    return None, digests
        finally:
            self._close(job)
        return self._content_problem(job)

    def _fetch_range_again(self, job: _Job, rng: _Range) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._fetch_range(job, rng)
            except SourceUnavailableError:
                if attempt > self.retries:
                    raise
                time.sleep(backoff_delay(attempt))

    def _same_bytes_twice(self, job: _Job, digests: dict[str, Any], problem: str) -> bool:
        """Two fetches gave identical bytes that still mismatch the same ETag.

        Only an ETag can be "not a content hash": a checksum or published
        SHA-256 mismatch is always damage.
        """
        rule = job.rule
        if (rule.checksum or rule.sha256) and mismatch(
            ContentRule(checksum=rule.checksum, sha256=rule.sha256), digests
        ):
            return False
        if job.ranged:
            return not job.repair_changed  # every range came twice with the same bytes
        fingerprint = str(digests.get("multipart") or digests.get("md5"))
        job.mismatches.append(fingerprint)
        return len(job.mismatches) >= 2 and len(set(job.mismatches[-2:])) == 1

    def _retry_whole(self, job: _Job, problem: str) -> None:
        job.restarts += 1
        self._discard(job)
        if job.restarts > self.retries:
            raise DownloadError(
                f"Giving up on {job.obj.key!r} after {job.restarts} tries: it arrived "
                f"corrupted each time ({problem}).")
        time.sleep(backoff_delay(job.restarts))
        job.reset(job.obj)
        self.start(job)

    def _restart(self, job: _Job) -> None:
        """The object changed (HTTP 412) or the server ignored Range: start it over."""
        job.restarts += 1
        self._discard(job)
        if job.restarts > self.retries:
            raise ObjectChangedError(f"{job.obj.key!r} kept changing while it downloaded.")
        if job.range_ignored:
            obj = job.obj
            job.reset(obj)
            job.ranges = [_Range(0, 0, obj.size)]
        else:
            try:
                fresh = self.store.head(job.obj.key)
            except SourceUnavailableError:
                fresh = ObjectInfo(job.obj.key, job.obj.size, None, job.obj.last_modified)
            job.reset(fresh)
        self.start(job)

    def _discard(self, job: _Job) -> None:
        for path in (job.part, job.state):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                path.unlink()

    def _record(self, job: _Job, digests: dict[str, Any], unverified: str | None) -> None:
        st = job.target.stat()
        rule = job.rule
        md5 = digests.get("md5") if isinstance(digests.get("md5"), str) else None
        self.manifest.put(
            job.obj.key, job.target.relative_to(self.data_dir), st.st_size, job.obj.etag,
            md5, rule.sha256, st.st_mtime_ns,
            part_size=job.part_size if rule.kind == "multipart" else None,
            checksum=_recorded_checksum(rule, digests),
            content=_content_label(rule, job.obj, unverified is not None),
        )

    def _settle_failure(self, job: _Job, exc: BaseException) -> None:
        self._close(job)
        resumable = job.ranged and job.obj.etag and job.results and not isinstance(
            exc, (IntegrityError, ObjectChangedError))
        if not resumable:
            self._discard(job)
        if isinstance(exc, OSError) and not isinstance(exc, LaionFMRIError):
            exc = DownloadError(f"Writing {job.obj.key!r} to {job.target} failed: {exc}")
        self._settle((job.obj, "failed", exc))

    # ------------------------------------------------------------------ checks
    def check(self, obj: ObjectInfo, target: Path) -> None:
        """Hash a present file of the right size; record it when it matches, else fetch it."""
        try:
            rule = rule_for(obj)
            digests = digest_file(str(target), rule, extra=(DEFAULT_CRC,))
            part_size = rule.part_sizes[0] if rule.kind == "multipart" else None
            if mismatch(rule, digests) and rule.kind == "multipart":
                for other in rule.part_sizes[1:]:
                    alt = digest_file(str(target), rule, other)
                    if not mismatch(rule, alt):
                        digests, part_size = alt, other
                        break
            if rule.content_checked and mismatch(rule, digests):
                self.pool.submit(self.start, _Job(obj, target, self.range_size))
                return
            st = target.stat()
            self.manifest.put(obj.key, target.relative_to(self.data_dir), st.st_size, obj.etag,
                              digests.get("md5") if rule.md5 else None, rule.sha256,
                              st.st_mtime_ns, part_size=part_size,
                              checksum=_recorded_checksum(rule, digests),
                              content=_content_label(rule, obj, False))
            self._settle((obj, "skipped", None))
        except BaseException as exc:
            self._settle((obj, "failed", exc))


def _content_label(rule: ContentRule, obj: ObjectInfo, unverified: bool) -> str:
    """The manifest's ``content``: the rule, ``size`` when the source's hash was unusable,
    ``local`` for a source without ETags (a folder: our CRC64NVME of the bytes is the record).
    """
    if unverified or (not rule.content_checked and obj.etag is not None):
        return "size"
    return rule.kind if rule.content_checked else "local"


def _recorded_checksum(rule: ContentRule, digests: dict[str, Any]) -> str | None:
    """``algorithm:base64`` for the manifest: the server's checksum, else our CRC64NVME."""
    if rule.checksum:
        return f"{rule.checksum[0]}:{rule.checksum[1]}"
    value = digests.get(DEFAULT_CRC)
    return f"{DEFAULT_CRC}:{checksum_text(DEFAULT_CRC, value)}" if isinstance(value, int) else None


def _crc_of_range(path: Path, algorithm: str, start: int, end: int) -> int:
    """CRC of bytes ``[start, end)`` of a file (page cache; native code)."""
    value = 0
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        while start < end:
            block = os.pread(fd, min(_HASH_BLOCK, end - start), start)
            if not block:
                break
            value = crc_update(algorithm, block, value)
            start += len(block)
    finally:
        os.close(fd)
    return value


def _fingerprint(digests: dict[str, Any]) -> object:
    """What identifies a range's bytes between two fetches (its CRC64NVME, always computed)."""
    return digests.get(DEFAULT_CRC)


def _pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data)
    while len(view):
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _inside(root: Path, path: Path) -> bool:
    try:
        resolved = path.resolve()
    except OSError:
        return False
    return resolved == root or root in resolved.parents


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
