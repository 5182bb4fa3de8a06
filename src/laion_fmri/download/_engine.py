"""The transfer engine: one connection budget shared by every range of every object.

:func:`laion_fmri.download.transfer.fetch_objects` drives it; the steps are
described there.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from laion_fmri.download._content import (
    ETAG_NOT_CONTENT_HASH,
    OPAQUE_ETAG,
    ContentRule,
    FileDigests,
    algorithms_for,
    crc_combine,
    digest_file,
    is_crc,
    mismatch,
    multipart_etag,
    rule_for,
)
from laion_fmri.download._job import (
    DEFAULT_CRC,
    ChunkCallback,
    _Cancelled,
    _content_label,
    _crc_of_range,
    _fingerprint,
    _inside,
    _Job,
    _pwrite_all,
    _Range,
    _RangeIgnored,
    _recorded_checksum,
    backoff_delay,
)
from laion_fmri.download._paths import write_state
from laion_fmri.download._report import _Progress
from laion_fmri.download.manifest import Manifest
from laion_fmri.errors import (
    DownloadError,
    IntegrityError,
    LaionFMRIError,
    ObjectChangedError,
    SourceUnavailableError,
    UnsafeKeyError,
)
from laion_fmri.stores.base import ObjectInfo, Store


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
        # Folders already resolved inside the data dir this run (a session's
        # files share a handful of folders; resolving each costs a dozen lstats).
        self.safe_folders: set[Path] = set()

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
        if target.parent not in self.safe_folders:
            if not _inside(self.data_dir, target.parent):
                raise UnsafeKeyError(f"Refusing key {job.obj.key!r}: its folder leads outside "
                                     f"{self.data_dir}.")
            self.safe_folders.add(target.parent)
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


__all__: list[str] = []
