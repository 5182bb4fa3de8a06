"""T1w -> MNI305 through FreeSurfer's ``talairach.lta``: a nearest-neighbour index map.

The reference resamples each volume with nitransforms (``order=0``): every
output voxel pulls the input voxel nearest to where the LTA's inverse sends
it. That is a pure gather, so it is precomputed once as "output voxel ->
input column" and applied to any number of rows with one fancy-indexing pass,
without ever building the T1w volume.
"""

from __future__ import annotations

import numpy as np

#: The MNI305 output grid: 2 mm isotropic, the classic 91 x 109 x 91 box.
MNI305_SHAPE: tuple[int, int, int] = (91, 109, 91)
MNI305_AFFINE = np.array([[2.0, 0, 0, -90.0], [0, 2.0, 0, -126.0], [0, 0, 2.0, -72.0], [0, 0, 0, 1]])


def index_map(lta_ras: np.ndarray, source_affine: np.ndarray, source_shape: tuple[int, int, int],
              columns: np.ndarray | None, target_affine: np.ndarray = MNI305_AFFINE,
              target_shape: tuple[int, int, int] = MNI305_SHAPE) -> np.ndarray:
    """For each target voxel (flat, C order), the input column it copies, or -1.

    Parameters
    ----------
    lta_ras : numpy.ndarray
        ``(4, 4)`` subject RAS -> template RAS (:func:`read_lta`).
    source_affine : numpy.ndarray
        Voxel -> RAS of the input grid.
    source_shape : tuple of int
        Input grid shape.
    columns : numpy.ndarray or None
        Flat grid index of each input column (brain voxels); ``None``: the
        columns are the whole grid.
    target_affine, target_shape
        The output grid (default: :data:`MNI305_AFFINE`, :data:`MNI305_SHAPE`).

    Returns
    -------
    numpy.ndarray
        int64 ``(prod(target_shape),)``; -1 where the output is 0 (outside the
        input grid or outside the columns).

    Examples
    --------
    >>> import numpy as np
    >>> m = index_map(np.eye(4), np.eye(4), (4, 4, 4), None, np.eye(4), (2, 2, 2))
    >>> m.tolist()
    [0, 1, 4, 5, 16, 17, 20, 21]
    """
    ijk = np.indices(target_shape).reshape(3, -1).T.astype(np.float64)
    world = ijk @ target_affine[:3, :3].T + target_affine[:3, 3]
    to_source = np.linalg.inv(source_affine) @ np.linalg.inv(lta_ras)
    vox = world @ to_source[:3, :3].T + to_source[:3, 3]
    # scipy.ndimage.map_coordinates(order=0, mode="constant"), as used by nitransforms:
    # points inside [0, n - 1] on every axis take the voxel rounded half up, others 0.
    shape = np.asarray(source_shape)
    inside = ((vox >= 0) & (vox <= shape - 1)).all(axis=1)
    nearest = np.clip(np.floor(vox + 0.5).astype(np.int64), 0, shape - 1)
    flat = np.ravel_multi_index(tuple(nearest.T), tuple(int(s) for s in source_shape))
    out = np.full(len(ijk), -1, dtype=np.int64)
    if columns is None:
        out[inside] = flat[inside]
        return out
    lookup = np.full(int(np.prod(source_shape)), -1, dtype=np.int64)
    lookup[np.asarray(columns, dtype=np.int64)] = np.arange(len(columns))
    out[inside] = lookup[flat[inside]]
    return out


def gather(rows: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Target-grid values ``(n_rows, n_target_voxels)`` from input rows via :func:`index_map`.

    Parameters
    ----------
    rows : numpy.ndarray
        ``(n_rows, n_columns)``.
    mapping : numpy.ndarray
        From :func:`index_map`.

    Returns
    -------
    numpy.ndarray
        float32; 0 where ``mapping`` is -1.

    Examples
    --------
    >>> import numpy as np
    >>> gather(np.array([[5.0, 6.0]]), np.array([1, -1, 0])).tolist()
    [[6.0, 0.0, 5.0]]
    """
    rows = np.asarray(rows, dtype=np.float32)
    out = np.zeros((rows.shape[0], mapping.size), dtype=np.float32)
    hit = mapping >= 0
    out[:, hit] = rows[:, mapping[hit]]
    return out


__all__ = [
    "MNI305_AFFINE",
    "MNI305_SHAPE",
    "gather",
    "index_map",
]
