"""Volume -> surface sampling as a sparse matrix (the linear map behind ``vol_to_surf``).

:func:`nilearn.surface.vol_to_surf` with its defaults (``kind="line"`` without
an inner mesh, ``radius=3``, 10 samples) places 10 points on each vertex's
outer normal from +3 mm to -3 mm, interpolates the volume trilinearly at each
point (``RegularGridInterpolator``, linear extrapolation inside the last
cell), drops the points outside the image and averages the rest. Every step is
linear in the voxel values, so the whole map is one sparse matrix
``(n_vertices, n_grid_voxels)``; :func:`sampling_matrix` builds it with the
same arithmetic, vectorised. A vertex whose samples all fall outside the image
is ``NaN`` in nilearn; :func:`sampling_matrix` reports those vertices so the
caller can reproduce that.
"""

from __future__ import annotations

import numpy as np

#: nilearn's defaults for ``kind="line"``: half-width (mm) and number of samples.
LINE_RADIUS = 3.0
LINE_SAMPLES = 10
#: Vertices sampled per step when building a matrix (bounds the temporaries).
_CHUNK = 8192


def vertex_normals(coords: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit outer normal at each vertex: the normalised sum of its faces' unit normals.

    Parameters
    ----------
    coords : numpy.ndarray
        ``(n_vertices, 3)`` vertex coordinates.
    faces : numpy.ndarray
        ``(n_faces, 3)`` vertex indices (right-hand rule points outwards).

    Returns
    -------
    numpy.ndarray
        ``(n_vertices, 3)`` float64; a vertex on no face gets a zero normal.

    Examples
    --------
    >>> import numpy as np
    >>> tri = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    >>> vertex_normals(tri, np.array([[0, 1, 2]]))[0].tolist()
    [0.0, 0.0, 1.0]
    """
    coords = np.asarray(coords, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    summed = np.zeros_like(coords)
    for start in range(0, len(faces), _CHUNK * 8):  # bounded temporaries on big meshes
        part = faces[start:start + _CHUNK * 8]
        corner = coords[part]
        normals = _unit_rows(np.cross(corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0]))
        for k in range(3):
            summed[:, k] += np.bincount(part[:, 0], normals[:, k], minlength=len(coords))
            summed[:, k] += np.bincount(part[:, 1], normals[:, k], minlength=len(coords))
            summed[:, k] += np.bincount(part[:, 2], normals[:, k], minlength=len(coords))
    return _unit_rows(summed)


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    norm = np.sqrt((rows * rows).sum(axis=1))
    norm[norm == 0] = 1.0
    return rows / norm[:, None]


def sample_points(coords: np.ndarray, faces: np.ndarray, affine: np.ndarray,
                  radius: float = LINE_RADIUS, n_samples: int = LINE_SAMPLES,
                  vertices: np.ndarray | None = None) -> np.ndarray:
    """Voxel-space sample positions along each vertex normal (nilearn's ``line`` kind).

    Parameters
    ----------
    coords, faces : numpy.ndarray
        The mesh, in the world (scanner RAS, mm) space of ``affine``.
    affine : numpy.ndarray
        ``(4, 4)`` voxel -> world transform of the volume.
    radius : float
        Half-length (mm) of the segment on the normal.
    n_samples : int
        Points per vertex, evenly spaced from ``+radius`` to ``-radius``.
    vertices : numpy.ndarray, optional
        Only these vertices (normals still come from the whole mesh).

    Returns
    -------
    numpy.ndarray
        ``(n_vertices, n_samples, 3)`` float64 voxel coordinates.

    Examples
    --------
    >>> import numpy as np
    >>> tri = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    >>> sample_points(tri, np.array([[0, 1, 2]]), np.eye(4)).shape
    (3, 10, 3)
    """
    coords = np.asarray(coords, dtype=np.float64)
    normals = vertex_normals(coords, faces)
    if vertices is not None:
        coords, normals = coords[vertices], normals[vertices]
    offsets = np.linspace(radius, -radius, n_samples)
    world = coords[:, None, :] + normals[:, None, :] * offsets[None, :, None]
    inv = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    return world @ inv[:3, :3].T + inv[:3, 3]


def sampling_matrix(coords: np.ndarray, faces: np.ndarray, affine: np.ndarray,
                    grid_shape: tuple[int, int, int], interpolation: str = "linear",
                    columns: np.ndarray | None = None, bad: np.ndarray | None = None,
                    vertices: np.ndarray | None = None) -> tuple[object, np.ndarray]:
    """Sparse ``(n_vertices, prod(grid_shape))`` matrix equal to ``vol_to_surf`` on a volume.

    Parameters
    ----------
    coords, faces : numpy.ndarray
        The mesh in world coordinates.
    affine : numpy.ndarray
        Voxel -> world transform of the volume.
    grid_shape : tuple of int
        Volume shape; columns index its voxels flattened in C order.
    interpolation : {"linear", "nearest"}
        ``"linear"``: trilinear interpolation at each sample (nilearn's default).
        ``"nearest"``: the nearest voxel of each rounded sample (nilearn's
        nearest-voxel sampling).
    columns : numpy.ndarray, optional
        Flat (C-order) grid indices of the voxels that may be non-zero (e.g.
        the brain mask); the matrix gets one column per entry, in this order.
        Voxels outside are taken as 0. Default: every grid voxel.
    bad : numpy.ndarray, optional
        bool over the flat grid: NaN voxels. As in nilearn, a linear sample
        touching one (any of its 8 corners) is dropped from its vertex's
        average, a nearest-voxel sample on one makes its vertex NaN.
    vertices : numpy.ndarray, optional
        Compute only these vertices' rows (in this order); default: all.

    Returns
    -------
    matrix : scipy.sparse.csr_array
        float64 weights; each row with samples sums to 1 over the grid.
    empty : numpy.ndarray
        bool ``(n_rows,)``: vertices with no sample inside the image
        (``NaN`` in nilearn's output).

    Raises
    ------
    ValueError
        For an unknown ``interpolation``.

    Examples
    --------
    >>> import numpy as np
    >>> tri = np.array([[2.0, 2, 2], [3, 2, 2], [2, 3, 2]])
    >>> mat, empty = sampling_matrix(tri, np.array([[0, 1, 2]]), np.eye(4), (8, 8, 8))
    >>> mat.shape, bool(empty.any())
    ((3, 512), False)
    """
    from scipy import sparse

    if interpolation not in ("linear", "nearest"):
        raise ValueError(f"interpolation must be 'linear' or 'nearest', not {interpolation!r}.")
    shape = tuple(int(s) for s in grid_shape)
    points = sample_points(coords, faces, affine, vertices=vertices)
    n_cols = int(np.prod(shape)) if columns is None else len(columns)
    order = sorted_cols = None
    if columns is not None:
        columns = np.asarray(columns, dtype=np.int64)
        order = np.argsort(columns, kind="stable")
        sorted_cols = columns[order]
    pieces, empties = [], []
    for start in range(0, len(points), _CHUNK):
        part, empty = _chunk_rows(points[start:start + _CHUNK], shape, interpolation, bad)
        rows, cols, weights = part
        if sorted_cols is not None:
            pos = np.minimum(np.searchsorted(sorted_cols, cols), len(sorted_cols) - 1)
            inside = sorted_cols[pos] == cols
            rows, cols, weights = rows[inside], order[pos[inside]], weights[inside]
        piece = sparse.csr_array((weights, (rows, cols)), shape=(len(empty), n_cols))
        piece.sum_duplicates()
        pieces.append(piece)
        empties.append(empty)
    if not pieces:
        return sparse.csr_array((0, n_cols)), np.zeros(0, dtype=bool)
    return sparse.csr_array(sparse.vstack(pieces, format="csr")), np.concatenate(empties)


def _chunk_rows(points: np.ndarray, shape: tuple[int, ...], interpolation: str,
                bad: np.ndarray | None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """COO ``(rows, grid columns, weights)`` and empty flags for a block of vertices."""
    n_vertices, n_samples, _ = points.shape
    flat = points.reshape(-1, 3)
    size = np.asarray(shape, dtype=np.float64)
    poisoned = np.zeros(n_vertices, dtype=bool)
    if interpolation == "linear":
        kept = ((flat >= 0) & (flat < size)).all(axis=1)
        rows, cols, weights = _trilinear(flat, shape, kept, n_samples)
        if bad is not None and bad.any():
            hit = np.zeros(kept.sum(), dtype=bool)
            n_kept_samples = hit.size
            for corner in range(8):
                hit |= bad[cols[corner * n_kept_samples:(corner + 1) * n_kept_samples]]
            kept[np.flatnonzero(kept)[hit]] = False
            rows, cols, weights = _trilinear(flat, shape, kept, n_samples)
    else:
        rounded = np.round(flat).astype(np.int64)
        kept = ((rounded >= 0) & (rounded < np.asarray(shape))).all(axis=1)
        rows = np.flatnonzero(kept) // n_samples
        cols = np.ravel_multi_index(tuple(rounded[kept].T), shape)
        weights = np.ones(rows.size)
        if bad is not None and bad.any():
            poisoned[rows[bad[cols]]] = True
    n_kept = np.bincount(np.flatnonzero(kept) // n_samples, minlength=n_vertices)
    empty = (n_kept == 0) | poisoned
    scale = np.zeros(n_vertices)
    scale[~empty] = 1.0 / n_kept[~empty]
    return (rows, cols, weights * scale[rows]), empty


def _trilinear(flat: np.ndarray, shape: tuple[int, ...], kept: np.ndarray,
               n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (vertex), columns (voxel) and weights of trilinear interpolation.

    Matches ``RegularGridInterpolator(method="linear", fill_value=None)`` on the
    grid ``arange(n)`` per axis: the cell is ``clip(floor(x), 0, n - 2)`` and a
    point in ``[n - 1, n)`` is extrapolated from the last cell.
    """
    pts = flat[kept]
    sample_rows = np.flatnonzero(kept) // n_samples
    dims = np.asarray(shape)
    low = np.clip(np.floor(pts).astype(np.int64), 0, np.maximum(dims - 2, 0))
    frac = pts - low
    rows, cols, weights = [], [], []
    for corner in range(8):
        bits = [(corner >> (2 - axis)) & 1 for axis in range(3)]
        idx = low + np.asarray(bits)
        w = np.ones(len(pts))
        for axis, bit in enumerate(bits):
            w = w * (frac[:, axis] if bit else 1.0 - frac[:, axis])
        # Cells of size 1 along an axis (degenerate grids) cannot be sampled.
        idx = np.minimum(idx, dims - 1)
        rows.append(sample_rows)
        cols.append(np.ravel_multi_index(tuple(idx.T), shape))
        weights.append(w)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)


__all__ = [
    "LINE_RADIUS",
    "LINE_SAMPLES",
    "sample_points",
    "sampling_matrix",
    "vertex_normals",
]
