"""Voxel-major export: all sessions of a subject as one zarr array for whole-dataset fits.

:func:`export_zarr` writes a zarr (v3) group holding

* ``betas``: ``(n_trials, n_voxels)`` float32, chunked ``(n_trials, block)``
  so a set of columns over *every* trial is a few chunk reads. Raw float32 by
  default (betas are float noise: blosc zstd saves ~15 %, lz4 ~7 %, at 3-5x
  the read time), blosc lz4/zstd with byte shuffle on request. Columns are
  **ROI-major**: the voxels of each ROI (in name order) sit next to each
  other in brain-voxel order, a voxel of several ROIs with the largest of
  them, so reading a (large) ROI is slice copies of one run of columns; the
  voxels in no ROI follow in spatial bricks, so a compact region that is no
  ROI still touches few chunks;
* ``voxel_index``: ``(n_voxels,)`` int64, the brain-mask voxel (column of
  ``get_betas``) each exported column is;
* ``rois/<name>``: int64 positions in the exported columns of every ROI on
  disk, in brain-voxel order (a whole-brain export can be cut by ROI without
  the subject's files);
* ``trials.tsv``: the trial table, row ``i`` describing betas row ``i``
  (sessions in order, with ``session_trial``);
* group attributes: subject, sessions and their row offsets, the voxel
  selection, codec, grid shape and affine.

:func:`open_export` reads the chunk files directly (``_export_chunks``, no
zarr import); any zarr v3 reader sees an ordinary group.

Writing goes through the public :class:`~laion_fmri.subject.Subject` API, one
session at a time: pass 1 fills the betas cache, pass 2 reads column blocks
of every session from it and writes each chunk once (memory: ``memory_limit``
plus one session), in ``OUT.partial``, renamed into place at the end.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri._export_chunks import ChunkFiles, load_zarr, read_columns, read_columns_zarr, read_vector
from laion_fmri._export_layout import (
    BRICK,
    MIN_CHUNK_VOXELS,
    TARGET_CHUNK_BYTES,
    ExportPlan,
    chunk_voxels,
    column_passes,
    roi_major_order,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from laion_fmri.subject import Subject

#: Default memory for one block of columns over all trials.
DEFAULT_MEMORY_LIMIT = 1 << 30
#: Version 2: uncompressed by default, largest-ROI-first column order, bricks
#: for the rest, raw index arrays. Version 1 exports still read.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: ``none`` stores raw float32: betas are float noise, blosc with byte shuffle
#: saves ~7 % (lz4) or ~15 % (zstd) of the bytes but makes an ROI read 3-5x
#: slower (``benchmarks/results/export.json``); ``lz4`` / ``zstd`` when disk
#: matters more.
CODECS = ("none", "lz4", "zstd")
DEFAULT_CODEC = "none"
PARTIAL_SUFFIX = ".partial"


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


def _grid_index(sub: Subject, columns: np.ndarray, mask_source: str | None) -> np.ndarray:
    """``(len(columns), 3)`` grid coordinates of brain-mask voxels ``columns``."""
    brain = sub.get_brain_mask(**({"source": mask_source} if mask_source else {}))
    flat = np.flatnonzero(brain)[columns]
    return np.column_stack(np.unravel_index(flat, tuple(sub.grid_shape))).astype(np.int64)


def _write_vector(group: Any, name: str, values: np.ndarray) -> None:
    """A 1-D int64 array as one raw chunk (read back without zarr by :func:`_read_vector`)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    group.create_array(name, data=values, chunks=(max(1, values.size),), compressors=None,
                       fill_value=-1)


def export_zarr(
    sub: Subject,
    out: str | os.PathLike[str],
    *,
    session: object = "all",
    roi: str | Sequence[str] | None = None,
    mask_source: str | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    target_chunk_bytes: int = TARGET_CHUNK_BYTES,
    codec: str = DEFAULT_CODEC,
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
    codec : {"none", "lz4", "zstd"}
        ``"none"`` (default): raw float32, fastest to read; ``"lz4"`` /
        ``"zstd"``: blosc with byte shuffle (a few % smaller for betas).
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
    zarr = load_zarr()
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
        compressors = None if codec == "none" else BloscCodec(
            cname=codec, clevel=3 if codec == "zstd" else 5, shuffle=BloscShuffle.shuffle)
        betas = group.create_array(
            "betas", shape=(plan.n_trials, plan.columns.size), dtype="float32",
            chunks=(plan.n_trials, plan.chunk), fill_value=np.float32("nan"), compressors=compressors,
        )
        members = _roi_members(sub, plan.columns, mask_source)
        order = roi_major_order(plan.columns, members, _grid_index(sub, plan.columns, mask_source))
        columns = plan.columns[order]  # brain voxel of each exported column
        position = np.empty_like(order)
        position[order] = np.arange(order.size)  # exported column of each plan column
        _write_vector(group, "voxel_index", columns)
        for name, member in members.items():
            _write_vector(group, f"rois/{name}", position[np.flatnonzero(member)])
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
            "column_order": "roi-major (largest ROI first), bricks of "
                            f"{BRICK} for the rest",
            "codec": codec,
            "subject": plan.subject,
            "sessions": sessions,
            "session_rows": plan.rows,
            "session_offsets": offsets,
            "roi": roi if roi is None or isinstance(roi, str) else list(roi),
            "mask_source": mask_source,
            "n_brain_voxels": int(n_brain),
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


class ZarrExport:
    """An export opened with :func:`open_export`.

    Reads go straight to the chunk files (no zarr import, chunks decoded by a
    few threads); :attr:`betas` opens the array with zarr for anything else.

    Parameters
    ----------
    path : Path
        The group folder.
    voxel_index : numpy.ndarray or None
        Brain-mask voxel of each column; ``None`` reads it when first needed
        (a single stored ROI is read without it).
    attrs : dict
        Group attributes.

    Attributes
    ----------
    path : Path
        The group folder.
    attrs : dict
        Group attributes (subject, sessions, offsets, selection, grid, affine).

    Examples
    --------
    >>> open_export("sub-03.zarr").read(roi="FFA1").shape  # doctest: +SKIP
    (31320, 4980)
    """

    def __init__(self, path: Path, voxel_index: np.ndarray | None, attrs: dict[str, Any]) -> None:
        self.path = Path(path)
        self._voxel_index = voxel_index
        self.attrs = attrs
        self._chunks = ChunkFiles.from_metadata(self.path / "betas")
        self._betas: Any = None
        self._order: np.ndarray | None = None

    @property
    def voxel_index(self) -> np.ndarray:
        """``(n_voxels,)`` int64: the brain-mask voxel (column of ``get_betas``) of each column."""
        if self._voxel_index is None:
            self._voxel_index = read_vector(self.path / "voxel_index")
        return self._voxel_index

    @property
    def betas(self) -> Any:
        """``(n_trials, n_voxels)`` float32 zarr array, read lazily (opened on first use)."""
        if self._betas is None:
            self._betas = load_zarr().open_array(str(self.path / "betas"), mode="r")
        return self._betas

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_trials, n_voxels)`` of :attr:`betas`."""
        if self._chunks is not None:
            return self._chunks.shape
        return tuple(self.betas.shape)  # type: ignore[return-value]

    @property
    def rois(self) -> list[str]:
        """ROIs whose column positions are stored, sorted."""
        folder = self.path / "rois"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / "zarr.json").is_file())

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
        missing = [n for n in names if not (self.path / "rois" / n / "zarr.json").is_file()]
        if missing:
            raise KeyError(
                f"ROI {', '.join(missing)} is not stored in {self.path}; "
                f"stored: {', '.join(self.rois) or 'none'}."
            )
        parts = [read_vector(self.path / "rois" / n) for n in names]
        if len(parts) == 1:  # stored in brain-voxel order already
            return parts[0]
        pos = np.unique(np.concatenate(parts))
        return pos[np.argsort(self.voxel_index[pos], kind="stable")].astype(np.int64)

    def _brain_order(self) -> np.ndarray:
        """Column positions sorted by brain voxel (cached)."""
        if self._order is None:
            self._order = np.argsort(self.voxel_index, kind="stable").astype(np.int64)
        return self._order

    def mask_columns(self, mask: np.ndarray) -> np.ndarray:
        """Column positions of the brain-mask voxels selected by ``mask``, in brain-voxel order.

        Parameters
        ----------
        mask : numpy.ndarray
            ``(n_voxels,)`` boolean array over brain-mask voxels (length
            ``get_n_voxels()`` of the exported subject and mask source).

        Returns
        -------
        numpy.ndarray
            int64 positions into the columns of :attr:`betas`.

        Raises
        ------
        ValueError
            For a mask of the wrong length or dtype, or one selecting voxels
            that are not in this export.
        """
        sel = np.asarray(mask)
        n_brain = self.attrs.get("n_brain_voxels")
        if sel.dtype != bool or sel.ndim != 1 or (n_brain is not None and sel.size != n_brain):
            raise ValueError(
                f"mask must be a 1-D boolean array over the {n_brain or 'brain-mask'} voxels of "
                f"{self.attrs.get('subject')}, got {sel.dtype} of shape {sel.shape}."
            )
        voxels = np.flatnonzero(sel)
        order = self._brain_order()
        exported = self.voxel_index[order]
        at = np.minimum(np.searchsorted(exported, voxels), max(0, exported.size - 1))
        missing = exported[at] != voxels if exported.size else np.ones(voxels.size, bool)
        if missing.any():
            raise ValueError(
                f"mask selects {int(missing.sum())} voxels that are not in {self.path} (exported "
                f"selection: roi={self.attrs.get('roi')!r}); export them or narrow the mask."
            )
        return order[at]

    def read(self, roi: str | Sequence[str] | None = None, mask: np.ndarray | None = None,
             threads: int | None = None) -> np.ndarray:
        """All trials of the whole export, of ROIs or of masked voxels, columns in brain-voxel order.

        The result equals ``np.concatenate([sub.get_betas(s, roi=roi, mask=mask) for s in sessions])``.

        Parameters
        ----------
        roi : str or list of str, optional
            Stored ROI name(s); ``None`` (and no ``mask``) reads every column.
        mask : numpy.ndarray, optional
            ``(n_voxels,)`` boolean array over brain-mask voxels, as for
            ``get_betas``. Exclusive with ``roi``.
        threads : int, optional
            Chunk-reading threads (default: the CPUs, at most 4).

        Returns
        -------
        numpy.ndarray
            ``(n_trials, n_selected)`` C-contiguous float32.

        Raises
        ------
        ValueError
            If both ``roi`` and ``mask`` are given, or for a bad ``mask``.
        """
        if roi is not None and mask is not None:
            raise ValueError("Pass either roi or mask, not both.")
        if mask is not None:
            pos = self.mask_columns(mask)
        elif roi is None:
            pos = self._brain_order()
        else:
            pos = self.roi_columns(roi)
        return self.read_columns(pos, threads=threads)

    def read_columns(self, columns: np.ndarray, threads: int | None = None) -> np.ndarray:
        """All trials of the given columns, in the given order; each touched chunk is read once.

        Raw chunks are read in blocks of rows (one ``pread`` per chunk and
        block, threads over the blocks, each filling its own rows of the
        result): where a chunk's wanted columns are a few runs (an ROI stored
        as one run of columns) they are slice copies, else the chunks are
        staged side by side and gathered with one ``numpy.take`` per block.
        Blosc chunks are decoded whole, threads over chunks.

        Parameters
        ----------
        columns : numpy.ndarray
            int positions into the columns of :attr:`betas`, any order.
        threads : int, optional
            Chunk-reading threads (default: the CPUs, at most 4).

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
        n_rows, n_cols = self.shape
        out = np.empty((n_rows, cols.size), dtype=np.float32)
        if cols.size == 0:
            return out
        if cols.min() < 0 or cols.max() >= n_cols:
            raise IndexError(f"column positions must lie within 0..{n_cols - 1}.")
        if self._chunks is None:
            return read_columns_zarr(self.betas, cols, out)
        return read_columns(self._chunks, cols, out, threads)

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

    Reads the group's JSON and the voxel index only (zarr itself is imported
    when :attr:`ZarrExport.betas` is used or the layout needs it).

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
        If ``path`` is not an export (or the export was interrupted, or was
        written by a newer version).

    Examples
    --------
    >>> ex = open_export("sub-03.zarr")  # doctest: +SKIP
    >>> ex.read(roi="FFA1").shape  # doctest: +SKIP
    (31320, 4980)
    """
    path = Path(path)
    meta = path / "zarr.json"
    if not meta.is_file():
        raise FileNotFoundError(
            f"{path} is not a laion-fmri zarr export (no zarr.json); write one with "
            "`laion-fmri export --subject S --format zarr OUT`."
        )
    attrs = dict(json.loads(meta.read_text()).get("attributes", {}))
    version = attrs.get("laion_fmri_export")
    if version not in READABLE_VERSIONS:
        raise FileNotFoundError(
            f"{path} is a zarr group but not a laion-fmri export this version reads (version "
            f"{json.dumps(version)}); export it again with `laion-fmri export`."
        )
    return ZarrExport(path, None, attrs)


__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
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
