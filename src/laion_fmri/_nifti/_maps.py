"""3-D maps (masks, noise ceilings, R2) read in slabs, never widened."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from laion_fmri._nifti._header import (
    DECODE_ERRORS,
    NiftiHeader,
    apply_scaling,
    corrupt,
    open_stream,
    read_block,
    read_header,
    skip_to_data,
)

__all__ = ["map_dtype", "nonzero", "read_mask", "read_volume"]

# Bytes decoded per step when a 3-D map is read.
_SLAB_BYTES = 1 << 22


def _stream_map(path: Path, hdr: NiftiHeader, out: np.ndarray, convert) -> None:  # type: ignore[no-untyped-def]
    """Decode the one volume of ``hdr`` in slabs into the flat (disk-order) ``out``.

    Memory is ``out`` plus one slab; nothing is sized from the header before
    :func:`read_header` has checked it against the dataset and the file.
    """
    itemsize = hdr.dtype.itemsize
    per_slab = max(1, _SLAB_BYTES // itemsize)
    with open_stream(path, hdr.compressed) as stream:
        skip_to_data(stream, hdr, path, 1 << 22)
        for start in range(0, out.size, per_slab):
            k = min(per_slab, out.size - start)
            raw = read_block(stream, k * itemsize, path)
            out[start : start + k] = convert(np.frombuffer(raw, dtype=hdr.dtype))
        if hdr.compressed:
            try:
                while stream.read(1 << 20):
                    pass
            except DECODE_ERRORS as exc:
                raise corrupt(path, f"the gzip checksum does not match ({exc})") from exc


def _read_map(
    path: str | os.PathLike[str],
    dtype_of: Callable[[NiftiHeader], np.dtype],
    convert: Callable[[np.ndarray, NiftiHeader], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D map into a ``dtype_of(header)`` grid, ``convert`` applied per slab."""
    path = Path(path)
    hdr = read_header(path)
    if hdr.n_volumes != 1:
        raise corrupt(path, f"expected a 3-D map, found shape {hdr.shape}")
    out = np.empty(hdr.volume_size, dtype=dtype_of(hdr))
    _stream_map(path, hdr, out, lambda block: convert(block, hdr))
    return out.reshape(hdr.grid_shape, order="F"), hdr.affine


def _scaled(block: np.ndarray, hdr: NiftiHeader) -> np.ndarray:
    """The block as stored, or as float32 with the header's scaling applied."""
    return apply_scaling(block.astype(np.float32), hdr) if hdr.scaled else block


def map_dtype(hdr: NiftiHeader) -> np.dtype:
    """The dtype :func:`read_volume` returns for a file: never wider than needed.

    Parameters
    ----------
    hdr : NiftiHeader
        The file's header.

    Returns
    -------
    numpy.dtype
        float32 for scaled files, else the on-disk dtype in native byte order.

    Examples
    --------
    >>> map_dtype(read_header("mask.nii.gz"))  # doctest: +SKIP
    dtype('uint8')
    """
    return np.dtype(np.float32) if hdr.scaled else hdr.dtype.newbyteorder("=")


def read_volume(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a small 3-D map (mask, noise ceiling, R2) with its affine.

    The header is checked against the dataset's grid bounds and the file's
    size first; the data are then decoded in slabs straight into the result,
    which keeps the on-disk dtype (float32 when the file asks for scaling), so
    nothing is widened to float64.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii``/``.nii.gz`` 3-D image (a 4-D image with one volume is accepted).

    Returns
    -------
    data : numpy.ndarray
        ``(x, y, z)`` array in nibabel's orientation (see :func:`map_dtype`
        for its dtype).
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-scanner transform.

    Raises
    ------
    CorruptFileError
        If the file is not a readable 3-D NIfTI within the dataset's bounds.

    Examples
    --------
    >>> data, affine = read_volume("mask.nii.gz")  # doctest: +SKIP
    """
    return _read_map(path, map_dtype, _scaled)


def nonzero(values: np.ndarray) -> np.ndarray:
    """Boolean "inside" test of map values: non-zero and not NaN (no float64 copy).

    Parameters
    ----------
    values : numpy.ndarray
        Map values of any numeric dtype.

    Returns
    -------
    numpy.ndarray
        bool, same shape.

    Examples
    --------
    >>> nonzero(np.array([0.0, 1.0, np.nan], np.float32)).tolist()
    [False, True, False]
    """
    values = np.asarray(values)
    inside = values != 0
    if values.dtype.kind in "fc":
        inside &= ~np.isnan(values)
    return inside


def read_mask(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D map as a boolean mask (non-zero and not NaN) with its affine.

    Memory is the boolean grid plus one decoded slab (a few MB): the map is
    never held at its on-disk or a widened dtype.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii``/``.nii.gz`` 3-D image (brain mask, mean R2, ROI mask).

    Returns
    -------
    mask : numpy.ndarray
        ``(x, y, z)`` bool array in nibabel's orientation.
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-scanner transform.

    Raises
    ------
    CorruptFileError
        If the file is not a readable 3-D NIfTI within the dataset's bounds.

    Examples
    --------
    >>> mask, affine = read_mask("sub-03_..._desc-R2mean_statmap.nii.gz")  # doctest: +SKIP
    >>> mask.dtype
    dtype('bool')
    """
    # slope * v + inter != 0 cannot be decided from v alone when inter != 0: scale first.
    return _read_map(path, lambda hdr: np.dtype(bool), lambda block, hdr: nonzero(_scaled(block, hdr)))
