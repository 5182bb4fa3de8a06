"""The brain-mask voxel index, derived once and kept as ``.npy`` files.

Decoding the 143^3 mask map with nibabel costs a fresh process most of a
cached ``get_betas``. :func:`mask_index` derives the brain-voxel index and
the disk (Fortran) offsets once and stores them keyed by the mask file's
content fingerprint, so later processes read two small arrays; a changed or
different mask source gets its own entry.

The fingerprint itself is remembered per file path together with the file's
size and ``mtime_ns`` (the betas cache's validity rule), so a fresh process
whose mask file is unchanged opens no NIfTI at all: it reads one small JSON
record and the ``.npy`` files. :func:`stored_array` keeps other arrays derived
from a map file (an ROI over the brain voxels) the same way, and
:func:`checked` remembers a one-off check between two files (the mask is on
the betas grid).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laion_fmri import _nifti as nifti


@dataclass(frozen=True)
class MaskIndex:
    """The brain-mask voxel index of a subject, as the loader needs it.

    Attributes
    ----------
    grid_shape : tuple of int
        ``(x, y, z)``.
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-scanner transform.
    c_index : numpy.ndarray
        C-order flat indices of the brain voxels (int64).
    offsets : numpy.ndarray
        The same voxels as Fortran (disk) offsets (int64).
    digest : str
        :func:`laion_fmri.cache.mask_hash` of the mask (the cache key).
    fingerprint : str
        BLAKE2b of the mask file's bytes.
    """

    grid_shape: tuple[int, int, int]
    affine: np.ndarray
    c_index: np.ndarray
    offsets: np.ndarray
    digest: str
    fingerprint: str

    @property
    def flat(self) -> np.ndarray:
        """Boolean brain mask over the grid, C order."""
        flat = np.zeros(int(np.prod(self.grid_shape)), dtype=bool)
        flat[self.c_index] = True
        return flat


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """BLAKE2b (16 bytes) of a file's content (a mask file is a few MB at most).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        Hex digest.

    Examples
    --------
    >>> len(file_fingerprint(__file__))
    32
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def derive_mask_index(path: str | os.PathLike[str], fingerprint: str | None = None) -> MaskIndex:
    """Decode a brain-mask map (non-zero, non-NaN = brain) into a :class:`MaskIndex`.

    Parameters
    ----------
    path : str or os.PathLike
        ``R2mean`` statmap or the snapshot brain mask (3-D NIfTI).
    fingerprint : str, optional
        :func:`file_fingerprint` of ``path`` when already known.

    Returns
    -------
    MaskIndex

    Examples
    --------
    >>> derive_mask_index("sub-03_..._R2mean_statmap.nii.gz").c_index.size  # doctest: +SKIP
    61234
    """
    from laion_fmri._cache import mask_hash

    mask, affine = nifti.read_mask(path)  # NaN is outside the brain; never widened
    flat = mask.ravel()
    shape = tuple(int(s) for s in mask.shape)
    c_index = np.flatnonzero(flat)
    return MaskIndex(
        grid_shape=(shape[0], shape[1], shape[2]),
        affine=np.asarray(affine, dtype=np.float64),
        c_index=c_index,
        offsets=nifti.gather_offsets(c_index, shape),
        digest=mask_hash(flat, shape),
        fingerprint=fingerprint or file_fingerprint(path),
    )


def mask_index(path: str | os.PathLike[str], index_dir: str | os.PathLike[str] | None) -> MaskIndex:
    """The :class:`MaskIndex` of a mask file, from ``.npy`` files when already derived.

    Entries live in ``<index_dir>/mask-<fingerprint>/`` (``c_index.npy``,
    ``offsets.npy``, ``meta.json``), keyed by the file's content, so a
    changed or different mask source gets its own entry. Writes are atomic
    (temporary folder + rename); an unreadable or unwritable entry falls back
    to deriving from the NIfTI.

    Parameters
    ----------
    path : str or os.PathLike
        The mask NIfTI.
    index_dir : str or os.PathLike, optional
        Where entries are kept (e.g. ``<cache_root>/<subject>``); ``None``
        derives without storing.

    Returns
    -------
    MaskIndex

    Examples
    --------
    >>> idx = mask_index(r2mean_path, cache_root(data_dir) / "sub-03")  # doctest: +SKIP
    """
    if index_dir is None:
        return derive_mask_index(path)
    fingerprint = known_fingerprint(path, index_dir)
    folder = Path(index_dir) / f"mask-{fingerprint}"
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        c_index = np.load(folder / "c_index.npy")
        offsets = np.load(folder / "offsets.npy")
        if c_index.shape == offsets.shape == (meta["n_voxels"],) and meta["fingerprint"] == fingerprint:
            return MaskIndex(
                tuple(meta["grid_shape"]), np.asarray(meta["affine"], dtype=np.float64),  # type: ignore[arg-type]
                c_index, offsets, meta["digest"], fingerprint,
            )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    index = derive_mask_index(path, fingerprint)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        np.save(tmp / "c_index.npy", index.c_index)
        np.save(tmp / "offsets.npy", index.offsets)
        (tmp / "meta.json").write_text(json.dumps({
            "fingerprint": fingerprint, "digest": index.digest, "n_voxels": int(index.c_index.size),
            "grid_shape": list(index.grid_shape), "affine": index.affine.tolist(),
        }), encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process stored it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass
    return index


def _stat_stamp(path: str | os.PathLike[str]) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _record_path(index_dir: Path, kind: str, *paths: str | os.PathLike[str]) -> Path:
    names = "\0".join(os.path.abspath(p) for p in paths)
    return index_dir / f"{kind}-{hashlib.blake2b(names.encode(), digest_size=12).hexdigest()}.json"


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file + rename; a failure leaves nothing behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # unwritable: derive again next time


def known_fingerprint(path: str | os.PathLike[str], index_dir: str | os.PathLike[str]) -> str:
    """:func:`file_fingerprint` of ``path``, without reading it while its size and mtime hold.

    Parameters
    ----------
    path : str or os.PathLike
        A map file (brain mask, ROI mask).
    index_dir : str or os.PathLike
        Where the ``file-*.json`` records live.

    Returns
    -------
    str
        Hex digest of the file's content.

    Examples
    --------
    >>> known_fingerprint(mask_path, cache_root(data_dir) / "sub-03")  # doctest: +SKIP
    '0f3c...'
    """
    record_path = _record_path(Path(index_dir), "file", path)
    stamp = _stat_stamp(path)
    record = _read_record(record_path)
    if record is not None and record.get("stamp") == stamp and isinstance(record.get("fingerprint"), str):
        return record["fingerprint"]
    fingerprint = file_fingerprint(path)
    if _stat_stamp(path) == stamp:  # not rewritten while hashing
        text = json.dumps({"path": os.path.abspath(path), "stamp": stamp, "fingerprint": fingerprint})
        _write_atomic(record_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return fingerprint


def stored_array(
    path: str | os.PathLike[str], index_dir: str | os.PathLike[str] | None, tag: str,
    derive: Callable[[], np.ndarray],
) -> np.ndarray:
    """An array derived from a map file, kept as ``<tag>-<fingerprint>.npy``.

    Parameters
    ----------
    path : str or os.PathLike
        The file the array is derived from (its content is the key).
    index_dir : str or os.PathLike, optional
        Where entries are kept; ``None`` derives without storing.
    tag : str
        What was derived and on which axis (e.g. ``"roi-anatomical-<mask digest>"``).
    derive : callable
        Computes the array from ``path`` when no entry exists.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> stored_array(roi_path, folder, "roi-anatomical-ab12", lambda: decode(roi_path))  # doctest: +SKIP
    """
    if index_dir is None:
        return derive()
    target = Path(index_dir) / f"{tag}-{known_fingerprint(path, index_dir)}.npy"
    try:
        return np.load(target, allow_pickle=False)
    except (OSError, ValueError):
        pass
    value = derive()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a path would get ".npy" appended
            np.save(fh, value, allow_pickle=False)

    _write_atomic(target, write)
    return value


def checked(
    index_dir: str | os.PathLike[str] | None, what: str, paths: tuple[Path, ...],
    check: Callable[[], None],
) -> None:
    """Run ``check()`` unless it already passed for the same files (sizes and mtimes unchanged).

    Parameters
    ----------
    index_dir : str or os.PathLike, optional
        Where the record lives; ``None`` always checks.
    what : str
        Name of the check (part of the record's name).
    paths : tuple of Path
        The files the check reads.
    check : callable
        Raises when the files do not pass; nothing is recorded then.

    Examples
    --------
    >>> checked(folder, "grid", (mask_path, betas_path), lambda: None)  # doctest: +SKIP
    """
    if index_dir is None:
        check()
        return
    record_path = _record_path(Path(index_dir), what, *paths)
    stamps = [_stat_stamp(p) for p in paths]
    record = _read_record(record_path)
    if record is not None and record.get("stamps") == stamps:
        return
    check()
    text = json.dumps({"paths": [os.path.abspath(p) for p in paths], "stamps": stamps})
    _write_atomic(record_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


__all__ = [
    "MaskIndex",
    "checked",
    "derive_mask_index",
    "file_fingerprint",
    "known_fingerprint",
    "mask_index",
    "stored_array",
]
