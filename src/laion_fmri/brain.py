"""Brain-space helpers under the reference package's path-based names (``laion_fmri.brain``).

``to_nifti`` writes per-voxel values back onto the grid; ``get_voxel_coordinates``
gives the scanner coordinates of the voxels. Both take the brain-mask file and
an affine explicitly; :meth:`laion_fmri.subject.Subject.to_nifti` and
:meth:`~laion_fmri.subject.Subject.get_voxel_coordinates` do the same from a
loaded subject: both go through the same :func:`voxel_coordinates` and
:func:`write_values` (:func:`scatter` + the NIfTI writer).

Voxel order: the C order of the ``(x, y, z)`` array (``np.where`` order).
``roi_mask`` and ``custom_mask`` are boolean arrays over the brain voxels;
when both are given a voxel must be in both.

Examples
--------
>>> from laion_fmri.brain import get_voxel_coordinates
>>> xyz = get_voxel_coordinates("mask.nii.gz", affine)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from laion_fmri import _nifti as nifti


def scatter(values: np.ndarray, c_index: np.ndarray, grid_shape: Sequence[int]) -> np.ndarray:
    """Place per-voxel values on the grid, zero elsewhere.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n,)`` or ``(k, n)`` values, one per selected voxel.
    c_index : numpy.ndarray
        ``(n,)`` C-order flat indices of the voxels in the grid.
    grid_shape : sequence of int
        ``(X, Y, Z)``.

    Returns
    -------
    numpy.ndarray
        ``float32`` ``(X, Y, Z)`` for 1-D values, ``(X, Y, Z, k)`` for 2-D.

    Raises
    ------
    ValueError
        ``"Values length mismatch: got X, expected Y"`` when the last axis of
        ``values`` is not ``n``.

    Examples
    --------
    >>> scatter(np.array([1.0, 2.0]), np.array([0, 5]), (2, 3, 1))[1, 2, 0]
    np.float32(2.0)
    """
    arr = np.asarray(values, dtype=np.float32)
    n = int(np.size(c_index))
    if arr.ndim not in (1, 2) or arr.shape[-1] != n:
        got = arr.shape[-1] if arr.ndim in (1, 2) else arr.shape
        raise ValueError(f"Values length mismatch: got {got}, expected {n}")
    rows = arr.reshape(-1, n)
    vol = np.zeros((rows.shape[0], int(np.prod(grid_shape))), dtype=np.float32)
    vol[:, c_index] = rows
    data = vol.reshape((rows.shape[0], *grid_shape))
    return data[0] if arr.ndim == 1 else np.moveaxis(data, 0, -1)


def voxel_coordinates(c_index: np.ndarray, grid_shape: Sequence[int],
                      affine: np.ndarray) -> np.ndarray:
    """Scanner coordinates (mm) of voxels given by C-order flat indices.

    Parameters
    ----------
    c_index : numpy.ndarray
        ``(n,)`` flat indices.
    grid_shape : sequence of int
        ``(X, Y, Z)``.
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-scanner transform.

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` float64.

    Examples
    --------
    >>> voxel_coordinates(np.array([1]), (2, 2, 2), np.diag([2.0, 2.0, 2.0, 1.0])).tolist()
    [[0.0, 0.0, 2.0]]
    """
    ijk = np.column_stack(np.unravel_index(np.asarray(c_index), tuple(grid_shape)))
    affine = np.asarray(affine, dtype=np.float64)
    return ijk.astype(np.float64) @ affine[:3, :3].T + affine[:3, 3]


def _selection(brain_mask_path: str | os.PathLike[str], roi_mask: np.ndarray | None,
               custom_mask: np.ndarray | None) -> tuple[np.ndarray, tuple[int, int, int]]:
    data, _ = nifti.read_volume(brain_mask_path)
    brain = np.nan_to_num(data, nan=0.0) != 0
    index = np.flatnonzero(brain.ravel())
    keep = np.ones(index.size, dtype=bool)
    for name, sel in (("roi_mask", roi_mask), ("custom_mask", custom_mask)):
        if sel is None:
            continue
        sel = np.asarray(sel)
        if sel.dtype != bool or sel.shape != (index.size,):
            raise ValueError(
                f"{name} must be a boolean array over the {index.size} brain voxels, "
                f"got dtype {sel.dtype} and shape {sel.shape}."
            )
        keep &= sel
    return index[keep], (brain.shape[0], brain.shape[1], brain.shape[2])


def to_nifti(
    values: np.ndarray,
    output_path: str | os.PathLike[str],
    brain_mask_path: str | os.PathLike[str],
    affine: np.ndarray,
    roi_mask: np.ndarray | None = None,
    custom_mask: np.ndarray | None = None,
) -> Path:
    """Write per-voxel values as a 3-D float32 NIfTI, zero outside the selection.

    Parameters
    ----------
    values : numpy.ndarray
        One value per selected voxel (``(k, n)`` writes a 4-D image).
    output_path : str or os.PathLike
        ``.nii`` or ``.nii.gz`` file to write (its folder must exist).
    brain_mask_path : str or os.PathLike
        The brain mask defining the voxel axis.
    affine : numpy.ndarray
        ``(4, 4)`` affine of the written image.
    roi_mask, custom_mask : numpy.ndarray, optional
        Boolean over the brain voxels: the values belong to these voxels.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        ``"Values length mismatch: got X, expected Y"``, a malformed selection
        or a file name that is not ``.nii``/``.nii.gz``.
    FileNotFoundError
        If the output folder does not exist.

    Examples
    --------
    >>> to_nifti(nc, "nc.nii.gz", "mask.nii.gz", affine)  # doctest: +SKIP
    PosixPath('nc.nii.gz')
    """
    index, grid = _selection(brain_mask_path, roi_mask, custom_mask)
    return write_values(values, index, grid, affine, output_path)


def write_values(values: np.ndarray, c_index: np.ndarray, grid_shape: Sequence[int],
                 affine: np.ndarray, output_path: str | os.PathLike[str]) -> Path:
    """:func:`scatter` the values and save them as a float32 NIfTI (the one writer).

    Parameters
    ----------
    values : numpy.ndarray
        ``(n,)`` or ``(k, n)`` values, one per selected voxel.
    c_index : numpy.ndarray
        ``(n,)`` C-order flat indices of the voxels in the grid.
    grid_shape : sequence of int
        ``(X, Y, Z)``.
    affine : numpy.ndarray
        ``(4, 4)`` affine of the written image.
    output_path : str or os.PathLike
        ``.nii`` or ``.nii.gz`` file (its folder must exist).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        A values length mismatch or a file name that is not ``.nii``/``.nii.gz``.
    FileNotFoundError
        If the output folder does not exist.

    Examples
    --------
    >>> write_values(np.ones(2), np.array([0, 5]), (2, 3, 1), np.eye(4), "v.nii.gz")  # doctest: +SKIP
    PosixPath('v.nii.gz')
    """
    import nibabel as nib

    out = Path(output_path)
    if not out.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"to_nifti writes a .nii or .nii.gz file, not {out.name!r}.")
    data = scatter(values, c_index, grid_shape)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"The folder {out.parent} does not exist; create it first.")
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    nib.save(img, str(out))
    return out


def get_voxel_coordinates(
    brain_mask_path: str | os.PathLike[str],
    affine: np.ndarray,
    roi_mask: np.ndarray | None = None,
    custom_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Scanner coordinates (mm) of the selected brain voxels.

    Parameters
    ----------
    brain_mask_path : str or os.PathLike
        The brain mask defining the voxel axis.
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-scanner transform applied to the voxel indices.
    roi_mask, custom_mask : numpy.ndarray, optional
        Boolean over the brain voxels.

    Returns
    -------
    numpy.ndarray
        ``(n_selected, 3)`` float64, in voxel order.

    Raises
    ------
    ValueError
        For a malformed selection.

    Examples
    --------
    >>> get_voxel_coordinates("mask.nii.gz", affine).shape  # doctest: +SKIP
    (270118, 3)
    """
    index, grid = _selection(brain_mask_path, roi_mask, custom_mask)
    return voxel_coordinates(index, grid, affine)


__all__ = ["get_voxel_coordinates", "scatter", "to_nifti", "voxel_coordinates", "write_values"]
