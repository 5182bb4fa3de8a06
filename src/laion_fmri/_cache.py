"""Masked float32 cache of decoded beta sessions.

The first whole-brain load of a session writes
``<data_dir>/.laion_fmri/cache/<sub>/<ses>_betas.npy`` (a plain ``.npy``, so it
can be memory-mapped) and a JSON sidecar next to it. Later loads map the file
and read only the columns they need.

Validity
--------
A cache entry is used only when its sidecar matches the current source file
(relative key, size, ``mtime_ns``), the brain mask (a BLAKE2b hash of the
mask bits and grid shape), and the cache file itself (exact byte size and the
``.npy`` header's shape/dtype). Opening therefore costs a ``stat`` and a header
read, never a pass over the data. In addition the sidecar stores a cheap
*fingerprint* (BLAKE2b over the file size and 64 evenly spaced 4 KiB blocks),
checked on every open, and a CRC32 (zlib-ng, several GB/s) of the whole file
computed from memory while writing, checked only on demand by :func:`verify`
(``laion-fmri cache info --verify``) because reading a 1 GB file on every
load would defeat the cache. CRC32 detects accidental damage, not deliberate
tampering. Truncation is caught by the size check, in-place alteration of
sampled blocks by the fingerprint, anything else by :func:`verify`.

Writes are atomic (temporary file + :func:`os.replace`, sidecar written last)
and serialised per entry with a :class:`filelock.FileLock`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laion_fmri import layout

CACHE_VERSION = 1
_BLOCK = 4096
_N_SAMPLES = 64


@dataclass(frozen=True)
class CacheEntry:
    """Paths of one cached session.

    Parameters
    ----------
    data : Path
        The ``.npy`` file holding ``(n_trials, n_voxels)`` float32 betas.
    sidecar : Path
        Its JSON sidecar.

    Examples
    --------
    >>> CacheEntry(Path("s.npy"), Path("s.json")).lock.name
    's.npy.lock'
    """

    data: Path
    sidecar: Path

    @property
    def lock(self) -> Path:
        """Lock file serialising writers of this entry."""
        return self.data.with_name(self.data.name + ".lock")


ENV_CACHE_DIR = "LAION_FMRI_CACHE_DIR"


def cache_root(data_dir: str | os.PathLike[str]) -> Path:
    """Folder holding the betas cache of ``data_dir``.

    ``<data_dir>/.laion_fmri/cache`` by default; with ``LAION_FMRI_CACHE_DIR``
    set (e.g. for a read-only shared data folder), a sub-folder of it named
    after the data directory, so several data directories never collide.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Local data directory.

    Returns
    -------
    Path

    Examples
    --------
    >>> cache_root("/data").as_posix()  # doctest: +SKIP
    '/data/.laion_fmri/cache'
    """
    override = os.environ.get(ENV_CACHE_DIR, "").strip()
    if not override:
        return layout.cache_dir(data_dir)
    resolved = str(Path(data_dir).resolve())
    tag = hashlib.blake2b(resolved.encode("utf-8"), digest_size=4).hexdigest()
    return Path(override).expanduser() / f"{Path(resolved).name or 'root'}-{tag}"


def entry_for(data_dir: str | os.PathLike[str], subject: str, session: str) -> CacheEntry:
    """Return the cache paths of ``subject``/``session`` under ``data_dir``.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Local data directory.
    subject, session : str
        Canonical ids.

    Returns
    -------
    CacheEntry

    Examples
    --------
    >>> entry_for("/data", "sub-03", "ses-01").data.name
    'ses-01_betas.npy'
    """
    folder = cache_root(data_dir) / subject
    return CacheEntry(folder / f"{session}_betas.npy", folder / f"{session}_betas.json")


def mask_hash(mask: np.ndarray, grid_shape: tuple[int, ...]) -> str:
    """BLAKE2b hash identifying a brain mask (bits and grid shape).

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean brain mask (any shape; flattened in C order).
    grid_shape : tuple of int
        The grid it lives on.

    Returns
    -------
    str
        Hex digest.

    Examples
    --------
    >>> mask_hash(np.ones(8, bool), (2, 2, 2)) == mask_hash(np.ones(8, bool), (2, 2, 2))
    True
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(list(grid_shape)).encode())
    h.update(np.packbits(np.asarray(mask, dtype=bool).ravel()).tobytes())
    return h.hexdigest()


def source_stamp(path: Path) -> dict[str, int]:
    """Size and modification time of a source file.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    dict
        ``{"size": bytes, "mtime_ns": int}``.

    Examples
    --------
    >>> sorted(source_stamp(Path(__file__)))  # doctest: +SKIP
    ['mtime_ns', 'size']
    """
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _fingerprint(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= _BLOCK * _N_SAMPLES:
            h.update(fh.read())
        else:
            step = (size - _BLOCK) // (_N_SAMPLES - 1)
            for i in range(_N_SAMPLES):
                fh.seek(i * step)
                h.update(fh.read(_BLOCK))
    return h.hexdigest()


def _crc32_file(path: Path) -> int:
    from zlib_ng import zlib_ng

    crc = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            crc = zlib_ng.crc32(block, crc)
    return crc


def _read_sidecar(entry: CacheEntry) -> dict | None:
    try:
        meta = json.loads(entry.sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("version") == CACHE_VERSION else None


def open_cached(
    entry: CacheEntry, source: Path, source_key: str, mask_digest: str, mode: str = "r"
) -> np.ndarray | None:
    """Memory-map a valid cache entry, or return ``None`` (missing or stale).

    Parameters
    ----------
    entry : CacheEntry
        Paths from :func:`entry_for`.
    source : Path
        The beta NIfTI the entry was decoded from.
    source_key : str
        Bucket key of the source (recorded in the sidecar).
    mask_digest : str
        :func:`mask_hash` of the current brain mask.
    mode : {"r", "c"}
        ``numpy.load`` mmap mode: read-only, or copy-on-write (writable in
        memory, the file never changes).

    Returns
    -------
    numpy.ndarray or None
        A ``(n_trials, n_voxels)`` float32 memory map.

    Examples
    --------
    >>> mm = open_cached(entry, path, key, mask_hash(mask, shape))  # doctest: +SKIP
    """
    meta = _read_sidecar(entry)
    if meta is None or not entry.data.is_file() or not source.is_file():
        return None
    expected = {
        "source_key": source_key,
        "source": source_stamp(source),
        "mask_hash": mask_digest,
        "dtype": "float32",
    }
    if any(meta.get(k) != v for k, v in expected.items()):
        return None
    st = entry.data.stat()
    # Any write to the file after it was cached (an in-place edit between the
    # fingerprint's sampled blocks included) moves its mtime.
    if st.st_size != meta.get("cache_size") or st.st_mtime_ns != meta.get("cache_mtime_ns"):
        return None
    try:
        mm = np.load(entry.data, mmap_mode=mode)
    except (OSError, ValueError):
        return None
    if list(mm.shape) != meta.get("shape") or mm.dtype != np.float32 or mm.ndim != 2:
        return None
    if _fingerprint(entry.data) != meta.get("fingerprint"):
        return None
    return mm


def write_cache(
    entry: CacheEntry,
    array: np.ndarray,
    source: Path,
    source_key: str,
    mask_digest: str,
    stamp: dict[str, int] | None = None,
) -> None:
    """Atomically write ``array`` as the cache of ``source`` (under a lock).

    The sidecar is removed first and written last, so a crash in between
    leaves an entry that :func:`open_cached` rejects.

    Parameters
    ----------
    entry : CacheEntry
        Target paths.
    array : numpy.ndarray
        ``(n_trials, n_voxels)`` float32 whole-brain betas.
    source : Path
        The beta NIfTI it was decoded from (its size/mtime are recorded).
    source_key : str
        Bucket key of the source.
    mask_digest : str
        :func:`mask_hash` of the brain mask used.
    stamp : dict, optional
        :func:`source_stamp` taken *before* decoding (so a source replaced
        mid-decode is re-decoded next time); defaults to the current stamp.

    Examples
    --------
    >>> write_cache(entry, betas, path, key, digest)  # doctest: +SKIP
    """
    from filelock import FileLock
    from zlib_ng import zlib_ng

    entry.data.parent.mkdir(parents=True, exist_ok=True)
    array = np.ascontiguousarray(array, dtype=np.float32)
    stamp = source_stamp(source) if stamp is None else stamp
    with FileLock(str(entry.lock)):
        with contextlib.suppress(FileNotFoundError):
            entry.sidecar.unlink()
        tmp = entry.data.with_name(f".{entry.data.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)
                header_size = fh.tell() - array.nbytes
            # CRC32 of the file = header bytes, then the array straight from memory.
            with open(tmp, "rb") as fh:
                crc = zlib_ng.crc32(fh.read(header_size))
            crc = zlib_ng.crc32(memoryview(array).cast("B"), crc)
            os.replace(tmp, entry.data)
            # Pin the mtime one second in the past: any later write moves it to
            # "now", even on filesystems whose clock ticks coarsely.
            pinned = time.time_ns() - 1_000_000_000
            os.utime(entry.data, ns=(pinned, pinned))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        meta = {
            "version": CACHE_VERSION,
            "source_key": source_key,
            "source_path": str(source),
            "source": stamp,
            "mask_hash": mask_digest,
            "shape": list(array.shape),
            "dtype": "float32",
            "cache_size": entry.data.stat().st_size,
            "cache_mtime_ns": entry.data.stat().st_mtime_ns,
            "fingerprint": _fingerprint(entry.data),
            "crc32": crc,
        }
        side_tmp = entry.sidecar.with_name(f".{entry.sidecar.name}.{os.getpid()}.tmp")
        side_tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(side_tmp, entry.sidecar)


def verify(entry: CacheEntry) -> bool:
    """Full content check of one entry against the CRC32 recorded at write time.

    Parameters
    ----------
    entry : CacheEntry
        The entry to check.

    Returns
    -------
    bool
        False for a missing, truncated or altered entry.

    Examples
    --------
    >>> verify(entry_for(data_dir, "sub-03", "ses-01"))  # doctest: +SKIP
    True
    """
    meta = _read_sidecar(entry)
    if meta is None or not entry.data.is_file():
        return False
    if entry.data.stat().st_size != meta.get("cache_size"):
        return False
    return _crc32_file(entry.data) == meta.get("crc32")


@dataclass(frozen=True)
class CacheInfo:
    """One cache entry as listed by :func:`list_entries`.

    Parameters
    ----------
    subject, session : str
        Ids the entry belongs to.
    entry : CacheEntry
        Its paths.
    size : int
        Bytes of the ``.npy`` file.
    shape : tuple of int or None
        Recorded shape (``None`` without a readable sidecar).
    source_key : str or None
        Bucket key of the decoded source.

    Examples
    --------
    >>> [(i.session, i.shape) for i in list_entries(data_dir)]  # doctest: +SKIP
    [('ses-01', (1044, 61234))]
    """

    subject: str
    session: str
    entry: CacheEntry
    size: int
    shape: tuple[int, ...] | None
    source_key: str | None


def list_entries(data_dir: str | os.PathLike[str], subject: str | None = None) -> Iterator[CacheInfo]:
    """Yield every cache entry under ``data_dir`` (optionally one subject), sorted.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Local data directory.
    subject : str, optional
        Only this subject's entries.

    Yields
    ------
    CacheInfo

    Examples
    --------
    >>> [e.session for e in list_entries(data_dir)]  # doctest: +SKIP
    ['ses-01']
    """
    root = cache_root(data_dir)
    if not root.is_dir():
        return
    for sub_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if subject is not None and sub_dir.name != subject:
            continue
        for data in sorted(sub_dir.glob("*_betas.npy")):
            session = data.name[: -len("_betas.npy")]
            entry = CacheEntry(data, data.with_name(f"{session}_betas.json"))
            meta = _read_sidecar(entry) or {}
            shape = tuple(meta["shape"]) if isinstance(meta.get("shape"), list) else None
            yield CacheInfo(
                sub_dir.name, session, entry, data.stat().st_size, shape, meta.get("source_key")
            )


def clear(data_dir: str | os.PathLike[str], subject: str | None = None) -> int:
    """Delete cache files (all, or one subject's).

    Parameters
    ----------
    data_dir : str or os.PathLike
        Local data directory.
    subject : str, optional
        Only this subject's entries.

    Returns
    -------
    int
        Bytes freed.

    Examples
    --------
    >>> clear(data_dir, subject="sub-03")  # doctest: +SKIP
    123456
    """
    root = cache_root(data_dir)
    target = root / subject if subject else root
    if not target.is_dir():
        return 0
    freed = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    shutil.rmtree(target)
    return freed


__all__ = [
    "CacheEntry",
    "CacheInfo",
    "cache_root",
    "clear",
    "entry_for",
    "list_entries",
    "mask_hash",
    "open_cached",
    "source_stamp",
    "verify",
    "write_cache",
]
