"""Column layout of the voxel-major export: chunk width, passes, ROI-major order, read plans (pure)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: Uncompressed bytes per chunk the export aims at. An ROI is one run of
#: columns, so a read wastes at most the two partial chunks at its ends; wider
#: chunks mean longer row copies and fewer reads (4 MiB read a 5k-voxel ROI
#: ~30 % faster than 1 MiB on the full-grid sample).
TARGET_CHUNK_BYTES = 4 * 2**20
#: Fewest columns per chunk (caps the number of chunk files).
MIN_CHUNK_VOXELS = 16
#: Edge (grid voxels) of the spatial bricks the voxels in no ROI are grouped in.
BRICK = 8
#: Most slice copies per chunk in a read before one gather serves better.
MAX_SLICE_RUNS = 8


@dataclass(frozen=True)
class ExportPlan:
    """What one export writes (decided before any data is read).

    Attributes
    ----------
    subject : str
        Canonical subject id.
    sessions : list of str
        Sessions in row order.
    rows : list of int
        Trials per session.
    columns : numpy.ndarray
        Brain-mask voxel index of every exported column (sorted).
    chunk : int
        Columns per chunk.

    Examples
    --------
    >>> ExportPlan("sub-03", ["ses-01", "ses-02"], [4, 5], np.arange(3), 3).offsets
    [0, 4]
    """

    subject: str
    sessions: list[str]
    rows: list[int]
    columns: np.ndarray
    chunk: int

    @property
    def n_trials(self) -> int:
        """Rows of the exported array."""
        return int(sum(self.rows))

    @property
    def offsets(self) -> list[int]:
        """First row of each session."""
        return [int(x) for x in np.concatenate([[0], np.cumsum(self.rows)[:-1]])] if self.rows else []


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


def morton_code(cells: np.ndarray, bits: int = 21) -> np.ndarray:
    """Morton (Z-curve) code of non-negative 3-D integer cells: neighbours get near codes.

    Parameters
    ----------
    cells : numpy.ndarray
        ``(n, 3)`` non-negative integers below ``2**bits``.
    bits : int
        Bits per axis (21 fills an int64).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64.

    Examples
    --------
    >>> morton_code(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])).tolist()
    [0, 4, 2, 1, 7]
    """
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
    code = np.zeros(cells.shape[0], dtype=np.int64)
    for bit in range(bits):
        for axis in range(3):
            code |= ((cells[:, axis] >> bit) & 1) << (3 * bit + 2 - axis)
    return code


def roi_major_order(
    columns: np.ndarray, members: dict[str, np.ndarray], grid_index: np.ndarray | None = None,
    brick: int = BRICK,
) -> np.ndarray:
    """Permutation putting each ROI's columns together (ROIs in name order, then the rest).

    A voxel in several ROIs goes with the **largest** of them (ties by name),
    so the big ROIs, whose reads cost most, are each one run of columns in
    brain-voxel order (read with slice copies, no gather); a smaller
    overlapping ROI is split between its own run and its neighbours'. Within
    an ROI the brain-voxel order is kept. The voxels in no ROI follow in
    spatial bricks of ``brick``^3 grid voxels, bricks in Morton (Z-curve) order
    and brain order inside a brick
    when ``grid_index`` is given, so any compact region reads few chunks.

    Parameters
    ----------
    columns : numpy.ndarray
        Brain-voxel index of each column (sorted).
    members : dict
        ``{roi: bool over columns}``.
    grid_index : numpy.ndarray, optional
        ``(len(columns), 3)`` integer grid coordinates ``(i, j, k)`` of each column.
    brick : int
        Edge of a spatial brick in grid voxels.

    Returns
    -------
    numpy.ndarray
        int64 indices into ``columns``.

    Examples
    --------
    >>> roi_major_order(np.arange(5), {"B": np.array([1, 0, 0, 1, 0], bool),
    ...                                "A": np.array([0, 0, 1, 0, 0], bool)}).tolist()
    [2, 0, 3, 1, 4]
    >>> roi_major_order(np.arange(4), {"big": np.array([1, 1, 1, 0], bool),
    ...                                "a": np.array([0, 1, 0, 1], bool)}).tolist()
    [3, 0, 1, 2]
    """
    names = sorted(members)
    rest = len(names)
    group = np.full(columns.size, rest, dtype=np.int64)
    # Largest first (ties by name): each voxel lands in the largest ROI holding it.
    for name in sorted(names, key=lambda n: (-int(np.count_nonzero(members[n])), n)):
        group[(group == rest) & members[name]] = names.index(name)
    if grid_index is None:
        bricks = np.zeros(columns.size, dtype=np.int64)
    else:
        bricks = np.where(group == rest, morton_code(np.asarray(grid_index, dtype=np.int64) // brick), 0)
    return np.lexsort((columns, bricks, group)).astype(np.int64)


@dataclass(frozen=True)
class ChunkCopy:
    """How one chunk's columns land in a read: slice copies or one gather.

    Attributes
    ----------
    chunk : int
        Chunk number along the column axis.
    runs : list of tuple of int
        ``(out_start, out_stop, chunk_start)``: ``out[:, out_start:out_stop] =
        chunk[:, chunk_start:chunk_start + out_stop - out_start]``; empty when
        the columns are too scattered (then ``out_pos`` / ``chunk_pos`` gather).
    out_pos, chunk_pos : numpy.ndarray
        Output and in-chunk column of every column read from this chunk.

    Examples
    --------
    >>> plan_chunk_copies(np.array([4, 5, 6, 1]), 4)[0].runs
    [(3, 4, 1)]
    """

    chunk: int
    runs: list[tuple[int, int, int]]
    out_pos: np.ndarray
    chunk_pos: np.ndarray


def plan_chunk_copies(columns: np.ndarray, chunk: int, max_runs: int = MAX_SLICE_RUNS) -> list[ChunkCopy]:
    """Group the columns wanted (in output order) by chunk, as slice runs where they are few.

    Parameters
    ----------
    columns : numpy.ndarray
        Stored column of every output column, in output order.
    chunk : int
        Columns per chunk.
    max_runs : int
        Most slice copies per chunk before a gather is used instead.

    Returns
    -------
    list of ChunkCopy
        One per touched chunk, in chunk order.

    Examples
    --------
    >>> [(c.chunk, c.runs) for c in plan_chunk_copies(np.array([4, 5, 6, 0, 2]), 4)]
    [(0, [(3, 4, 0), (4, 5, 2)]), (1, [(0, 3, 0)])]
    """
    cols = np.asarray(columns, dtype=np.int64).ravel()
    if cols.size == 0:
        return []
    which = cols // chunk
    order = np.argsort(which, kind="stable")  # by chunk, output order inside
    out_pos = order
    in_chunk = cols[order] - which[order] * chunk
    sorted_chunk = which[order]
    starts = np.flatnonzero(np.diff(sorted_chunk)) + 1
    bounds = np.concatenate([[0], starts, [cols.size]])
    # A run continues while both the output and the chunk column step by one.
    breaks = np.ones(cols.size, dtype=bool)
    breaks[1:] = (np.diff(out_pos) != 1) | (np.diff(in_chunk) != 1) | (np.diff(sorted_chunk) != 0)
    plans = []
    for a, b in itertools.pairwise(bounds):
        first = np.flatnonzero(breaks[a:b]) + a
        runs: list[tuple[int, int, int]] = []
        if first.size <= max_runs:
            last = np.append(first[1:], b)
            runs = [(int(out_pos[s]), int(out_pos[s]) + int(e - s), int(in_chunk[s]))
                    for s, e in zip(first, last, strict=True)]
        plans.append(ChunkCopy(int(sorted_chunk[a]), runs, out_pos[a:b], in_chunk[a:b]))
    return plans


def place_columns(out: np.ndarray, block: np.ndarray, plan: ChunkCopy) -> None:
    """Copy a chunk's wanted columns into ``out`` (``block`` holds the same rows as ``out``).

    Parameters
    ----------
    out : numpy.ndarray
        ``(n_rows, n_selected)`` result being filled.
    block : numpy.ndarray
        ``(n_rows, chunk)`` columns of chunk ``plan.chunk``.
    plan : ChunkCopy
        From :func:`plan_chunk_copies`.

    Examples
    --------
    >>> out = np.zeros((1, 3))
    >>> place_columns(out, np.array([[7.0, 8.0]]), plan_chunk_copies(np.array([5, 0, 1]), 4)[0])
    >>> out.tolist()
    [[0.0, 7.0, 8.0]]
    """
    if plan.runs:
        for start, stop, first in plan.runs:
            out[:, start:stop] = block[:, first : first + stop - start]
    else:
        out[:, plan.out_pos] = block[:, plan.chunk_pos]


__all__ = [
    "BRICK",
    "MAX_SLICE_RUNS",
    "MIN_CHUNK_VOXELS",
    "TARGET_CHUNK_BYTES",
    "ChunkCopy",
    "ExportPlan",
    "chunk_voxels",
    "column_passes",
    "morton_code",
    "place_columns",
    "plan_chunk_copies",
    "roi_major_order",
]
