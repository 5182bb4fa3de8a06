"""Column layout of the voxel-major export: chunk width, read passes, ROI-major order (pure)."""

from __future__ import annotations

import numpy as np

#: Uncompressed bytes per chunk the export aims at: small chunks keep an ROI
#: read close to the ROI's own bytes (an ROI's columns cluster in runs).
TARGET_CHUNK_BYTES = 2**20
#: Fewest columns per chunk (caps the number of chunk files).
MIN_CHUNK_VOXELS = 16


def chunk_voxels(n_trials: int, n_voxels: int, target_bytes: int = TARGET_CHUNK_BYTES) -> int:
    """Columns per chunk: one ``(n_trials, block)`` float32 chunk of about ``target_bytes``.

    At least :data:`MIN_CHUNK_VOXELS` columns (when there are that many).

    Parameters
    ----------
    n_trials, n_voxels : int
        Shape of the exported array.
    target_bytes : int
        Uncompressed chunk size to aim at.

    Returns
    -------
    int
        Between 1 and ``n_voxels`` (at least 1).

    Examples
    --------
    >>> chunk_voxels(4096, 65000, 4 * 2**20)
    256
    >>> chunk_voxels(31500, 65000, 2**20)
    16
    """
    block = max(MIN_CHUNK_VOXELS, target_bytes // max(1, 4 * n_trials))
    return int(max(1, min(block, n_voxels)))


def column_passes(n_voxels: int, chunk: int, n_trials: int, memory_limit: int) -> list[tuple[int, int]]:
    """Column ranges ``[start, stop)`` read per pass: whole chunks within ``memory_limit``.

    Parameters
    ----------
    n_voxels : int
        Exported columns.
    chunk : int
        Columns per zarr chunk.
    n_trials : int
        Rows (all sessions).
    memory_limit : int
        Bytes one pass may hold (``n_trials x columns`` float32).

    Returns
    -------
    list of tuple of int
        Consecutive ranges covering ``0..n_voxels``; each a multiple of ``chunk`` wide
        (the last one may be shorter).

    Examples
    --------
    >>> column_passes(10, 3, 1, 24)
    [(0, 6), (6, 10)]
    """
    per_pass = max(1, memory_limit // max(1, 4 * n_trials * chunk)) * chunk
    return [(start, min(start + per_pass, n_voxels)) for start in range(0, n_voxels, per_pass)]


def roi_major_order(columns: np.ndarray, members: dict[str, np.ndarray]) -> np.ndarray:
    """Permutation putting each ROI's columns together (ROIs in name order, then the rest).

    A voxel in several ROIs goes with the first of them by name; within a
    group the brain-voxel order is kept.

    Parameters
    ----------
    columns : numpy.ndarray
        Brain-voxel index of each column (sorted).
    members : dict
        ``{roi: bool over columns}``.

    Returns
    -------
    numpy.ndarray
        int64 indices into ``columns``.

    Examples
    --------
    >>> roi_major_order(np.arange(5), {"B": np.array([1, 0, 0, 1, 0], bool),
    ...                                "A": np.array([0, 0, 1, 0, 0], bool)}).tolist()
    [2, 0, 3, 1, 4]
    """
    group = np.full(columns.size, len(members), dtype=np.int64)
    for i, name in enumerate(sorted(members)):
        group[(group == len(members)) & members[name]] = i
    return np.lexsort((columns, group)).astype(np.int64)


__all__ = ["MIN_CHUNK_VOXELS", "TARGET_CHUNK_BYTES", "chunk_voxels", "column_passes", "roi_major_order"]
