"""One subject's data on disk: betas, trials, ROIs, noise ceilings, brain space.

Betas are decoded by the streaming reader (:mod:`laion_fmri.nifti`) and kept
in the masked float32 cache (:mod:`laion_fmri.cache`); ROI, mask and
noise-ceiling filters then read only the voxels they need.

Voxel axis: the brain-mask voxels (``R2mean != 0``, or the snapshot
``desc-meanR2gt15mask`` file when present) in C order of the ``(x, y, z)``
grid. Every session of a subject shares it, so sessions concatenate along
trials.
"""

from __future__ import annotations

import difflib
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from laion_fmri import cache as _cache
from laion_fmri import layout, nifti, rois
from laion_fmri.config import cache_enabled, get_data_dir
from laion_fmri.errors import (
    CorruptFileError,
    DataNotDownloadedError,
    MissingDependencyError,
    SessionNotFoundError,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STIMULI_FILTERS = ("shared", "unique")
AVERAGE_MODES = ("label",)
# Decoded small files (trial tables, ROI and noise-ceiling maps, headers) kept
# per Subject; enough for every session and ROI of one subject.
_FILE_CACHE_ENTRIES = 256

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Brain:
    grid_shape: tuple[int, int, int]
    affine: np.ndarray
    flat: np.ndarray  # bool over the grid, C order
    c_index: np.ndarray  # C-order flat indices of brain voxels
    offsets: np.ndarray  # the same voxels as Fortran (disk) offsets
    digest: str


def _download_hint(subject: str, session: str | None = None) -> str:
    ses = f', ses="{session}"' if session else ""
    return f'laion_fmri.download.download(subject="{subject}"{ses})'


class Subject:
    """A subject's downloaded data. Create with :func:`load_subject`.

    Parameters
    ----------
    subject_id : str
        Canonical id, ``"sub-03"``.
    data_dir : str or os.PathLike
        Local data directory holding the bucket layout.

    Examples
    --------
    >>> sub = load_subject("sub-03")  # doctest: +SKIP
    >>> sub.get_betas(session="ses-01", roi="FFA1").shape  # doctest: +SKIP
    (1044, 412)
    """

    def __init__(self, subject_id: str, data_dir: str | os.PathLike[str]) -> None:
        self._subject = subject_id
        self._root = Path(data_dir)
        self._brain: _Brain | None = None
        self._files: OrderedDict[tuple[str, str], tuple[tuple[int, ...], Any]] = OrderedDict()
        self._files_lock = threading.Lock()
        self._cache_unwritable = False

    def __repr__(self) -> str:
        return f"Subject({self._subject!r}, data_dir={str(self._root)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Subject, (self._subject, str(self._root)))

    # ------------------------------------------------------------------ identity
    @property
    def subject_id(self) -> str:
        """Canonical subject id, e.g. ``"sub-03"``."""
        return self._subject

    @property
    def data_dir(self) -> Path:
        """The local data directory."""
        return self._root

    def _path(self, key: str) -> Path:
        # Our own keys are safe; not resolving keeps symlinked files usable.
        return self._root / layout.local_relpath(key)

    def _cached(self, kind: str, path: Path, load: Callable[[Path], _T]) -> _T:
        """``load(path)``, reused while the file is unchanged (inode, size, mtime, ctime).

        The value is shared between calls: callers must not modify it.
        """
        st = path.stat()
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        key = (kind, str(path))
        with self._files_lock:
            hit = self._files.get(key)
            if hit is not None and hit[0] == stamp:
                self._files.move_to_end(key)
                return hit[1]
        value = load(path)
        with self._files_lock:
            self._files[key] = (stamp, value)
            while len(self._files) > _FILE_CACHE_ENTRIES:
                self._files.popitem(last=False)
        return value

    # ------------------------------------------------------------------ sessions
    def get_sessions(self) -> list[str]:
        """Sessions whose beta file is on disk, sorted (held-out sessions too, if present).

        Returns
        -------
        list of str

        Examples
        --------
        >>> sub.get_sessions()  # doctest: +SKIP
        ['ses-01', 'ses-02']
        """
        return [
            s for s in self._session_dirs()
            if self._path(layout.betas_key(self._subject, s)).is_file()
        ]

    def _session_dirs(self) -> list[str]:
        """Sessions with any file on disk (a beta-less session still has NC/trials)."""
        base = self._root / layout.subject_glm_prefix(self._subject)
        if not base.is_dir():
            return []
        out = []
        for child in base.glob("ses-*"):
            try:
                session = layout.normalize_session(child.name)
            except SessionNotFoundError:
                continue
            if session == child.name and child.is_dir():
                out.append(session)
        return sorted(out)

    def _check_session(self, session: object, available: list[str]) -> str:
        if isinstance(session, np.integer):
            session = int(session)
        try:
            name = layout.normalize_session(session)
        except SessionNotFoundError:
            name = None
        if name is not None and name in available:
            return name
        close = difflib.get_close_matches(str(session), available, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(available) if available else "none"
        raise SessionNotFoundError(
            f"Session {session!r} is not available for {self._subject}.{hint} Sessions on "
            f"disk: {listing}. Download more with `{_download_hint(self._subject, 'ses-NN')}`."
        )

    def resolve_sessions(self, session: object) -> tuple[list[str], bool]:
        """The sessions a ``session=`` argument names, and whether it named just one.

        This is the argument handling of :meth:`get_betas`, shared with the
        torch, xarray and plotting adapters.

        Parameters
        ----------
        session : str, int, list or "all"
            One session (``"ses-01"``, ``"01"`` or ``1``), a list of them, or
            ``"all"`` for every session whose betas are on disk.

        Returns
        -------
        sessions : list of str
            Canonical ``ses-NN`` ids in the given order, duplicates dropped.
        single : bool
            ``True`` when ``session`` named one session (not a list or ``"all"``).

        Raises
        ------
        ValueError
            If ``session`` is ``None`` or empty.
        DataNotDownloadedError
            For ``"all"`` when no beta session is on disk.
        SessionNotFoundError
            For a session that is not on disk (the message lists those that are).
        """
        available = self._session_dirs()
        if session is None or (isinstance(session, (list, tuple, str)) and len(session) == 0):
            raise ValueError(
                f"session is required: one of {available}, a list of them, or 'all'."
            )
        if isinstance(session, str) and session == "all":
            available = self.get_sessions()
            if not available:
                raise DataNotDownloadedError(
                    f"No beta sessions of {self._subject} are on disk in {self._root}. "
                    f"Download them with `{_download_hint(self._subject)}`."
                )
            return available, False
        if isinstance(session, (list, tuple)):
            names = [self._check_session(s, available) for s in session]
            return list(dict.fromkeys(names)), False
        return [self._check_session(session, available)], True

    # ------------------------------------------------------------------ brain space
    def _load_brain(self) -> _Brain:
        if self._brain is not None:
            return self._brain
        snap = self._path(layout.snapshot_brain_mask_key(self._subject))
        r2 = self._path(layout.r2mean_key(self._subject))
        if snap.is_file():
            data, affine = nifti.read_volume(snap)
        elif r2.is_file():
            data, affine = nifti.read_volume(r2)
        else:
            raise DataNotDownloadedError(
                f"The brain mask of {self._subject} is missing: neither {r2.name} nor "
                f"{snap.name} is in {r2.parent}. Download it with "
                f"`{_download_hint(self._subject)}`."
            )
        # NaN counts as outside the brain (a NaN R2 means no fit).
        flat = np.nan_to_num(np.asarray(data, dtype=np.float64), nan=0.0).ravel() != 0
        shape = tuple(int(s) for s in data.shape)
        c_index = np.flatnonzero(flat)
        self._brain = _Brain(
            grid_shape=(shape[0], shape[1], shape[2]),
            affine=affine,
            flat=flat,
            c_index=c_index,
            offsets=nifti.gather_offsets(c_index, shape),
            digest=_cache.mask_hash(flat, shape),
        )
        return self._brain

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4)`` voxel-to-scanner (mm) transform of the beta grid."""
        return self._load_brain().affine.copy()

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Spatial shape of the beta grid, ``(x, y, z)``."""
        return self._load_brain().grid_shape

    def get_brain_mask(self) -> np.ndarray:
        """Flat boolean brain mask over the grid (C order), ``grid_shape`` product long.

        Returns
        -------
        numpy.ndarray
            bool, ``prod(grid_shape)`` entries.

        Examples
        --------
        >>> sub.get_brain_mask().reshape(sub.grid_shape).sum() == sub.get_n_voxels()  # doctest: +SKIP
        True
        """
        return self._load_brain().flat.copy()

    def get_n_voxels(self) -> int:
        """Number of brain-mask voxels (the width of whole-brain betas).

        Returns
        -------
        int

        Examples
        --------
        >>> sub.get_n_voxels()  # doctest: +SKIP
        61234
        """
        return int(self._load_brain().c_index.size)

    def _read_grid_map(self, path: Path) -> np.ndarray:
        """A 3-D map restricted to brain voxels (flat, brain order)."""
        brain = self._load_brain()
        data, _ = nifti.read_volume(path)
        if tuple(data.shape) != brain.grid_shape:
            raise CorruptFileError(
                f"{path} has shape {tuple(data.shape)} but the beta grid of {self._subject} is "
                f"{brain.grid_shape}; the file does not belong to this subject's grid."
            )
        return np.asarray(data).ravel()[brain.c_index]

    # ------------------------------------------------------------------ ROIs
    def _rois(self) -> rois.RoiIndex:
        # Rescanned on every call (a glob of a few files) so new downloads show up.
        return rois.scan_rois(self._root, self._subject)

    def get_available_rois(self, category: str | None = None) -> list[str]:
        """ROI names on disk, sorted; optionally only one category's.

        Parameters
        ----------
        category : str, optional
            Only ROIs of this category.

        Returns
        -------
        list of str

        Raises
        ------
        RoiNotFoundError
            For an unknown category.

        Examples
        --------
        >>> sub.get_available_rois(category="face")  # doctest: +SKIP
        ['FFA1', 'OFA', 'pSTSfaces']
        """
        index = self._rois()
        if category is None:
            return index.names
        if category not in index.categories:
            hint = rois.suggest(category, index.categories)
            raise rois.RoiNotFoundError(
                f"Unknown ROI category {category!r} for {self._subject}.{hint} "
                f"Categories on disk: {', '.join(index.categories) or 'none'}."
            )
        return list(index.categories[category])

    def get_available_categories(self) -> list[str]:
        """ROI categories on disk, sorted.

        Returns
        -------
        list of str

        Examples
        --------
        >>> sub.get_available_categories()  # doctest: +SKIP
        ['body', 'face', 'place']
        """
        return list(self._rois().categories)

    def _roi_voxels(self, name: str, index: rois.RoiIndex | None = None) -> np.ndarray:
        _, path = (index or self._rois()).volumes[name]

        def load(p: Path) -> np.ndarray:
            return np.nan_to_num(self._read_grid_map(p).astype(np.float64)) != 0

        return self._cached("roi", path, load).copy()

    def get_roi_mask(self, query: str | Sequence[str]) -> np.ndarray:
        """Boolean mask over brain voxels of an ROI query (union).

        Parameters
        ----------
        query : str or list of str
            ROI name (``"FFA1"``), category (``"face"``), ``"all"``, or a list.

        Returns
        -------
        numpy.ndarray
            ``(n_voxels,)`` bool.

        Raises
        ------
        RoiNotFoundError
            Unknown ROI/category (lists what exists, suggests close names).

        Examples
        --------
        >>> sub.get_roi_mask(["FFA1", "place"]).sum()  # doctest: +SKIP
        812
        """
        index = self._rois()
        names = rois.resolve_query(query, index, self._subject)
        out = np.zeros(self.get_n_voxels(), dtype=bool)
        for name in names:
            out |= self._roi_voxels(name, index)
        return out

    def get_roi_masks(self, queries: Sequence[str]) -> dict[Any, np.ndarray]:
        """One mask per query; keys are the caller's own strings.

        Parameters
        ----------
        queries : list
            Each item is a query for :meth:`get_roi_mask` (a list item becomes a tuple key).

        Returns
        -------
        dict
            ``{query: (n_voxels,) bool}``.

        Examples
        --------
        >>> list(sub.get_roi_masks(["face", "FFA1"]))  # doctest: +SKIP
        ['face', 'FFA1']
        """
        if isinstance(queries, str):
            queries = [queries]
        return {(tuple(q) if isinstance(q, list) else q): self.get_roi_mask(q) for q in queries}

    def get_roi_data(
        self, query: str | Sequence[str], format: str = "volume", hemi: str = "all"
    ) -> dict[str, Any]:
        """ROI masks in volume, surface (GIFTI) or FreeSurfer-label form.

        Parameters
        ----------
        query : str or list of str
            As for :meth:`get_roi_mask`.
        format : {"volume", "func.gii", "label"}
            ``volume``: bool over brain voxels per ROI; ``func.gii``: per-hemisphere
            bool vertex masks; ``label``: per-hemisphere vertex index arrays.
        hemi : {"L", "R", "all"}
            Hemispheres for the surface formats (ignored for ``volume``).

        Returns
        -------
        dict
            ``{roi: mask}`` for volume, ``{roi: {hemi: array}}`` otherwise.

        Raises
        ------
        RoiNotFoundError, ValueError, DataNotDownloadedError

        Examples
        --------
        >>> sub.get_roi_data("FFA1", format="label", hemi="L")["FFA1"]["L"][:3]  # doctest: +SKIP
        array([12, 13, 57])
        """
        fmt = rois.normalize_format(format)
        hemis = rois.normalize_hemis(hemi)
        index = self._rois()
        names = rois.resolve_query(query, index, self._subject)
        if fmt == "volume":
            return {name: self._roi_voxels(name, index) for name in names}
        out: dict[str, Any] = {}
        for name in names:
            category = index.volumes[name][0]
            per_hemi = {}
            for h in hemis:
                path = rois.surface_path(self._root, self._subject, category, name, h, fmt)
                if not path.is_file():
                    raise DataNotDownloadedError(
                        f"The {fmt} file of ROI {name} ({h}) is not on disk: {path}. Download "
                        f"it with `{_download_hint(self._subject)}`."
                    )
                per_hemi[h] = (
                    rois.read_gifti_mask(path) if fmt == "func.gii" else rois.read_label_vertices(path)
                )
            out[name] = per_hemi
        return out

    # ------------------------------------------------------------------ selection
    def _check_mask(self, mask: object) -> np.ndarray:
        n = self.get_n_voxels()
        arr = np.asarray(mask)
        if arr.dtype != bool or arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(
                f"mask must be a 1-D boolean array of length {n} (one entry per brain-mask "
                f"voxel, see get_n_voxels()); got dtype {arr.dtype} and shape {arr.shape}."
            )
        return arr

    def voxel_selection(
        self, roi: object, mask: object, nc_threshold: object = None, session: str | None = None
    ) -> np.ndarray | None:
        """Boolean selection over brain-mask voxels, as :meth:`get_betas` applies it.

        Parameters
        ----------
        roi : str or list of str, optional
            ROI query as for :meth:`get_roi_mask`; exclusive with ``mask``.
        mask : numpy.ndarray, optional
            ``(n_voxels,)`` boolean array over brain-mask voxels.
        nc_threshold : float, optional
            Keep voxels whose noise ceiling in ``session`` is at least this
            (percent); combined with ``roi``/``mask`` by logical and.
        session : str, optional
            Canonical session id whose noise ceiling ``nc_threshold`` uses.

        Returns
        -------
        numpy.ndarray or None
            ``(n_voxels,)`` bool, or ``None`` when nothing narrows the brain.

        Raises
        ------
        ValueError
            If both ``roi`` and ``mask`` are given, or ``mask`` or
            ``nc_threshold`` is malformed.
        RoiNotFoundError
            For an unknown ROI or category.
        """
        if roi is not None and mask is not None:
            raise ValueError("roi and mask are mutually exclusive; pass one of them.")
        sel = None
        if roi is not None:
            sel = self.get_roi_mask(roi)  # type: ignore[arg-type]
        elif mask is not None:
            sel = self._check_mask(mask)
        if nc_threshold is not None:
            thr = _check_threshold(nc_threshold)
            nc = self._session_nc(session)  # type: ignore[arg-type]
            with np.errstate(invalid="ignore"):
                keep = nc >= thr
            sel = keep if sel is None else (sel & keep)
        return sel

    # ------------------------------------------------------------------ trials
    def _trials_path(self, session: str) -> Path:
        return self._path(layout.trials_key(self._subject, session))

    def _read_trials(self, session: str) -> pd.DataFrame:
        return self._trials_table(session).copy()

    def _trials_table(self, session: str) -> pd.DataFrame:
        """The validated trial table of a session (shared: do not modify)."""
        path = self._trials_path(session)
        if not path.is_file():
            raise DataNotDownloadedError(
                f"The trial table of {self._subject} {session} is not on disk ({path}). "
                f"Download it with `{_download_hint(self._subject, session)}`."
            )
        return self._cached("trials", path, _parse_trials)

    def _trial_labels(self, session: str) -> np.ndarray:
        """The ``label`` column of a session's trial table as a str array (shared)."""
        table = self._trials_table(session)
        return self._cached(
            "labels", self._trials_path(session), lambda _: table["label"].astype(str).to_numpy()
        )

    def _n_volumes(self, path: Path) -> int:
        """Beta volumes of a NIfTI file, from its header."""
        return self._cached(
            "n_volumes", path, lambda p: nifti.read_header(p, check_size=False).n_volumes
        )

    def get_trial_info(self, session: object) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Trial table(s): columns ``session``, ``run``, ``beta_index``, ``label`` (+ any extra).

        Row ``i`` describes beta volume ``i`` of the session.

        Parameters
        ----------
        session : str, int, list or "all"
            One session -> DataFrame; a list or ``"all"`` -> ``{session: DataFrame}``.

        Returns
        -------
        pandas.DataFrame or dict

        Raises
        ------
        SessionNotFoundError, DataNotDownloadedError, CorruptFileError

        Examples
        --------
        >>> sub.get_trial_info("ses-01").columns.tolist()[:4]  # doctest: +SKIP
        ['session', 'run', 'beta_index', 'label']
        """
        sessions, single = self.resolve_sessions(session)
        if single:
            return self._read_trials(sessions[0])
        return {s: self._read_trials(s) for s in sessions}

    @property
    def metadata(self) -> pd.DataFrame:
        """Trials of every downloaded session in session order, one row per beta.

        Index: global trial index ``0..N-1`` (named ``trial``), matching rows of
        ``get_betas`` stacked over ``get_sessions()``. Columns: the trial table
        columns plus ``session_trial`` (0-based within the session),
        ``image_name`` (= ``label``), ``unique_or_shared`` and ``dataset``
        (``LAION``, ``NSD``, ``THINGS``, ``THINGSplus``, ``OOD``).

        Examples
        --------
        >>> sub.metadata[["session", "image_name"]].head(2)  # doctest: +SKIP
        """
        import pandas as pd

        frames = []
        for session in self.get_sessions():
            df = self._read_trials(session)
            betas = self._path(layout.betas_key(self._subject, session))
            if betas.is_file():
                # Rows must line up with get_betas: one per beta volume.
                n_volumes = self._n_volumes(betas)
                if n_volumes != len(df):
                    raise CorruptFileError(
                        f"{self._trials_path(session)} has {len(df)} rows but {betas.name} has "
                        f"{n_volumes} volumes; re-download {session}."
                    )
            df["session_trial"] = np.arange(len(df), dtype=np.int64)
            frames.append(df)
        if not frames:
            cols = [*layout.TRIAL_COLUMNS, "session_trial"]
            out = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        else:
            out = pd.concat(frames, ignore_index=True)
        out["image_name"] = out["label"].astype(str)
        # Classify each distinct image once, not once per trial.
        codes, names = pd.factorize(out["image_name"])
        for column, classify in (("unique_or_shared", _share_kind), ("dataset", layout.dataset_of_label)):
            kinds = np.array([classify(x) for x in names] + [None], dtype=object)
            out[column] = kinds[codes].tolist()
        out.index = pd.RangeIndex(len(out), name="trial")
        return out

    def _trial_rows(self, session: str, stimuli: str | None, n_trials: int) -> np.ndarray | None:
        if stimuli is None:
            return None
        labels = self._trial_labels(session)
        if labels.size != n_trials:
            raise CorruptFileError(
                f"{self._trials_path(session)} has {labels.size} rows but the betas of "
                f"{session} have {n_trials} volumes; re-download the session."
            )
        return np.flatnonzero(np.char.startswith(labels.astype(str), stimuli + "_"))

    # ------------------------------------------------------------------ betas
    def _betas_path(self, session: str) -> Path:
        path = self._path(layout.betas_key(self._subject, session))
        if not path.is_file():
            raise DataNotDownloadedError(
                f"The betas of {self._subject} {session} are not on disk ({path}). Download them "
                f"with `{_download_hint(self._subject, session)}`."
            )
        return path

    def _load(self, session: str, cols: np.ndarray | None, cache: bool | None) -> np.ndarray:
        """Decode (or map from cache) one session's betas, columns ``cols`` of the brain voxels."""
        brain = self._load_brain()
        path = self._betas_path(session)
        use_cache = cache_enabled(cache)
        key = layout.betas_key(self._subject, session)
        entry = _cache.entry_for(self._root, self._subject, session)
        mapped = (
            _cache.open_cached(entry, path, key, brain.digest, mode="c") if use_cache else None
        )
        if mapped is None:
            header = nifti.read_header(path)
            if header.grid_shape != brain.grid_shape:
                raise CorruptFileError(
                    f"{path} has grid {header.grid_shape} but the brain mask of {self._subject} "
                    f"is {brain.grid_shape}."
                )
        if not use_cache or (mapped is None and self._cache_unwritable):
            # No cache to fill: gather only the requested voxels while decoding.
            offsets = brain.offsets if cols is None else brain.offsets[cols]
            return nifti.read_masked(path, offsets, header=header)
        if mapped is None:
            # Decode the whole brain once, keep it, and subset in memory.
            stamp = _cache.source_stamp(path)
            full = nifti.read_masked(path, brain.offsets, header=header)
            try:
                _cache.write_cache(entry, full, path, key, brain.digest, stamp=stamp)
            except OSError as exc:
                # E.g. a read-only shared data folder: stop decoding whole brains
                # for a cache that cannot be written.
                self._cache_unwritable = True
                warnings.warn(
                    f"Could not write the betas cache {entry.data} ({exc}); loading without it. "
                    f"Set {_cache.ENV_CACHE_DIR} to a writable folder to keep repeat loads fast.",
                    stacklevel=3,
                )
            return full if cols is None else np.ascontiguousarray(full[:, cols])
        if cols is None:
            return np.asarray(mapped)
        return np.ascontiguousarray(mapped[:, cols])

    def _session_betas(
        self,
        session: str,
        sel: np.ndarray | None,
        stimuli: str | None,
        average: str | None,
        cache: bool | None,
    ) -> np.ndarray:
        cols = None if sel is None else np.flatnonzero(sel)
        data = self._load(session, cols, cache)
        rows = self._trial_rows(session, stimuli, data.shape[0])
        if average is not None:
            from laion_fmri.stats import average_repeats

            labels = self._trial_labels(session)
            if labels.size != data.shape[0]:
                raise CorruptFileError(
                    f"{self._trials_path(session)} has {labels.size} rows but the betas have "
                    f"{data.shape[0]} volumes; re-download the session."
                )
            if rows is not None:
                data, labels = data[rows], labels[rows]
            means, _, _ = average_repeats(data, labels)
            return np.ascontiguousarray(means, dtype=np.float32)
        if rows is not None:
            data = data[rows]
        return np.ascontiguousarray(data, dtype=np.float32)

    def get_betas(
        self,
        session: object,
        roi: str | Sequence[str] | None = None,
        mask: np.ndarray | None = None,
        nc_threshold: float | None = None,
        stimuli: str | None = None,
        average: str | None = None,
        lazy: bool = False,
        cache: bool | None = None,
    ) -> Any:
        """Single-trial betas, ``(n_trials, n_voxels)`` float32, C-contiguous.

        Parameters
        ----------
        session : str, int, list or "all"
            ``"ses-01"``/``1`` -> one array; a list -> ``{session: array}``;
            ``"all"`` -> ``{session: array}`` for every session on disk.
        roi : str or list of str, optional
            ROI name, category (union of its ROIs), ``"all"`` or a list (union).
        mask : numpy.ndarray, optional
            Boolean over brain-mask voxels (length :meth:`get_n_voxels`).
            Exclusive with ``roi``.
        nc_threshold : float, optional
            Keep voxels whose *per-session* noise ceiling is ``>=`` this value,
            in **percent (0-100)**, the units of :meth:`get_noise_ceiling`
            (``0.2`` means 0.2 %). Voxels with a NaN noise ceiling are dropped;
            NaN, negative or >100 thresholds raise ``ValueError``. Combined with
            ``roi``/``mask`` by intersection.
        stimuli : {"shared", "unique"}, optional
            Keep only trials whose image name starts with ``shared_``/``unique_``.
        average : {"label"}, optional
            Average repeated presentations: one row per unique image, in order of
            first appearance in the session's trial table (after the ``stimuli``
            filter), i.e. the row labels are
            ``pd.unique(sub.get_trial_info(session)["label"])``. Averaging is within
            each session and on the betas as stored; to average across sessions,
            z-score first (:func:`laion_fmri.stats.zscore_by_session`) and use
            :func:`laion_fmri.stats.average_repeats` on the stacked betas with
            ``sub.metadata["label"]``, which also returns labels and counts.
        lazy : bool
            Return a dask array stacked over the sessions (in ``metadata`` order),
            one chunk per session; works on ``dask.distributed`` too. Needs the
            ``dask`` extra. Not combinable with ``average`` or a per-session
            ``nc_threshold`` over several sessions.
        cache : bool, optional
            Use the decoded-betas cache (default: on unless ``LAION_FMRI_CACHE=0``).
            With the cache on, the first call for a session decodes the whole
            brain once (even when filtered), writes the cache and subsets in
            memory; later calls memory-map the cache and read only the selected
            columns. With it off, only the selected voxels are gathered while
            streaming. A file is never decoded twice in one call.

        Returns
        -------
        numpy.ndarray, dict or dask.array.Array
            Arrays are float32 and C-contiguous; NaNs in the file are kept. A
            whole-brain array served from the cache is a copy-on-write view of
            the memory-mapped file (writable; changes never reach the disk).

        Raises
        ------
        SessionNotFoundError
            Unknown session (lists the sessions on disk, suggests close names).
        RoiNotFoundError
            Unknown ROI or category.
        ValueError
            ``roi`` with ``mask``, a mask of the wrong length/dtype, a bad
            ``nc_threshold``, ``stimuli`` or ``average``.
        DataNotDownloadedError
            A needed file is not on disk (names the download call).
        CorruptFileError
            A file on disk is malformed.
        MissingDependencyError
            ``lazy=True`` without dask.

        Examples
        --------
        >>> sub.get_betas(session="ses-01", roi="FFA1").shape  # doctest: +SKIP
        (1044, 412)
        >>> sub.get_betas(session=["ses-01", "ses-02"], roi="face")  # doctest: +SKIP
        {'ses-01': array(...), 'ses-02': array(...)}
        """
        if stimuli is not None and stimuli not in STIMULI_FILTERS:
            raise ValueError(f"stimuli must be None, 'shared' or 'unique', not {stimuli!r}.")
        if average is not None and average not in AVERAGE_MODES:
            raise ValueError(f"average must be None or 'label', not {average!r}.")
        sessions, single = self.resolve_sessions(session)
        if roi is not None and mask is not None:
            raise ValueError("roi and mask are mutually exclusive; pass one of them.")
        base = self.voxel_selection(roi, mask)
        if nc_threshold is not None:
            _check_threshold(nc_threshold)
        if lazy:
            return self._lazy(sessions, base, nc_threshold, stimuli, average, cache)
        out = {}
        for s in sessions:
            sel = base if nc_threshold is None else self.voxel_selection(
                None, base if base is not None else None, nc_threshold, s
            )
            out[s] = self._session_betas(s, sel, stimuli, average, cache)
        return out[sessions[0]] if single else out

    def _lazy(
        self,
        sessions: list[str],
        base: np.ndarray | None,
        nc_threshold: float | None,
        stimuli: str | None,
        average: str | None,
        cache: bool | None,
    ) -> Any:
        try:
            import dask
            import dask.array as da
        except ImportError as exc:
            raise MissingDependencyError("dask", "dask") from exc
        if average is not None:
            raise ValueError("average= is not supported with lazy=True; compute, then average.")
        sel = base
        if nc_threshold is not None:
            if len(sessions) > 1:
                raise ValueError(
                    "nc_threshold picks different voxels in each session, so lazy stacking of "
                    "several sessions needs one voxel set: pass mask= (e.g. from "
                    "get_noise_ceiling(desc=...) >= t) instead."
                )
            sel = self.voxel_selection(None, base, nc_threshold, sessions[0])
        cols = None if sel is None else np.flatnonzero(sel)
        n_cols = self.get_n_voxels() if cols is None else int(cols.size)
        parts = []
        for s in sessions:
            n_rows = nifti.read_header(self._betas_path(s)).n_volumes
            rows = self._trial_rows(s, stimuli, n_rows)
            if rows is not None:
                n_rows = int(rows.size)
            task = dask.delayed(load_session_betas, pure=True)(
                str(self._root), self._subject, s, cols, stimuli, cache,
                dask_key_name=f"laion-fmri-betas-{self._subject}-{s}-{_cols_token(cols, stimuli)}",
            )
            parts.append(da.from_delayed(task, shape=(n_rows, n_cols), dtype=np.float32))
        return da.concatenate(parts, axis=0)

    # ------------------------------------------------------------------ noise ceilings
    def _session_nc(self, session: str) -> np.ndarray:
        path = self._path(layout.session_nc_key(self._subject, session))
        if not path.is_file():
            raise DataNotDownloadedError(
                f"The noise ceiling of {self._subject} {session} is not on disk ({path}). "
                f"Download it with `{_download_hint(self._subject, session)}`."
            )
        return self._nc_map(path)

    def _desc_nc(self, desc: str) -> np.ndarray:
        if not isinstance(desc, str) or not desc.isalnum():
            raise ValueError(f"desc must be a name like 'Noiseceiling12rep', not {desc!r}.")
        path = self._path(layout.subject_nc_key(self._subject, desc))
        if not path.is_file():
            base = path.parent
            found = sorted(
                p.name.split("_desc-")[1].split("_")[0]
                for p in base.glob(f"{self._subject}_task-*_desc-*_statmap.nii.gz")
                if "Noiseceiling" in p.name
            ) if base.is_dir() else []
            known = sorted({*found, *layout.SUBJECT_NC_DESCS})
            if desc not in known:
                close = difflib.get_close_matches(desc, known, n=2)
                hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise ValueError(
                    f"Unknown noise-ceiling desc {desc!r} for {self._subject}.{hint} Published: "
                    f"{', '.join(layout.SUBJECT_NC_DESCS)}; on disk: {', '.join(found) or 'none'}."
                )
            raise DataNotDownloadedError(
                f"The noise ceiling desc={desc!r} of {self._subject} is not downloaded ({path}). "
                f"Download the subject-level maps with "
                f"`{_download_hint(self._subject, 'averages')}`."
            )
        return self._nc_map(path)

    def _nc_map(self, path: Path) -> np.ndarray:
        """A noise-ceiling map over brain voxels, float32 (a fresh copy)."""
        return self._cached("nc", path, lambda p: self._read_grid_map(p).astype(np.float32)).copy()

    def get_noise_ceiling(
        self,
        session: object = None,
        desc: str | Sequence[str] | None = None,
        roi: str | Sequence[str] | None = None,
        mask: np.ndarray | None = None,
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Noise ceiling in percent (0-100) per brain voxel.

        Parameters
        ----------
        session : str, int or list, optional
            Per-session map(s). Exactly one of ``session`` / ``desc``.
        desc : str or list of str, optional
            Cross-session map, e.g. ``"Noiseceiling12rep"``.
        roi, mask : optional
            Voxel selection, as in :meth:`get_betas`.

        Returns
        -------
        numpy.ndarray or dict
            ``(n_selected,)`` float32; a dict for a list (or ``session="all"``).

        Raises
        ------
        ValueError
            Both or neither of ``session``/``desc``; ``roi`` with ``mask``.
        DataNotDownloadedError
            The map is not on disk.

        Examples
        --------
        >>> sub.get_noise_ceiling(desc="Noiseceiling12rep").shape  # doctest: +SKIP
        (61234,)
        """
        if (session is None) == (desc is None):
            raise ValueError("Pass exactly one of session= or desc= to get_noise_ceiling.")
        sel = self.voxel_selection(roi, mask)

        def pick(values: np.ndarray) -> np.ndarray:
            return values if sel is None else values[sel]

        if desc is not None:
            if isinstance(desc, (list, tuple)):
                return {d: pick(self._desc_nc(d)) for d in desc}
            return pick(self._desc_nc(desc))
        sessions, single = self.resolve_sessions(session)
        out = {s: pick(self._session_nc(s)) for s in sessions}
        return out[sessions[0]] if single else out

    # ------------------------------------------------------------------ brain space I/O
    def get_voxel_coordinates(
        self, roi: str | Sequence[str] | None = None, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Scanner coordinates (mm) of the selected brain voxels, ``(n, 3)``, voxel order.

        Parameters
        ----------
        roi, mask : optional
            Voxel selection, as in :meth:`get_betas` (whole brain by default).

        Returns
        -------
        numpy.ndarray
            ``(n_selected, 3)`` float64.

        Examples
        --------
        >>> sub.get_voxel_coordinates(roi="FFA1").shape  # doctest: +SKIP
        (412, 3)
        """
        brain = self._load_brain()
        sel = self.voxel_selection(roi, mask)
        index = brain.c_index if sel is None else brain.c_index[sel]
        ijk = np.column_stack(np.unravel_index(index, brain.grid_shape)).astype(np.float64)
        return ijk @ brain.affine[:3, :3].T + brain.affine[:3, 3]

    def to_nifti(
        self,
        values: np.ndarray,
        path: str | os.PathLike[str],
        roi: str | Sequence[str] | None = None,
        mask: np.ndarray | None = None,
    ) -> Path:
        """Write per-voxel values back onto the grid as a float32 NIfTI (0 elsewhere).

        Parameters
        ----------
        values : numpy.ndarray
            ``(n_selected,)`` -> 3-D image; ``(k, n_selected)`` -> 4-D image.
        path : str or os.PathLike
            Output ``.nii`` / ``.nii.gz``.
        roi, mask : optional
            The selection the values belong to (whole brain by default).

        Returns
        -------
        Path

        Raises
        ------
        ValueError
            If the last axis of ``values`` does not match the selection size.

        Examples
        --------
        >>> sub.to_nifti(sub.get_noise_ceiling(session="ses-01"), "nc.nii.gz")  # doctest: +SKIP
        """
        import nibabel as nib

        brain = self._load_brain()
        sel = self.voxel_selection(roi, mask)
        index = brain.c_index if sel is None else brain.c_index[sel]
        arr = np.asarray(values, dtype=np.float32)
        if arr.ndim not in (1, 2) or arr.shape[-1] != index.size:
            raise ValueError(
                f"Values length mismatch: got shape {arr.shape}, expected ({index.size},) or "
                f"(k, {index.size}) for this selection."
            )
        rows = arr.reshape(-1, index.size)
        vol = np.zeros((rows.shape[0], int(np.prod(brain.grid_shape))), dtype=np.float32)
        vol[:, index] = rows
        data = vol.reshape((rows.shape[0], *brain.grid_shape))
        data = data[0] if arr.ndim == 1 else np.moveaxis(data, 0, -1)
        out = Path(path)
        if not out.name.endswith((".nii", ".nii.gz")):
            raise ValueError(f"to_nifti writes a .nii or .nii.gz file, not {out.name!r}.")
        if not out.parent.is_dir():
            raise FileNotFoundError(f"The folder {out.parent} does not exist; create it first.")
        img = nib.Nifti1Image(data, brain.affine)
        img.header.set_xyzt_units("mm")
        nib.save(img, str(out))
        return out

    # ------------------------------------------------------------------ delegates
    @property
    def images(self) -> Any:
        """Stimulus images by global trial index (:class:`laion_fmri.alignment.SubjectImages`)."""
        from laion_fmri.alignment import SubjectImages

        return SubjectImages(self)

    @property
    def embeddings(self) -> Any:
        """Embeddings by global trial index (:class:`laion_fmri.alignment.SubjectEmbeddings`)."""
        from laion_fmri.alignment import SubjectEmbeddings

        return SubjectEmbeddings(self)

    @property
    def captions(self) -> Any:
        """Captions by global trial index (:class:`laion_fmri.alignment.SubjectCaptions`)."""
        from laion_fmri.alignment import SubjectCaptions

        return SubjectCaptions(self)

    @property
    def segmentations(self) -> Any:
        """Segmentations by trial (:class:`laion_fmri.alignment.SubjectSegmentations`)."""
        from laion_fmri.alignment import SubjectSegmentations

        return SubjectSegmentations(self)

    def get_split(self, *args: Any, **kwargs: Any) -> Any:
        """Published train/test split of this subject's trials.

        Parameters
        ----------
        *args, **kwargs
            Passed to :func:`laion_fmri.splits.subject_split`.

        Returns
        -------
        object
            What :func:`laion_fmri.splits.subject_split` returns.
        """
        from laion_fmri.splits import subject_split

        return subject_split(self, *args, **kwargs)

    def to_torch_dataset(self, **kwargs: Any) -> Any:
        """A PyTorch dataset over this subject.

        Parameters
        ----------
        **kwargs
            Passed to :class:`laion_fmri.torch.SubjectDataset`.

        Returns
        -------
        laion_fmri.torch.SubjectDataset
        """
        from laion_fmri.torch import SubjectDataset

        return SubjectDataset(self, **kwargs)

    def to_xarray(self, **kwargs: Any) -> Any:
        """Betas as an ``xarray.DataArray``.

        Parameters
        ----------
        **kwargs
            Passed to :func:`laion_fmri.xr.to_xarray`.

        Returns
        -------
        xarray.DataArray
        """
        from laion_fmri.xr import to_xarray

        return to_xarray(self, **kwargs)


def _parse_trials(path: Path) -> pd.DataFrame:
    """Read and check one trial table (TSV)."""
    import pandas as pd

    try:
        df = pd.read_csv(
            path, sep="\t", dtype={"label": str, "session": str}, keep_default_na=False
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path} is not a readable TSV trial table ({exc}).") from exc
    missing = [c for c in layout.TRIAL_COLUMNS if c not in df.columns]
    if missing:
        raise CorruptFileError(
            f"{path} lacks the column(s) {', '.join(missing)} (found: "
            f"{', '.join(map(str, df.columns))}); expected {', '.join(layout.TRIAL_COLUMNS)}. "
            "Delete it and download it again."
        )
    for column in ("run", "beta_index"):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CorruptFileError(
                f"{path}: column {column!r} must hold integers, found {df[column].iloc[row]!r} "
                f"in data row {row + 1}. Delete it and download it again."
            )
        df[column] = values.astype(np.int64)
    return df


def _share_kind(label: str) -> str | None:
    if label.startswith("shared_"):
        return "shared"
    if label.startswith("unique_"):
        return "unique"
    return None


def _check_threshold(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"nc_threshold must be a number in percent (0-100), not {value!r}.")
    thr = float(value)
    if not np.isfinite(thr) or not 0 <= thr <= 100:
        raise ValueError(
            f"nc_threshold={value!r} is outside 0-100; noise ceilings are in percent."
        )
    return thr


def _cols_token(cols: np.ndarray | None, stimuli: str | None) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    h.update(b"all" if cols is None else np.ascontiguousarray(cols).tobytes())
    h.update(str(stimuli).encode())
    return h.hexdigest()


def load_session_betas(
    data_dir: str,
    subject: str,
    session: str,
    cols: np.ndarray | None = None,
    stimuli: str | None = None,
    cache: bool | None = None,
) -> np.ndarray:
    """Load one session's betas for given brain-voxel columns (the lazy/dask task).

    Module-level and argument-only so it pickles to ``dask.distributed`` workers.

    Parameters
    ----------
    data_dir : str
        Local data directory (must be visible to the worker).
    subject, session : str
        Canonical ids.
    cols : numpy.ndarray, optional
        Sorted brain-voxel column indices; ``None`` = whole brain.
    stimuli : {"shared", "unique"}, optional
        Trial filter.
    cache : bool, optional
        Use the betas cache.

    Returns
    -------
    numpy.ndarray
        ``(n_trials, n_cols)`` float32.

    Examples
    --------
    >>> load_session_betas("/data", "sub-03", "ses-01").dtype  # doctest: +SKIP
    dtype('float32')
    """
    sub = Subject(subject, data_dir)
    data = sub._load(session, cols, cache)
    rows = sub._trial_rows(session, stimuli, data.shape[0])
    if rows is not None:
        data = data[rows]
    return np.ascontiguousarray(data, dtype=np.float32)


def load_subject(subject: object, data_dir: str | os.PathLike[str] | None = None) -> Subject:
    """Open a downloaded subject.

    Parameters
    ----------
    subject : str or int
        ``"sub-03"``, ``"03"`` or ``3``.
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Returns
    -------
    Subject

    Raises
    ------
    SubjectNotFoundError
        Unknown subject id.
    DataNotDownloadedError
        Nothing of the subject is on disk (names the download call).
    DataDirNotSetError
        No data directory configured.

    Examples
    --------
    >>> sub = load_subject(3)  # doctest: +SKIP
    >>> sub.subject_id  # doctest: +SKIP
    'sub-03'
    """
    sub_id = layout.normalize_subject(subject)
    root = Path(get_data_dir(data_dir))
    glm = root / layout.subject_glm_prefix(sub_id)
    if not glm.is_dir():
        raise DataNotDownloadedError(
            f"{sub_id} is not downloaded in {root}. Download it with "
            f"`{_download_hint(sub_id)}` (or one session: "
            f"`{_download_hint(sub_id, 'ses-01')}`)."
        )
    return Subject(sub_id, root)


__all__ = ["Subject", "load_session_betas", "load_subject"]
