"""Streaming NIfTI-1 reader: header checks, one volume at a time, precomputed gather.

A beta session is a ``(143, 143, 143, n_trials)`` float32 ``.nii.gz`` of about
12 GB decompressed. This module never holds the 4-D array: it parses the
348-byte header, then decompresses a few volumes at a time through zlib-ng
(``zlib_ng.gzip_ng``), picks the wanted voxels straight out of the disk-order
(Fortran) buffer with flat offsets computed once, and writes them into a
preallocated ``(n_volumes, n_selected)`` float32 C-contiguous output. Peak
memory is the output plus ``chunk`` volumes.

Conventions
-----------
* Voxel order is the C order of the ``(x, y, z)`` array nibabel returns, i.e.
  ``np.flatnonzero(mask3d.ravel())``; :func:`gather_offsets` converts those
  positions to Fortran (disk) offsets.
* ``scl_slope``/``scl_inter`` are applied when the slope is finite and
  non-zero (NIfTI rule: slope 0 or NaN means "no scaling"); a non-finite
  intercept is treated as 0.
* NaNs in the file are kept as NaN (they mark dropout voxels in this dataset);
  nothing is imputed.
* Any on-disk numeric dtype and either byte order is accepted; the output is
  always native float32.

Rooms: ``_header`` (header parsing, the dataset's bounds, stream
primitives), ``_volumes`` (4-D streaming gather) and ``_maps`` (3-D maps).
"""

from __future__ import annotations

from laion_fmri._nifti._header import (
    DEFAULT_CHUNK,
    HEADER_SIZE,
    MAX_GRID_AXIS,
    MAX_GRID_VOXELS,
    MAX_VOLUME_BYTES,
    MAX_VOLUMES,
    NiftiHeader,
    parse_header,
    read_header,
)
from laion_fmri._nifti._maps import map_dtype, nonzero, read_mask, read_volume
from laion_fmri._nifti._volumes import gather_offsets, read_masked

__all__ = [
    "DEFAULT_CHUNK",
    "HEADER_SIZE",
    "MAX_GRID_AXIS",
    "MAX_GRID_VOXELS",
    "MAX_VOLUMES",
    "MAX_VOLUME_BYTES",
    "NiftiHeader",
    "gather_offsets",
    "map_dtype",
    "nonzero",
    "parse_header",
    "read_header",
    "read_mask",
    "read_masked",
    "read_volume",
]
