"""One object in flight: its byte ranges, resume record and digests; retry timing; disk helpers.

The constants of the transfer engine live here too (re-exported by
:mod:`laion_fmri.download.transfer`).
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from laion_fmri import layout
from laion_fmri.download._content import (
    ContentRule,
    algorithms_for,
    checksum_text,
    crc_update,
    is_crc,
    rule_for,
)
from laion_fmri.download._paths import read_state
from laion_fmri.errors import (
    DownloadError,
)
from laion_fmri.stores.base import ObjectInfo

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


__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "DEFAULT_CONNECTIONS",
    "DEFAULT_CRC",
    "DEFAULT_RETRIES",
    "ChunkCallback",
    "backoff_delay",
    "file_digests",
]
