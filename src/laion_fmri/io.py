"""File loaders under the reference package's names (``laion_fmri.io``).

Thin, path-based entry points over the streaming NIfTI reader (``laion_fmri._nifti``) (the streaming
reader) for notebooks written against the reference package. New code should
use :class:`laion_fmri.subject.Subject`, which knows the file names.

Conventions (the same as everywhere in this package):

* A mask file selects voxels whose value is non-zero (NaN counts as zero).
* Voxel order is the C order of the ``(x, y, z)`` array nibabel returns, so
  ``data[mask]`` and these loaders agree.
* A mask on another grid (shape or affine) than the data is an error; nothing
  is ever resampled.

Examples
--------
>>> from laion_fmri.io import load_nifti_4d
>>> betas = load_nifti_4d("betas.nii.gz", "mask.nii.gz")  # doctest: +SKIP
>>> betas.shape  # (n_trials, n_voxels)  # doctest: +SKIP
(1044, 270118)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from laion_fmri import _nifti as nifti

#: Largest affine difference (mm) still treated as the same grid.
AFFINE_TOLERANCE = 1e-3


def _mask_volume(mask_path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    data, affine = nifti.read_volume(mask_path)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(data, nan=0.0) != 0, affine


def _check_grid(mask: np.ndarray, mask_affine: np.ndarray, mask_path: object,
                header: nifti.NiftiHeader) -> None:
    if mask.shape != header.grid_shape or not np.allclose(
        mask_affine, header.affine, atol=AFFINE_TOLERANCE
    ):
        raise ValueError(
            f"The mask {mask_path} (grid {mask.shape}) is not on the grid of {header.path} "
            f"(grid {header.grid_shape}); use a mask of the same space and resolution "
            "(masks are never resampled)."
        )


def load_nifti_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """A mask image as a flat boolean array over the whole grid (C order).

    Parameters
    ----------
    path : str or os.PathLike
        3-D ``.nii``/``.nii.gz``; voxels with a non-zero value are selected.

    Returns
    -------
    numpy.ndarray
        ``bool``, shape ``(X * Y * Z,)``.

    Raises
    ------
    CorruptFileError
        If the file is not a readable 3-D NIfTI.

    Examples
    --------
    >>> load_nifti_mask("mask.nii.gz").sum()  # doctest: +SKIP
    270118
    """
    mask, _ = _mask_volume(path)
    return mask.ravel()


def load_nifti_data(path: str | os.PathLike[str], mask_path: str | os.PathLike[str]) -> np.ndarray:
    """The values of a 3-D map at the mask's voxels.

    Parameters
    ----------
    path : str or os.PathLike
        3-D map (noise ceiling, R², ...); a 4-D image with one volume is accepted.
    mask_path : str or os.PathLike
        Mask on the same grid.

    Returns
    -------
    numpy.ndarray
        ``float32``, shape ``(n_voxels,)``, voxel order.

    Raises
    ------
    ValueError
        If the image has several volumes (use :func:`load_nifti_4d`) or the
        mask is on another grid.
    CorruptFileError
        If a file is not a readable NIfTI.

    Examples
    --------
    >>> load_nifti_data("nc.nii.gz", "mask.nii.gz").shape  # doctest: +SKIP
    (270118,)
    """
    header = nifti.read_header(path)
    if header.n_volumes != 1:
        raise ValueError(
            f"{path} has {header.n_volumes} volumes; load it with load_nifti_4d(path, mask_path)."
        )
    return _masked_rows(path, mask_path, header)[0]


def load_nifti_4d(path: str | os.PathLike[str], mask_path: str | os.PathLike[str]) -> np.ndarray:
    """Stream a 4-D image and keep the mask's voxels of every volume.

    Parameters
    ----------
    path : str or os.PathLike
        4-D image (single-trial betas, a raw BOLD run).
    mask_path : str or os.PathLike
        Mask on the same grid.

    Returns
    -------
    numpy.ndarray
        ``float32``, shape ``(n_volumes, n_voxels)``, C-contiguous; only one
        volume at a time is held besides the output.

    Raises
    ------
    ValueError
        If the image is not 4-D or the mask is on another grid.
    CorruptFileError
        If a file is not a readable NIfTI.

    Examples
    --------
    >>> load_nifti_4d("betas.nii.gz", "mask.nii.gz").dtype  # doctest: +SKIP
    dtype('float32')
    """
    header = nifti.read_header(path)
    if len(header.shape) != 4:
        raise ValueError(f"{path} is not 4-D (shape {header.shape}); use load_nifti_data.")
    return _masked_rows(path, mask_path, header)


def _masked_rows(path: str | os.PathLike[str], mask_path: str | os.PathLike[str],
                 header: nifti.NiftiHeader) -> np.ndarray:
    """``(n_volumes, n_voxels)`` float32 of the mask's voxels (shared by the loaders)."""
    mask, mask_affine = _mask_volume(mask_path)
    _check_grid(mask, mask_affine, mask_path, header)
    return nifti.read_masked(path, nifti.gather_offsets(mask), header=header)


def load_nifti_with_affine(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """The whole image array and its voxel-to-scanner affine.

    Parameters
    ----------
    path : str or os.PathLike
        3-D or 4-D ``.nii``/``.nii.gz``.

    Returns
    -------
    data : numpy.ndarray
        ``(X, Y, Z)`` or ``(X, Y, Z, T)`` in nibabel's orientation, scaling
        applied (4-D images come back as float32).
    affine : numpy.ndarray
        ``(4, 4)``.

    Raises
    ------
    CorruptFileError
        If the file is not a readable NIfTI.

    Examples
    --------
    >>> data, affine = load_nifti_with_affine("T1w.nii.gz")  # doctest: +SKIP
    """
    header = nifti.read_header(path)
    if header.n_volumes == 1:
        return nifti.read_volume(path)
    flat = nifti.read_masked(path, header=header)  # (T, voxels in Fortran order)
    return flat.T.reshape(header.shape, order="F"), header.affine


def load_tsv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A tab-separated table (trial tables, events, participants).

    Parameters
    ----------
    path : str or os.PathLike
        ``.tsv`` file.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> load_tsv("participants.tsv").columns.tolist()  # doctest: +SKIP
    ['participant_id', 'age', 'sex']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TSV file {path} does not exist.")
    return pd.read_csv(path, sep="\t")


__all__ = [
    "load_nifti_4d",
    "load_nifti_data",
    "load_nifti_mask",
    "load_nifti_with_affine",
    "load_tsv",
]
