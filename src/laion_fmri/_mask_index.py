"""The brain-mask voxel index, derived once and kept as ``.npy`` files.

Decoding the 143^3 mask map with nibabel costs a fresh process most of a
cached ``get_betas``. :func:`mask_index` derives the brain-voxel index and
the disk (Fortran) offsets once and stores them keyed by the mask file's
content fingerprint, so later processes read two small arrays; a changed or
different mask source gets its own entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
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

    data, affine = nifti.read_volume(path)
    flat = np.nan_to_num(np.asarray(data, dtype=np.float64), nan=0.0).ravel() != 0
    shape = tuple(int(s) for s in data.shape)
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
    fingerprint = file_fingerprint(path)
    if index_dir is None:
        return derive_mask_index(path, fingerprint)
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


__all__ = ["MaskIndex", "derive_mask_index", "file_fingerprint", "mask_index"]
