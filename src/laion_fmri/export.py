"""Voxel-major export: all sessions of a subject as one zarr array for whole-dataset fits.

:func:`export_zarr` writes a zarr (v3) group holding

* ``betas``: ``(n_trials, n_voxels)`` float32, chunked ``(n_trials, block)``
  so a set of columns over *every* trial is a few chunk reads; blosc (zstd
  or lz4) with byte shuffle. Columns are **ROI-major**: the voxels of each
  ROI (in name order) sit next to each other, then the voxels in no ROI, so
  reading an ROI decompresses little more than the ROI itself (in brain
  order an ROI is hundreds of short runs spread over the whole array);
* ``voxel_index``: ``(n_voxels,)`` int64, the brain-mask voxel (column of
  ``get_betas``) each exported column is;
* ``rois/<name>``: int64 positions in the exported columns of every ROI on
  disk, in brain-voxel order (a whole-brain export can be cut by ROI without
  the subject's files);
* ``trials.tsv``: the trial table, row ``i`` describing betas row ``i``
  (sessions in order, with ``session_trial``);
* group attributes: subject, sessions and their row offsets, the voxel
  selection, grid shape and affine.

Everything is read through the public :class:`~laion_fmri.subject.Subject`
API, one session at a time: the first pass fills the betas cache (one session
in memory), the second reads column blocks of every session through the
cache and writes each chunk exactly once, so memory stays at
``memory_limit`` plus one session. The group is built in ``OUT.partial`` and
renamed into place at the end: an interrupted export never leaves a
half-written ``OUT``.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri._export_layout import (
    MIN_CHUNK_VOXELS,
    TARGET_CHUNK_BYTES,
    chunk_voxels,
    column_passes,
    roi_major_order,
)
from laion_fmri.errors import MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from laion_fmri.subject import Subject

#: Default memory for one block of columns over all trials.
DEFAULT_MEMORY_LIMIT = 1 << 30
FORMAT_VERSION = 1
#: Blosc inner codecs offered (both with byte shuffle): zstd packs float noise
#: a little tighter, lz4 decodes several times faster.
CODECS = ("zstd", "lz4")
PARTIAL_SUFFIX = ".partial"


def _zarr() -> Any:
    try:
        import zarr
    except ImportError as exc:
        raise MissingDependencyError("zarr", "zarr") from exc
    return zarr


def mask_source_kwargs(func: Callable[..., Any], mask_source: str | None) -> dict[str, Any]:
    """Keyword arguments that pass ``mask_source`` on to ``func`` when it takes one.

    The one place that knows whether the loaded package version supports
    another brain-mask source; every call that depends on the voxel axis
    (``get_betas``, ``get_roi_mask``, ``get_n_voxels``...) goes through it.

    Parameters
    ----------
    func : callable
        A :class:`~laion_fmri.subject.Subject` method.
    mask_source : str, optional
        The requested brain-mask source; ``None`` for the default.

    Returns
    -------
    dict
        ``{}`` or ``{"mask_source": mask_source}``.

    Raises
    ------
    ValueError
        If a ``mask_source`` is requested but ``func`` does not accept one.

    Examples
    --------
    >>> mask_source_kwargs(print, None)
    {}
    """
    if mask_source is None:
        return {}
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        params = {}
    if "mask_source" not in params:
        name = getattr(func, "__qualname__", repr(func))
        raise ValueError(
            f"mask_source={mask_source!r} is not supported by {name} in this version of "
            "laion-fmri; leave it out to use the default brain mask."
        )
    return {"mask_source": mask_source}


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


def _plan(
    sub: Subject, sessions: list[str], roi: str | Sequence[str] | None, mask_source: str | None,
    target_chunk_bytes: int,
) -> tuple[ExportPlan, list[pd.DataFrame]]:
    trials = [sub.get_trial_info(s) for s in sessions]
    rows = [len(t) for t in trials]
    if roi is None:
        n_vox = sub.get_n_voxels(**mask_source_kwargs(sub.get_n_voxels, mask_source))
        columns = np.arange(n_vox, dtype=np.int64)
    else:
        sel = sub.get_roi_mask(roi, **mask_source_kwargs(sub.get_roi_mask, mask_source))
        columns = np.flatnonzero(sel).astype(np.int64)
    if columns.size == 0:
        raise ValueError(f"The voxel selection roi={roi!r} of {sub.subject_id} is empty.")
    chunk = chunk_voxels(sum(rows), int(columns.size), target_chunk_bytes)
    return ExportPlan(sub.subject_id, sessions, rows, columns, chunk), trials


def _trial_table(trials: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    frames = []
    for table in trials:
        table = table.copy()
        table["session_trial"] = np.arange(len(table), dtype=np.int64)
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    out.index.name = "trial"
    return out


def _roi_members(sub: Subject, columns: np.ndarray, mask_source: str | None) -> dict[str, np.ndarray]:
    """For each ROI on disk with voxels among ``columns``: a bool over ``columns``."""
    kwargs = mask_source_kwargs(sub.get_roi_mask, mask_source)
    out = {}
    for name in sub.get_available_rois():
        member = sub.get_roi_mask(name, **kwargs)[columns]
        if member.any():
            out[name] = member
    return out


def export_zarr(
    sub: Subject,
    out: str | os.PathLike[str],
    *,
    session: object = "all",
    roi: str | Sequence[str] | None = None,
    mask_source: str | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    target_chunk_bytes: int = TARGET_CHUNK_BYTES,
    codec: str = "zstd",
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a subject's sessions as one voxel-major ``(n_trials, n_voxels)`` zarr array.

    Parameters
    ----------
    sub : Subject
        From :func:`~laion_fmri.subject.load_subject`.
    out : str or os.PathLike
        Target folder (a zarr v3 group); must not exist unless ``overwrite``.
    session : str, int, list or "all"
        Sessions to export, as for ``get_betas`` (default every session on disk).
    roi : str or list of str, optional
        Export only these voxels (ROI name, category, ``"all"`` or a list).
    mask_source : str, optional
        Brain-mask source, passed on where the installed version supports it.
    memory_limit : int
        Bytes of betas held at once while writing (on top of one session
        during the cache pass).
    target_chunk_bytes : int
        Uncompressed bytes per chunk (all trials x a block of voxels).
    codec : {"zstd", "lz4"}
        Blosc inner codec (byte shuffle in both cases).
    overwrite : bool
        Replace an existing ``out``.
    progress : callable, optional
        Called with a short message after each step.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    FileExistsError
        If ``out`` exists and ``overwrite`` is false.
    ValueError
        For an empty voxel selection, an unknown ``codec`` or an unsupported ``mask_source``.
    MissingDependencyError
        Without ``zarr``.

    Examples
    --------
    >>> export_zarr(load_subject("sub-03"), "sub-03.zarr", roi="face")  # doctest: +SKIP
    PosixPath('sub-03.zarr')
    """
    zarr = _zarr()
    from zarr.codecs import BloscCodec, BloscShuffle

    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {codec!r}.")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it.")
    note = progress or (lambda _msg: None)
    sessions, _ = sub.resolve_sessions(session)
    plan, trials = _plan(sub, sessions, roi, mask_source, target_chunk_bytes)
    betas_kwargs = mask_source_kwargs(sub.get_betas, mask_source)
    n_brain = sub.get_n_voxels(**mask_source_kwargs(sub.get_n_voxels, mask_source))

    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        group = zarr.open_group(str(partial), mode="w", zarr_format=3)
        betas = group.create_array(
            "betas", shape=(plan.n_trials, plan.columns.size), dtype="float32",
            chunks=(plan.n_trials, plan.chunk), fill_value=np.float32("nan"),
            compressors=BloscCodec(cname=codec, clevel=3 if codec == "zstd" else 5,
                                   shuffle=BloscShuffle.shuffle),
        )
        members = _roi_members(sub, plan.columns, mask_source)
        order = roi_major_order(plan.columns, members)
        columns = plan.columns[order]  # brain voxel of each exported column
        position = np.empty_like(order)
        position[order] = np.arange(order.size)  # exported column of each plan column
        group.create_array("voxel_index", data=columns)
        for name, member in members.items():
            group.create_array(f"rois/{name}", data=position[np.flatnonzero(member)])
        # Pass 1: every session decoded once (fills the cache), one session in memory.
        for s in sessions:
            sub.get_betas(session=s, **betas_kwargs)
            note(f"{s}: decoded")
        # Pass 2: column blocks of all sessions; each chunk is written once.
        offsets = plan.offsets
        for start, stop in column_passes(plan.columns.size, plan.chunk, plan.n_trials, memory_limit):
            wanted = columns[start:stop]
            sel = np.zeros(n_brain, dtype=bool)
            sel[wanted] = True
            # get_betas returns brain order; put each column where the export wants it.
            to_export = np.argsort(wanted, kind="stable")
            block = np.empty((plan.n_trials, stop - start), dtype=np.float32)
            for s, first, n in zip(sessions, offsets, plan.rows, strict=True):
                block[first : first + n, to_export] = sub.get_betas(session=s, mask=sel, **betas_kwargs)
            betas[:, start:stop] = block
            del block
            note(f"columns {start}-{stop} of {plan.columns.size} written")
        _trial_table(trials).to_csv(partial / "trials.tsv", sep="\t")
        group.attrs.update({
            "laion_fmri_export": FORMAT_VERSION,
            "column_order": "roi-major",
            "subject": plan.subject,
            "sessions": sessions,
            "session_rows": plan.rows,
            "session_offsets": offsets,
            "roi": roi if roi is None or isinstance(roi, str) else list(roi),
            "mask_source": mask_source,
            "grid_shape": list(sub.grid_shape),
            "affine": np.asarray(sub.affine).tolist(),
        })
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return out


@dataclass
class ZarrExport:
    """An export opened with :func:`open_export`.

    Attributes
    ----------
    path : Path
        The group folder.
    betas : zarr.Array
        ``(n_trials, n_voxels)`` float32, read lazily.
    voxel_index : numpy.ndarray
        Brain-mask voxel of each column.
    attrs : dict
        Group attributes (subject, sessions, offsets, selection, grid, affine).

    Examples
    --------
    >>> open_export("sub-03.zarr").read(roi="FFA1").shape  # doctest: +SKIP
    (31320, 4980)
    """

    path: Path
    betas: Any
    voxel_index: np.ndarray
    attrs: dict[str, Any]

    @property
    def rois(self) -> list[str]:
        """ROIs whose column positions are stored, sorted."""
        group = _zarr().open_group(str(self.path), mode="r")
        return sorted(group["rois"].array_keys()) if "rois" in group else []

    def roi_columns(self, roi: str | Sequence[str]) -> np.ndarray:
        """Column positions of an ROI (or the union of a list of ROIs), in brain-voxel order.

        Parameters
        ----------
        roi : str or list of str
            Stored ROI name(s) (see :attr:`rois`).

        Returns
        -------
        numpy.ndarray
            int64 positions into the columns of :attr:`betas`.

        Raises
        ------
        KeyError
            For an ROI that is not stored (the message lists those that are).
        """
        names = [roi] if isinstance(roi, str) else list(roi)
        group = _zarr().open_group(str(self.path), mode="r")
        stored = sorted(group["rois"].array_keys()) if "rois" in group else []
        missing = [n for n in names if n not in stored]
        if missing:
            raise KeyError(
                f"ROI {', '.join(missing)} is not stored in {self.path}; "
                f"stored: {', '.join(stored) or 'none'}."
            )
        pos = np.unique(np.concatenate([np.asarray(group[f"rois/{n}"][:]) for n in names]))
        return pos[np.argsort(self.voxel_index[pos], kind="stable")].astype(np.int64)

    def read(self, roi: str | Sequence[str] | None = None) -> np.ndarray:
        """All trials of the whole export or of ROIs, columns in brain-voxel order.

        The result equals ``np.concatenate([sub.get_betas(s, roi=roi) for s in sessions])``.

        Parameters
        ----------
        roi : str or list of str, optional
            Stored ROI name(s); ``None`` reads every column.

        Returns
        -------
        numpy.ndarray
            ``(n_trials, n_selected)`` C-contiguous float32.
        """
        if roi is None:
            pos = np.argsort(self.voxel_index, kind="stable").astype(np.int64)
        else:
            pos = self.roi_columns(roi)
        return self.read_columns(pos)

    def read_columns(self, columns: np.ndarray) -> np.ndarray:
        """All trials of the given columns, in the given order; each touched chunk is read once.

        Each run of neighbouring touched chunks is read as one slice, and one
        ``numpy.take`` puts the wanted columns in place (faster than zarr's
        orthogonal indexing, which handles scattered columns chunk by chunk).

        Parameters
        ----------
        columns : numpy.ndarray
            int positions into the columns of :attr:`betas`, any order.

        Returns
        -------
        numpy.ndarray
            ``(n_trials, len(columns))`` float32, C-contiguous.

        Raises
        ------
        IndexError
            For a position outside the array.
        """
        cols = np.asarray(columns, dtype=np.int64).ravel()
        n_rows, n_cols = self.betas.shape
        out = np.empty((n_rows, cols.size), dtype=np.float32)
        if cols.size == 0:
            return out
        if cols.min() < 0 or cols.max() >= n_cols:
            raise IndexError(f"column positions must lie within 0..{n_cols - 1}.")
        width = self.betas.chunks[1]
        touched = np.unique(cols // width)
        runs = np.split(touched, np.flatnonzero(np.diff(touched) > 1) + 1)
        local = np.empty_like(cols)
        blocks, base = [], 0
        for run in runs:
            first, last = int(run[0]) * width, min(int(run[-1] + 1) * width, n_cols)
            blocks.append(self.betas[:, first:last])
            inside = (cols >= first) & (cols < last)
            local[inside] = cols[inside] - first + base
            base += last - first
        block = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        del blocks
        np.take(block, local, axis=1, out=out)
        return out

    def trials(self) -> pd.DataFrame:
        """The trial table, row ``i`` describing betas row ``i``.

        Returns
        -------
        pandas.DataFrame
        """
        import pandas as pd

        return pd.read_csv(
            self.path / "trials.tsv", sep="\t", index_col="trial",
            dtype={"label": str, "session": str}, keep_default_na=False,
        )


def open_export(path: str | os.PathLike[str]) -> ZarrExport:
    """Open a folder written by :func:`export_zarr`.

    Parameters
    ----------
    path : str or os.PathLike
        The export folder.

    Returns
    -------
    ZarrExport

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an export (or the export was interrupted).
    MissingDependencyError
        Without ``zarr``.

    Examples
    --------
    >>> ex = open_export("sub-03.zarr")  # doctest: +SKIP
    >>> ex.read(roi="FFA1").shape  # doctest: +SKIP
    (31320, 4980)
    """
    zarr = _zarr()
    path = Path(path)
    meta = path / "zarr.json"
    if not meta.is_file():
        raise FileNotFoundError(
            f"{path} is not a laion-fmri zarr export (no zarr.json); write one with "
            "`laion-fmri export --subject S --format zarr OUT`."
        )
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    if attrs.get("laion_fmri_export") != FORMAT_VERSION:
        raise FileNotFoundError(
            f"{path} is a zarr group but not a laion-fmri export (version "
            f"{json.dumps(attrs.get('laion_fmri_export'))}); export it again."
        )
    return ZarrExport(path, group["betas"], np.asarray(group["voxel_index"][:]), attrs)


__all__ = [
    "MIN_CHUNK_VOXELS",
    "TARGET_CHUNK_BYTES",
    "ExportPlan",
    "ZarrExport",
    "chunk_voxels",
    "column_passes",
    "export_zarr",
    "mask_source_kwargs",
    "open_export",
    "roi_major_order",
]
