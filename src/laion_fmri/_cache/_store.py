"""Reading, writing and verifying one cache entry (the sidecar decides validity)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from laion_fmri._cache._entries import CacheEntry, source_stamp, symlink_error, symlinked_folder
from laion_fmri._jsonio import list_of, read_state

__all__ = ["CACHE_VERSION", "open_cached", "read_sidecar", "verify", "write_cache"]

CACHE_VERSION = 1
_BLOCK = 4096
_N_SAMPLES = 64



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


def _nonneg_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_nonneg_int.expected = "a non-negative integer"  # type: ignore[attr-defined]


def _stamp(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    if set(value) == {"size", "mtime_ns"}:  # a local .nii.gz
        return all(_nonneg_int(v) for v in value.values())
    # Streamed from the source (no local file): the object's ETag and size.
    return set(value) == {"etag", "size"} and isinstance(value["etag"], str) and _nonneg_int(value["size"])


_stamp.expected = "a {size, mtime_ns} or {etag, size} object"  # type: ignore[attr-defined]

_SIDECAR_SCHEMA = {
    "version": int,
    "source_key": str,
    "source_path": str,
    "source": _stamp,
    "mask_hash": str,
    "shape": list_of(int, max_len=2),
    "dtype": str,
    "cache_size": _nonneg_int,
    "cache_mtime_ns": int,
    "fingerprint": str,
    "crc32": _nonneg_int,
}


def read_sidecar(entry: CacheEntry) -> dict | None:
    # A sidecar is ours to rebuild: anything unexpected means "no valid entry".
    if entry.sidecar.is_symlink():
        return None
    meta = read_state(entry.sidecar, _SIDECAR_SCHEMA, max_bytes=64 << 10, max_depth=3)
    return meta if meta is not None and meta.get("version") == CACHE_VERSION else None


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
    if symlinked_folder(entry.data, entry.base) is not None:
        return None
    try:
        return _open_cached(entry, source, source_key, mask_digest, mode)
    except OSError:
        # E.g. `laion-fmri cache clear` removed the entry meanwhile: decode instead.
        return None


def _open_cached(
    entry: CacheEntry, source: Path, source_key: str, mask_digest: str, mode: str
) -> np.ndarray | None:
    meta = read_sidecar(entry)
    if meta is None or not entry.data.is_file() or not _source_matches(meta["source"], source):
        return None
    expected = {"source_key": source_key, "mask_hash": mask_digest, "dtype": "float32"}
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


def _source_matches(recorded: dict, source: Path) -> bool:
    """The recorded source stamp still describes ``source``.

    A local stamp needs the file, unchanged. An entry streamed from the source
    (ETag stamp) needs no local file; if one appeared since (downloaded
    later, verified against the same object) its size must match.
    """
    if "etag" in recorded:
        return not source.is_file() or source.stat().st_size == recorded["size"]
    return source.is_file() and source_stamp(source) == recorded


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
        The beta NIfTI it was decoded from (its size/mtime are recorded), or
        would be on disk when the betas were streamed from the source.
    source_key : str
        Bucket key of the source.
    mask_digest : str
        :func:`mask_hash` of the brain mask used.
    stamp : dict, optional
        :func:`source_stamp` taken *before* decoding (so a source replaced
        mid-decode is re-decoded next time); defaults to the current stamp.
        For betas streamed from the source: :func:`remote_stamp` of the
        verified object.

    Raises
    ------
    OSError
        If the entry cannot be written, or a cache folder below the data
        directory (or ``LAION_FMRI_CACHE_DIR``) is a symbolic link.

    Examples
    --------
    >>> write_cache(entry, betas, path, key, digest)  # doctest: +SKIP
    """
    from filelock import FileLock
    from zlib_ng import zlib_ng

    link = symlinked_folder(entry.data.parent, entry.base)
    if link is None:
        entry.data.parent.mkdir(parents=True, exist_ok=True)
        link = symlinked_folder(entry.lock, entry.base)
    if link is not None:
        raise symlink_error(link, "write")
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
    meta = read_sidecar(entry)
    if meta is None or not entry.data.is_file() or entry.data.is_symlink():
        return False
    try:
        if entry.data.stat().st_size != meta.get("cache_size"):
            return False
        return _crc32_file(entry.data) == meta.get("crc32")
    except OSError:  # removed meanwhile
        return False
