"""The composed voxel -> template-vertex matrix: built once, cached on disk, applied in chunks.

``vol_to_surf`` (voxels -> fsnative vertices) and ``SurfaceResampler``
(fsnative -> fsaverage vertices) are both linear, so the whole route is one
sparse matrix ``C = R @ A`` of shape ``(n_template_vertices, n_columns)``
(columns = brain-mask voxels, or every grid voxel for NIfTI input). It is
stored as a scipy.sparse ``.npz`` (float32) under
``<cache>/templates/<sub>/``, named by a BLAKE2b key over everything that
determines it: the surface, ``sphere.reg`` and template-sphere file contents,
the grid (shape, affine), the column set (mask bits) and the interpolation.
Changing any input changes the key, so a stale matrix is never used.

Template vertices whose fsnative neighbours have no sample inside the image
are ``NaN`` in the reference chain; they are stored as ``empty_rows`` and set
to ``NaN`` after the product. Rows whose ``NaN`` voxels the matrix reads (the
product shows them) are redone with a matrix rebuilt for their NaN pattern
(nilearn drops samples touching a NaN voxel from the vertex average), so the
numbers still match the reference; NaN voxels the surfaces never sample cost
nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laion_fmri.templates._files import fingerprint, read_sphere, read_surface
from laion_fmri.templates._resample import resampling_matrix
from laion_fmri.templates._sampling import sampling_matrix

MATRIX_VERSION = 1
#: Rows (trials) multiplied at once: bounds the temporary copy to chunk x n_columns x 4 B.
DEFAULT_CHUNK = 32


@dataclass(frozen=True)
class Geometry:
    """Inputs of one hemisphere's projection (files, grid, columns, interpolation)."""

    surface: Path
    sphere: Path
    template: Path | None  # None: stop at the subject's surface (fsnative)
    affine: np.ndarray
    grid_shape: tuple[int, int, int]
    columns: np.ndarray | None
    interpolation: str

    def key(self) -> str:
        """Cache key: changes whenever any input that shapes the matrix changes.

        Returns
        -------
        str
        """
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps({"v": MATRIX_VERSION, "interp": self.interpolation,
                             "grid": list(self.grid_shape)}).encode())
        h.update(np.asarray(self.affine, dtype=np.float64).tobytes())
        files = [self.surface, self.sphere] + ([self.template] if self.template else [])
        h.update(fingerprint(*files).encode())
        if self.columns is None:
            h.update(b"full-grid")
        else:
            h.update(np.asarray(self.columns, dtype=np.int64).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class Projection:
    """A composed matrix and the template vertices that are NaN in the reference chain."""

    matrix: object  # scipy.sparse.csr_array, float32 (n_vertices, n_columns)
    empty_rows: np.ndarray  # bool (n_vertices,)

    @property
    def n_vertices(self) -> int:
        """Number of template vertices (rows)."""
        return int(self.matrix.shape[0])  # type: ignore[attr-defined]


def build(geometry: Geometry, bad: np.ndarray | None = None) -> Projection:
    """Compute the composed matrix from the geometry files (no cache).

    Parameters
    ----------
    geometry : Geometry
        Inputs.
    bad : numpy.ndarray, optional
        bool over the flat grid: NaN voxels (see :func:`sampling_matrix`).

    Returns
    -------
    Projection
    """
    from scipy import sparse

    coords, faces = read_surface(geometry.surface)
    if geometry.template is None:
        sampling, empty = sampling_matrix(coords, faces, geometry.affine, geometry.grid_shape,
                                          geometry.interpolation, columns=geometry.columns, bad=bad)
        return Projection(sparse.csr_array(sampling, dtype=np.float32), empty)
    sphere, sphere_faces = read_sphere(geometry.sphere)
    template, _ = read_sphere(geometry.template)
    if len(sphere) != len(coords):
        raise ValueError(
            f"{geometry.sphere.name} has {len(sphere)} vertices but {geometry.surface.name} has "
            f"{len(coords)}; they must come from the same FreeSurfer subject."
        )
    resampler = resampling_matrix(template, sphere, sphere_faces)
    # Only the fsnative vertices the resampler reads need sampling (~3 per template vertex).
    needed = np.unique(resampler.indices)
    sampling, empty = sampling_matrix(coords, faces, geometry.affine, geometry.grid_shape,
                                      geometry.interpolation, columns=geometry.columns, bad=bad,
                                      vertices=needed)
    reduced = sparse.csr_array(resampler[:, needed])
    composed = sparse.csr_array(reduced @ sampling, dtype=np.float32)
    composed.sort_indices()
    # A NaN fsnative vertex spreads NaN to every template vertex that stores a weight on it.
    empty_rows = np.zeros(resampler.shape[0], dtype=bool)
    if empty.any():
        touched = sparse.csr_array(reduced[:, np.flatnonzero(empty)])
        empty_rows = np.diff(touched.indptr) > 0
    return Projection(composed, empty_rows)


def _path(cache_dir: Path, geometry: Geometry) -> Path:
    space = geometry.template.name.split("_den-")[-1].split("_")[0] if geometry.template else "fsnative"
    return cache_dir / f"{geometry.surface.name}-{space}-{geometry.interpolation}-{geometry.key()}.npz"


def load_or_build(geometry: Geometry, cache_dir: Path | None) -> tuple[Projection, bool]:
    """The cached projection for ``geometry``, building and storing it when absent.

    Parameters
    ----------
    geometry : Geometry
        Inputs.
    cache_dir : Path or None
        Folder for ``.npz`` files; ``None`` disables the disk cache.

    Returns
    -------
    projection : Projection
    built : bool
        True when the matrix was computed in this call.
    """
    from scipy import sparse

    path = _path(cache_dir, geometry) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as npz:
                matrix = sparse.csr_array((npz["data"], npz["indices"], npz["indptr"]),
                                          shape=tuple(npz["shape"]))
                empty = npz["empty_rows"].astype(bool)
            return Projection(matrix, empty), False
        except (OSError, KeyError, ValueError):
            path.unlink(missing_ok=True)  # damaged cache entry: rebuild
    projection = build(geometry)
    if path is not None:
        _save(path, projection)
    return projection, True


def _save(path: Path, projection: Projection) -> None:
    """Write atomically in scipy.sparse's ``.npz`` layout (plus ``empty_rows``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    m = projection.matrix
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, format=np.array("csr"), shape=np.array(m.shape),  # type: ignore[attr-defined]
                     data=m.data, indices=m.indices, indptr=m.indptr,  # type: ignore[attr-defined]
                     empty_rows=projection.empty_rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def iter_row_blocks(values: object, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, float32 block)`` over the rows of a 2-D NumPy or dask array.

    Parameters
    ----------
    values : array-like
        ``(n_rows, n_columns)``; dask arrays are computed one block at a time.
    chunk : int
        Rows per block.

    Yields
    ------
    tuple of (int, numpy.ndarray)
    """
    n = int(values.shape[0])  # type: ignore[attr-defined]
    for start in range(0, n, chunk):
        block = values[start:start + chunk]  # type: ignore[index]
        if hasattr(block, "compute"):
            block = block.compute()
        yield start, np.asarray(block, dtype=np.float32)


def apply(projections: list[Projection], values: object, rebuild: list[Geometry] | None = None,
          columns_to_grid: np.ndarray | None = None, grid_size: int = 0,
          chunk: int = DEFAULT_CHUNK) -> list[np.ndarray]:
    """Project every row of ``values`` with each projection: one chunked sparse product.

    Parameters
    ----------
    projections : list of Projection
        One per output (hemisphere).
    values : array-like
        ``(n_rows, n_columns)`` NumPy or dask array.
    rebuild : list of Geometry, optional
        The geometries behind ``projections``; used to rebuild the matrix for
        rows whose NaN voxels reach the output (see module docs).
    columns_to_grid : numpy.ndarray, optional
        Flat grid index of each column (``None``: columns are the grid).
    grid_size : int
        Number of grid voxels.
    chunk : int
        Rows per product (memory: one transposed block, ``chunk x n_columns x 4`` bytes).

    Returns
    -------
    list of numpy.ndarray
        float32 ``(n_rows, n_vertices)`` per projection.
    """
    n_rows = int(values.shape[0])  # type: ignore[attr-defined]
    outs = [np.empty((n_rows, p.n_vertices), dtype=np.float32) for p in projections]
    special: dict[tuple[int, bytes], Projection] = {}
    for start, block in iter_row_blocks(values, chunk):
        columns = np.ascontiguousarray(block.T)  # the sparse kernel wants C-ordered vectors
        for k, (out, proj) in enumerate(zip(outs, projections, strict=True)):
            res = proj.matrix @ columns  # type: ignore[operator]
            # NaN voxels matter only where the matrix reads them: the product shows which rows.
            hit = np.flatnonzero(np.isnan(res).any(axis=0))
            res[proj.empty_rows] = np.nan
            out[start:start + len(block)] = res.T
            for i in hit:
                nan = np.isnan(block[i])
                key = (k, np.packbits(nan).tobytes())
                if key not in special:
                    special[key] = _nan_projection(nan, rebuild, k, columns_to_grid, grid_size)
                fixed = special[key].matrix @ np.where(nan, np.float32(0), block[i])  # type: ignore[operator]
                fixed[special[key].empty_rows] = np.nan
                out[start + i] = fixed
        del columns
    return outs


def _nan_projection(nan_columns: np.ndarray, rebuild: list[Geometry] | None, index: int,
                    columns_to_grid: np.ndarray | None, grid_size: int) -> Projection:
    if rebuild is None:
        raise ValueError("values contain NaN; pass the geometries to rebuild the projection.")
    bad = np.zeros(grid_size, dtype=bool)
    if columns_to_grid is None:
        bad[:] = nan_columns
    else:
        bad[columns_to_grid[nan_columns]] = True
    return build(rebuild[index], bad=bad)


__all__ = [
    "DEFAULT_CHUNK",
    "MATRIX_VERSION",
    "Geometry",
    "Projection",
    "apply",
    "build",
    "iter_row_blocks",
    "load_or_build",
]
