"""Where a cache entry lives: its paths, the cache root, symbolic-link checks, identities."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laion_fmri import layout

__all__ = [
    "ENV_CACHE_DIR",
    "CacheEntry",
    "cache_base",
    "cache_root",
    "call_cache",
    "derived_dir",
    "entry_for",
    "entry_in",
    "mask_hash",
    "remote_stamp",
    "source_stamp",
    "symlink_error",
    "symlinked_folder",
]


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
    return entry_in(cache_root(data_dir) / subject, session, cache_base(data_dir))


# The ``cache=`` argument of the call being served (``None``: the environment decides),
# so the brain-mask index loaded on the way respects ``get_betas(cache=False)`` too.
_CALL_CACHE: ContextVar[bool | None] = ContextVar("laion_fmri_call_cache", default=None)


@contextlib.contextmanager
def call_cache(cache: bool | None) -> Iterator[None]:
    """Apply a call's ``cache=`` choice to everything it derives on the way.

    Parameters
    ----------
    cache : bool, optional
        ``False`` stores no derived index either; ``None`` leaves it to
        ``LAION_FMRI_CACHE``.

    Yields
    ------
    None

    Examples
    --------
    >>> with call_cache(False):
    ...     derived_dir("/data", "sub-03") is None
    True
    """
    token = _CALL_CACHE.set(cache)
    try:
        yield
    finally:
        _CALL_CACHE.reset(token)


def derived_dir(data_dir: str | os.PathLike[str], subject: str) -> Path | None:
    """Folder for the small arrays derived from a subject's map files, or ``None``.

    The brain-mask voxel index and the ROI columns live next to the betas
    cache (``<cache_root>/<subject>``) so a fresh process reads them instead
    of decoding NIfTI maps. ``None`` (derive, store nothing) when the cache is
    off (``LAION_FMRI_CACHE=0``, or ``cache=False`` of the call, see
    :func:`call_cache`) or a folder below the data directory (or
    ``LAION_FMRI_CACHE_DIR``) on the way is a symbolic link; an unwritable
    folder is handled by the writer (it stores nothing).

    Parameters
    ----------
    data_dir : str or os.PathLike
        Local data directory.
    subject : str
        Canonical id.

    Returns
    -------
    Path or None

    Examples
    --------
    >>> derived_dir("/data", "sub-03").as_posix()  # doctest: +SKIP
    '/data/.laion_fmri/cache/sub-03'
    """
    from laion_fmri.config import cache_enabled

    if not cache_enabled(_CALL_CACHE.get()):
        return None
    folder = cache_root(data_dir) / subject
    return None if symlinked_folder(folder, cache_base(data_dir)) is not None else folder


def entry_in(folder: Path, session: str, base: Path | None = None) -> CacheEntry:
    """The entry of ``session`` inside one subject's cache ``folder``."""
    return CacheEntry(folder / f"{session}_betas.npy", folder / f"{session}_betas.json", base)


def cache_base(data_dir: str | os.PathLike[str]) -> Path:
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


def symlink_error(link: Path, action: str) -> OSError:
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


def remote_stamp(etag: str | None, size: int) -> dict[str, object]:
    """Identity of a source object whose betas were streamed into the cache (no local file).

    Parameters
    ----------
    etag : str, optional
        The object's ETag (``""`` when the source has none, e.g. a local folder).
    size : int
        Its size in bytes.

    Returns
    -------
    dict
        ``{"etag": str, "size": int}``.

    Examples
    --------
    >>> remote_stamp('"abc"', 3)
    {'etag': '"abc"', 'size': 3}
    """
    return {"etag": etag or "", "size": int(size)}
