"""Listing and clearing the cache (``laion-fmri cache info`` / ``cache clear``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from laion_fmri._cache._entries import (
    CacheEntry,
    cache_base,
    cache_root,
    entry_in,
    symlink_error,
    symlinked_folder,
)
from laion_fmri._cache._store import read_sidecar

__all__ = ["CacheInfo", "clear", "list_entries"]


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
    if not root.is_dir() or symlinked_folder(root, cache_base(data_dir)) is not None:
        return  # a linked cache folder is not ours to list (nor to read or clear)
    for sub_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if subject is not None and sub_dir.name != subject:
            continue
        for data in sorted(sub_dir.glob("*_betas.npy")):
            session = data.name[: -len("_betas.npy")]
            entry = entry_in(sub_dir, session)
            meta = read_sidecar(entry) or {}
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
    base = cache_base(data_dir)
    target = root / subject if subject else root
    link = symlinked_folder(target, base)
    if link is not None:
        raise symlink_error(link, "clear")
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


def _size_if_present(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _remove(path: Path) -> int:
    """Delete a file, link or stray folder without following links; return bytes freed."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0  # removed meanwhile (another `cache clear`)
    if stat.S_ISDIR(st.st_mode):
        # A concurrent writer may rename its staging folder away while we count.
        size = sum(_size_if_present(os.path.join(top, name))
                   for top, _, files in os.walk(path) for name in files)
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
        entry = entry_in(folder, session, base)
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
