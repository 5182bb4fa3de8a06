"""The front door to one subject's data: :class:`Subject` and :func:`load_subject`.

Each public method is a few lines over the subject's parts (sessions, brain
space, trials, ROIs, noise ceilings) and the one betas reader
(:class:`laion_fmri.betas.SessionBetas`). What a call reads is decided once
as a frozen :class:`~laion_fmri.subject.Selection`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from laion_fmri import _cache, layout
from laion_fmri._docs import fill_doc
from laion_fmri._types import OneSession, PathArg, RoiArg
from laion_fmri.betas import SessionBetas
from laion_fmri.config import get_data_dir
from laion_fmri.errors import DataNotDownloadedError
from laion_fmri.subject._adapters import AdapterMethods
from laion_fmri.subject._anatomy import AnatomyMethods
from laion_fmri.subject._brain import _Brain
from laion_fmri.subject._fetch import (
    early_betas,
    fetch_enabled,
    fetch_store,
    prepare,
    read_sessions,
    stack_remote,
)
from laion_fmri.subject._files import SubjectFiles
from laion_fmri.subject._raw import RawMethods
from laion_fmri.subject._read import check_read_args, read_session, stack_lazily
from laion_fmri.subject._roi_methods import RoiMethods
from laion_fmri.subject._selection import Selection
from laion_fmri.subject._sessions import Sessions
from laion_fmri.subject._stimulus_methods import StimulusMethods
from laion_fmri.subject._trials import Trials
from laion_fmri.subject._voxels import VoxelSpace, VoxelSpaces
from laion_fmri.vocab import download_hint, normalize_mask_source

if TYPE_CHECKING:  # pragma: no cover
    import dask.array
    import pandas as pd


@fill_doc
class Subject(RoiMethods, AnatomyMethods, RawMethods, StimulusMethods, AdapterMethods):
    """A subject's downloaded data. Create with :func:`load_subject`.

    Parameters
    ----------
    subject_id : str
        Canonical id, ``"sub-03"``.
    data_dir : str or os.PathLike
        Local data directory holding the bucket layout.

    Examples
    --------
    >>> load_subject("sub-03").get_betas(session="ses-01", roi="FFA1").shape  # doctest: +SKIP
    (1044, 412)
    """

    def __init__(self, subject_id: str, data_dir: str | os.PathLike[str]) -> None:
        self._subject = subject_id
        self._root = Path(data_dir)
        files = SubjectFiles(self._root, subject_id)
        self._files = files
        self._sessions = Sessions(files)
        self._trials = Trials(files)
        self._spaces = VoxelSpaces(files, self._sessions)

    def __repr__(self) -> str:
        return f"Subject({self._subject!r}, data_dir={str(self._root)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Subject, (self._subject, str(self._root)))

    @property
    def subject_id(self) -> str:
        """Canonical subject id, e.g. ``"sub-03"``."""
        return self._subject

    @property
    def data_dir(self) -> Path:
        """The local data directory."""
        return self._root

    def _space(self, mask_source: object = None) -> VoxelSpace:
        return self._spaces.get(mask_source)

    @property
    def betas_reader(self) -> SessionBetas:
        """The reader behind :meth:`get_betas` over the default brain mask."""
        return self._space().betas

    def get_betas_reader(self, mask_source: str | None = None) -> SessionBetas:
        """The betas reader (:class:`laion_fmri.betas.SessionBetas`) over one brain mask.

        Parameters
        ----------
        %(mask_source)s

        Returns
        -------
        laion_fmri.betas.SessionBetas
        """
        return self._space(mask_source).betas

    def get_sessions(self) -> list[str]:
        """Sessions whose beta file is on disk, sorted (held-out sessions too, if present).

        Returns
        -------
        list of str
        """
        return self._sessions.with_betas()

    def resolve_sessions(self, session: object) -> tuple[list[str], bool]:
        """``(sessions, single)``: the sessions ``session=`` names (in order), and if it named one.

        Parameters
        ----------
        %(session)s

        Returns
        -------
        tuple of (list of str, bool)

        Raises
        ------
        %(session_raises)s
        """
        return self._sessions.resolve(session)

    def _load_brain(self, mask_source: str | None = None) -> _Brain:
        return self._space(mask_source).brain.get()

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4)`` voxel-to-scanner (mm) transform of the beta grid."""
        return self._load_brain().affine.copy()

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Spatial shape of the beta grid, ``(x, y, z)``."""
        return self._load_brain().grid_shape

    def get_brain_mask(self, source: str | None = None) -> np.ndarray:
        """Flat boolean brain mask over the grid (C order): the voxel axis.

        Parameters
        ----------
        source : {"anatomical", "rsquare"}, optional
            ``"anatomical"`` (default): the anatomical ``res-1pt8`` brain mask;
            ``"rsquare"``: ``R2mean != 0``.

        Returns
        -------
        numpy.ndarray
            bool, ``prod(grid_shape)`` entries.
        """
        return self._load_brain(source).flat.copy()

    def get_n_voxels(self, mask_source: str | None = None) -> int:
        """Number of brain-mask voxels (the width of whole-brain betas).

        Parameters
        ----------
        %(mask_source)s

        Returns
        -------
        int
        """
        return self._load_brain(mask_source).n_voxels

    def get_voxel_coordinates(self, roi: RoiArg = None, mask: np.ndarray | None = None,
                              mask_source: str | None = None) -> np.ndarray:
        """Scanner coordinates (mm) of the selected brain voxels, voxel order.

        Parameters
        ----------
        %(roi_mask)s
        %(mask_source)s

        Returns
        -------
        numpy.ndarray
            ``(n_selected, 3)`` float64.
        """
        sel = self.voxel_selection(roi, mask, mask_source=mask_source)
        return self._space(mask_source).brain.coordinates(sel)

    def to_nifti(self, values: np.ndarray, path: PathArg, roi: RoiArg = None,
                 mask: np.ndarray | None = None, mask_source: str | None = None) -> Path:
        """Write per-voxel values back onto the grid as a float32 NIfTI (0 elsewhere).

        Parameters
        ----------
        values : numpy.ndarray
            ``(n_selected,)`` -> 3-D image; ``(k, n_selected)`` -> 4-D image (any
            other length of the last axis is a ``ValueError``).
        path : str or os.PathLike
            Output ``.nii`` / ``.nii.gz``.
        %(roi_mask)s
        %(mask_source)s

        Returns
        -------
        Path
        """
        sel = self.voxel_selection(roi, mask, mask_source=mask_source)
        return self._space(mask_source).brain.to_nifti(values, path, sel)

    def voxel_selection(self, roi: object, mask: object, nc_threshold: object = None,
                        session: str | None = None, mask_source: str | None = None
                        ) -> np.ndarray | None:
        """Boolean selection over brain-mask voxels, as :meth:`get_betas` applies it.

        Parameters
        ----------
        %(roi_mask)s
        nc_threshold : float, optional
            Also keep only voxels whose noise ceiling in ``session`` is at least this (percent).
        session : str, optional
            Canonical session id whose noise ceiling ``nc_threshold`` uses.
        %(mask_source)s

        Returns
        -------
        numpy.ndarray or None
            ``(n_voxels,)`` bool, or ``None`` when nothing narrows the brain.
        """
        return self._space(mask_source).selector.voxels(roi, mask, nc_threshold, session)

    def select(self, session: object = "all", roi: RoiArg = None, mask: np.ndarray | None = None,
               nc_threshold: float | None = None, one_voxel_set: bool = False,
               mask_source: str | None = None) -> Selection:
        """Decide once which sessions and voxels a read covers.

        Parameters
        ----------
        %(session)s
        %(roi_mask)s
        %(nc_threshold)s
        one_voxel_set : bool
            Require one voxel set for every session (the adapters' rule), so
            ``nc_threshold`` with several sessions is a ``ValueError``.
        %(mask_source)s

        Returns
        -------
        Selection
        """
        return self._space(mask_source).selector.select(
            session, roi, mask, nc_threshold, one_voxel_set)

    def get_trial_info(self, session: object) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Trial table(s): ``session``, ``run``, ``beta_index``, ``label`` (+ extra); row i = volume i.

        Parameters
        ----------
        %(session)s

        Returns
        -------
        pandas.DataFrame or dict
            One table; ``{session: table}`` for a list or ``"all"``.
        """
        return self._trials.info(*self._sessions.resolve(session))

    @property
    def metadata(self) -> pd.DataFrame:
        """Trials of every downloaded session in session order, one row per beta.

        Index: global trial index ``0..N-1`` (``trial``), the rows of ``get_betas`` stacked
        over ``get_sessions()``. Columns: the trial table's plus ``session_trial`` (0-based in
        the session), ``image_name`` (= ``label``), ``unique_or_shared`` and ``dataset``
        (``LAION``, ``NSD``, ``THINGS``, ``THINGSplus``, ``OOD``).
        """
        return self._trials.metadata(self.get_sessions())

    @overload
    def get_betas(self, session: Literal["all"] | Sequence[OneSession], *args: Any,
                  lazy: Literal[False] = ..., **kw: Any) -> dict[str, np.ndarray]: ...
    @overload
    def get_betas(self, session: OneSession, *args: Any, lazy: Literal[False] = ...,
                  **kw: Any) -> np.ndarray: ...
    @overload
    def get_betas(self, session: object, *args: Any, lazy: Literal[True], **kw: Any
                  ) -> dask.array.Array: ...

    def get_betas(self, session: object, roi: RoiArg = None, mask: np.ndarray | None = None,
                  nc_threshold: float | None = None, stimuli: str | None = None,
                  average: str | None = None, lazy: bool = False, cache: bool | None = None,
                  mask_source: str | None = None, streaming: bool | None = None,
                  space: str | None = None, hemi: str | None = None,
                  fetch: bool | None = None, keep: bool = False,
                  ) -> np.ndarray | dict[str, np.ndarray] | dask.array.Array:
        """Single-trial betas, ``(n_trials, n_voxels)`` float32, C-contiguous.

        Parameters
        ----------
        %(session)s
            One session -> one array; a list or ``"all"`` -> ``{session: array}``.
        %(roi_mask)s
        %(nc_threshold)s
        %(stimuli)s
        %(average)s
        %(lazy)s
        %(cache)s
        %(mask_source)s
        streaming : bool, optional
            Accepted for compatibility with the reference package; betas are
            always read streaming (one volume at a time, only the brain voxels kept).
        space : {"T1w", "fsaverage5", "fsaverage6", "fsaverage7", "fsaverage", "MNI305"}, optional
            Project the betas to a template space (:func:`laion_fmri.templates.project_betas`;
            needs the ``templates`` extra). ``None`` / ``"T1w"``: the voxel axis.
        hemi : {"L", "R"}, optional
            One hemisphere of a surface ``space`` (default: both, as a dict).
        fetch : bool, optional
            Stream sessions that are not on disk from the configured source into
            the cache (default: ``LAION_FMRI_FETCH``, off); with ``lazy=True`` the
            dask workers stream them and need no data directory. See ``docs/betas.md``.
        keep : bool
            With ``fetch``: also keep the verified ``.nii.gz`` files.

        Returns
        -------
        %(betas_returns)s

        Raises
        ------
        %(betas_raises)s

        Examples
        --------
        >>> sub.get_betas(session="ses-01", roi="FFA1").shape  # doctest: +SKIP
        (1044, 412)
        """
        check_read_args(stimuli, average, lazy)
        store = fetch_store(fetch)
        source = normalize_mask_source(mask_source) if store is not None else ""
        # Betas asked for while the small files come; cache=False keeps the mask index off disk.
        with early_betas(self._files, session, source, store, lazy), _cache.call_cache(cache):
            if store is not None:  # trial tables and masks first (small, verified)
                session = prepare(self._files, session, source, store, rois=roi is not None)
            sel = self.select(session, roi, mask, nc_threshold, one_voxel_set=lazy,
                              mask_source=mask_source)
            reader = self._space(sel.mask_source).betas
            if lazy:
                out: Any = (stack_remote(sel, stimuli) if store is not None else
                            stack_lazily(reader, self._trials, self._root, sel, stimuli, cache))
            else:
                read = partial(read_session, reader, self._trials, stimuli=stimuli,
                               average=average, store=store, keep=keep)
                out = read_sessions(read, sel, store, cache)
        if space not in (None, "T1w"):
            from laion_fmri.subject._projection import project_selection

            out = project_selection(self, out, sel, space, hemi)
        return out[sel.sessions[0]] if sel.single and isinstance(out, dict) else out

    def get_noise_ceiling(self, session: object = None, desc: str | Sequence[str] | None = None,
                          roi: RoiArg = None, mask: np.ndarray | None = None,
                          mask_source: str | None = None) -> np.ndarray | dict[str, np.ndarray]:
        """Noise ceiling in percent (0-100) per brain voxel.

        Parameters
        ----------
        session : str, int or list, optional
            Per-session map(s). Exactly one of ``session`` / ``desc`` (else ``ValueError``).
        desc : str or list of str, optional
            Cross-session map, e.g. ``"Noiseceiling12rep"``.
        %(roi_mask)s
        %(mask_source)s

        Returns
        -------
        numpy.ndarray or dict
            ``(n_selected,)`` float32; a dict for a list (or ``session="all"``).
        """
        space = self._space(mask_source)
        sel = space.selector.voxels(roi, mask)
        return space.nc.get(self._sessions, session, desc, sel)

@fill_doc
def load_subject(subject: object, data_dir: str | os.PathLike[str] | None = None) -> Subject:
    """Open a downloaded subject.

    Parameters
    ----------
    subject : str or int
        ``"sub-03"``, ``"03"`` or ``3``.
    %(data_dir)s

    Returns
    -------
    Subject

    Raises
    ------
    SubjectNotFoundError
        Unknown subject id.
    DataNotDownloadedError
        Nothing of the subject is on disk (names the download call); with
        ``LAION_FMRI_FETCH=1`` an empty subject is accepted (``get_betas``
        streams from the source).
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
    if not (root / layout.subject_glm_prefix(sub_id)).is_dir() and not fetch_enabled(None):
        raise DataNotDownloadedError(
            f"{sub_id} is not downloaded in {root}. Download it with "
            f"`{download_hint(sub_id)}` (or one session: `{download_hint(sub_id, 'ses-01')}`)."
        )
    return Subject(sub_id, root)


__all__ = ["Subject", "load_subject"]
