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
and serialised per entry with a :class:`filelock.FileLock`. :func:`clear`
takes the same per-entry lock and removes the sidecar before the data, so a
concurrent reader either maps a complete entry (an open map survives the
unlink) or finds none and decodes the NIfTI again. Cache folders that are
symbolic links are never read, written or cleared through.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laion_fmri import layout
from laion_fmri._jsonio import list_of, read_state

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
    base : Path, optional
        The folder the cache tree hangs under (the data directory, or
        ``LAION_FMRI_CACHE_DIR``); no folder between it and the entry may be a
        symbolic link.

    Examples
    --------
    >>> CacheEntry(Path("s.npy"), Path("s.json")).lock.name
    's.npy.lock'
    """

    data: Path
    sidecar: Path
    base: Path | None = None

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
    return CacheEntry(
        folder / f"{session}_betas.npy", folder / f"{session}_betas.json", _cache_base(data_dir)
    )


def _cache_base(data_dir: str | os.PathLike[str]) -> Path:
    override = os.environ.get(ENV_CACHE_DIR, "").strip()
    return Path(override).expanduser() if override else Path(data_dir)


def symlinked_folder(path: Path, base: Path | None) -> Path | None:
    """The first symbolic link among ``path`` and its parents below ``base``, or ``None``.

    ``base`` itself (the data directory or ``LAION_FMRI_CACHE_DIR``) may be a
    link: the user chose it. Everything the cache creates below it must not.

    Parameters
    ----------
    path : Path
        A cache folder or file.
    base : Path or None
        Where the check stops (``None``: only ``path`` itself is checked).

    Returns
    -------
    Path or None

    Examples
    --------
    >>> symlinked_folder(Path("/nonexistent/a/b"), Path("/nonexistent")) is None
    True
    """
    current = path
    while True:
        if base is not None and current == base:
            return None
        if current.is_symlink():
            return current
        if base is None or current.parent == current:
            return None
        current = current.parent


def _symlink_error(link: Path, action: str) -> OSError:
    try:
        target = os.readlink(link)
    except OSError:
        target = "elsewhere"
    return OSError(
        errno.ELOOP,
        f"The cache folder {link} is a symbolic link (to {target}); the betas cache refuses to "
        f"{action} through it. Remove the link (`rm {link}`) or set {ENV_CACHE_DIR} to a real folder",
        str(link),
    )


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


def _nonneg_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_nonneg_int.expected = "a non-negative integer"  # type: ignore[attr-defined]


def _stamp(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"size", "mtime_ns"} and all(
        _nonneg_int(v) for v in value.values()
    )


_stamp.expected = "a {size, mtime_ns} object"  # type: ignore[attr-defined]

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


def _read_sidecar(entry: CacheEntry) -> dict | None:
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
        raise _symlink_error(link, "write")
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
    if meta is None or not entry.data.is_file() or entry.data.is_symlink():
        return False
    try:
        if entry.data.stat().st_size != meta.get("cache_size"):
            return False
        return _crc32_file(entry.data) == meta.get("crc32")
    except OSError:  # removed meanwhile
        return False


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
    if not root.is_dir() or symlinked_folder(root, _cache_base(data_dir)) is not None:
        return  # a linked cache folder is not ours to list (nor to read or clear)
    for sub_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
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
    """Delete cache files (all, or one subject's), safely next to running loads.

    Each entry is removed under its write lock, sidecar first: a process
    loading betas at the same time either keeps its complete memory map or
    finds no entry and decodes the NIfTI; a process writing an entry finishes
    first. The (empty) lock files stay so that every process keeps
    serialising on the same file. Symbolic links are removed, never followed.

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

    Raises
    ------
    OSError
        If the cache folder (or a folder above it, below the data directory)
        is a symbolic link: nothing is deleted through it.

    Examples
    --------
    >>> clear(data_dir, subject="sub-03")  # doctest: +SKIP
    123456
    """
    root = cache_root(data_dir)
    base = _cache_base(data_dir)
    target = root / subject if subject else root
    link = symlinked_folder(target, base)
    if link is not None:
        raise _symlink_error(link, "clear")
    if not target.is_dir():
        return 0
    folders = [target] if subject else sorted(root.iterdir())
    freed = 0
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            freed += _clear_folder(folder, base)
        elif not folder.name.endswith(".lock"):
            freed += _remove(folder)
    return freed


_ENTRY_SUFFIXES = ("_betas.npy", "_betas.json")


def _session_of(name: str) -> str | None:
    """The session an entry file (or its temporary file) belongs to."""
    if name.startswith(".") and name.endswith(".tmp"):
        name = name[1:].rsplit(".", 2)[0]
    for suffix in _ENTRY_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _remove(path: Path) -> int:
    """Delete a file, link or stray folder without following links; return bytes freed."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0  # removed meanwhile (another `cache clear`)
    if stat.S_ISDIR(st.st_mode):
        size = sum(
            os.lstat(os.path.join(top, name)).st_size
            for top, _, files in os.walk(path)
            for name in files
        )
        shutil.rmtree(path, ignore_errors=True)
        return size
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _clear_folder(folder: Path, base: Path) -> int:
    from filelock import FileLock

    freed = 0
    sessions = sorted({s for p in folder.iterdir() if (s := _session_of(p.name)) is not None})
    for session in sessions:
        entry = CacheEntry(folder / f"{session}_betas.npy", folder / f"{session}_betas.json", base)
        if entry.lock.is_symlink():
            freed += _remove(entry.lock)
        with FileLock(str(entry.lock)):
            # Sidecar first: without it no reader accepts the data file.
            for path in (entry.sidecar, entry.data):
                freed += _remove(path)
            for path in folder.glob(f".{session}_betas.*.tmp"):
                freed += _remove(path)  # left by a writer that died; live ones hold the lock
    # Other files are not ours; entry files that appeared after their lock was
    # released belong to a load that ran meanwhile and stay.
    for path in folder.iterdir():
        if _session_of(path.name) is None and (not path.name.endswith(".lock") or path.is_symlink()):
            freed += _remove(path)
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
