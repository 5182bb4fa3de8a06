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

from laion_fmri import layout
from laion_fmri._docs import fill_doc
from laion_fmri._types import OneSession, PathArg, RoiArg
from laion_fmri.betas import SessionBetas
from laion_fmri.config import get_data_dir
from laion_fmri.errors import DataNotDownloadedError
from laion_fmri.subject._brain import BrainSpace, _Brain
from laion_fmri.subject._files import SubjectFiles
from laion_fmri.subject._noise import NoiseCeilings
from laion_fmri.subject._read import check_read_args, read_session, stack_lazily
from laion_fmri.subject._rois import Rois
from laion_fmri.subject._selection import Selection, Selector
from laion_fmri.subject._sessions import Sessions
from laion_fmri.subject._trials import Trials
from laion_fmri.vocab import DEFAULT_MASK_SOURCE, download_hint

if TYPE_CHECKING:  # pragma: no cover
    import dask.array
    import pandas as pd
    import xarray

    from laion_fmri.alignment import (
        SubjectCaptions,
        SubjectEmbeddings,
        SubjectImages,
        SubjectSegmentations,
    )
    from laion_fmri.torch import SubjectDataset



def _namespace(cls_name: str, doc: str) -> Any:
    """A property building ``laion_fmri.alignment.<cls_name>(subject)`` on access."""

    def get(sub: Subject) -> Any:
        import laion_fmri.alignment

        return getattr(laion_fmri.alignment, cls_name)(sub)

    get.__doc__ = f"{doc} (:class:`laion_fmri.alignment.{cls_name}`)."
    return property(get)


@fill_doc
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
    >>> load_subject("sub-03").get_betas(session="ses-01", roi="FFA1").shape  # doctest: +SKIP
    (1044, 412)
    """

    def __init__(self, subject_id: str, data_dir: str | os.PathLike[str]) -> None:
        self._subject = subject_id
        self._root = Path(data_dir)
        files = SubjectFiles(self._root, subject_id)
        self._sessions = Sessions(files)
        self._brain = BrainSpace(files, DEFAULT_MASK_SOURCE)
        self._trials = Trials(files)
        self._rois = Rois(files, self._brain)
        self._nc = NoiseCeilings(files, self._brain)
        self._betas = SessionBetas(self._root, subject_id, self._brain.get, DEFAULT_MASK_SOURCE)
        self._selector = Selector(self._sessions, self._brain, self._rois, self._nc)

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

    @property
    def betas_reader(self) -> SessionBetas:
        """The reader behind :meth:`get_betas` (:class:`laion_fmri.betas.SessionBetas`)."""
        return self._betas

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

    def _load_brain(self) -> _Brain:
        return self._brain.get()

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4)`` voxel-to-scanner (mm) transform of the beta grid."""
        return self._brain.get().affine.copy()

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Spatial shape of the beta grid, ``(x, y, z)``."""
        return self._brain.get().grid_shape

    def get_brain_mask(self) -> np.ndarray:
        """Flat boolean brain mask over the grid (C order).

        Returns
        -------
        numpy.ndarray
            bool, ``prod(grid_shape)`` entries.
        """
        return self._brain.get().flat.copy()

    def get_n_voxels(self) -> int:
        """Number of brain-mask voxels (the width of whole-brain betas).

        Returns
        -------
        int
        """
        return self._brain.get().n_voxels

    def get_voxel_coordinates(self, roi: RoiArg = None, mask: np.ndarray | None = None) -> np.ndarray:
        """Scanner coordinates (mm) of the selected brain voxels, voxel order.

        Parameters
        ----------
        %(roi_mask)s

        Returns
        -------
        numpy.ndarray
            ``(n_selected, 3)`` float64.
        """
        return self._brain.coordinates(self.voxel_selection(roi, mask))

    def to_nifti(self, values: np.ndarray, path: PathArg, roi: RoiArg = None,
                 mask: np.ndarray | None = None) -> Path:
        """Write per-voxel values back onto the grid as a float32 NIfTI (0 elsewhere).

        Parameters
        ----------
        values : numpy.ndarray
            ``(n_selected,)`` -> 3-D image; ``(k, n_selected)`` -> 4-D image (any
            other length of the last axis is a ``ValueError``).
        path : str or os.PathLike
            Output ``.nii`` / ``.nii.gz``.
        %(roi_mask)s

        Returns
        -------
        Path
        """
        return self._brain.to_nifti(values, path, self.voxel_selection(roi, mask))

    def get_available_rois(self, category: str | None = None) -> list[str]:
        """ROI names on disk, sorted; optionally only one category's.

        Parameters
        ----------
        category : str, optional
            Only ROIs of this category (an unknown one is a ``RoiNotFoundError``).

        Returns
        -------
        list of str
        """
        return self._rois.names(category)

    def get_available_categories(self) -> list[str]:
        """ROI categories on disk, sorted.

        Returns
        -------
        list of str
        """
        return list(self._rois.index().categories)

    def get_roi_mask(self, query: str | Sequence[str]) -> np.ndarray:
        """Boolean mask over brain voxels of an ROI query (union).

        Parameters
        ----------
        %(roi_query)s

        Returns
        -------
        numpy.ndarray
            ``(n_voxels,)`` bool.
        """
        return self._rois.mask(query)

    def get_roi_masks(self, queries: Sequence[str]) -> dict[Any, np.ndarray]:
        """One mask per query, ``{query: (n_voxels,) bool}`` (a list query becomes a tuple key).

        Parameters
        ----------
        queries : list
            Each item is a query for :meth:`get_roi_mask`.

        Returns
        -------
        dict
        """
        return self._rois.masks(queries)

    def get_roi_data(self, query: str | Sequence[str], format: str = "volume", hemi: str = "all",
                     ) -> dict[str, Any]:
        """ROI masks in volume, surface (GIFTI) or FreeSurfer-label form.

        Parameters
        ----------
        %(roi_query)s
        format : {"volume", "func.gii", "label"}
            Bool over brain voxels; per-hemisphere bool vertex masks; per-hemisphere vertex indices.
        hemi : {"L", "R", "all"}
            Hemispheres for the surface formats (ignored for ``volume``).

        Returns
        -------
        dict
            ``{roi: mask}`` for volume, ``{roi: {hemi: array}}`` otherwise.
        """
        return self._rois.data(query, format, hemi)

    def voxel_selection(self, roi: object, mask: object, nc_threshold: object = None,
                        session: str | None = None) -> np.ndarray | None:
        """Boolean selection over brain-mask voxels, as :meth:`get_betas` applies it.

        Parameters
        ----------
        %(roi_mask)s
        nc_threshold : float, optional
            Also keep only voxels whose noise ceiling in ``session`` is at least this (percent).
        session : str, optional
            Canonical session id whose noise ceiling ``nc_threshold`` uses.

        Returns
        -------
        numpy.ndarray or None
            ``(n_voxels,)`` bool, or ``None`` when nothing narrows the brain.
        """
        return self._selector.voxels(roi, mask, nc_threshold, session)

    def select(self, session: object = "all", roi: RoiArg = None, mask: np.ndarray | None = None,
               nc_threshold: float | None = None, one_voxel_set: bool = False) -> Selection:
        """Decide once which sessions and voxels a read covers.

        Parameters
        ----------
        %(session)s
        %(roi_mask)s
        %(nc_threshold)s
        one_voxel_set : bool
            Require one voxel set for every session (the adapters' rule), so
            ``nc_threshold`` with several sessions is a ``ValueError``.

        Returns
        -------
        Selection
        """
        return self._selector.select(session, roi, mask, nc_threshold, one_voxel_set)

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
        sel = self.select(session, roi, mask, nc_threshold, one_voxel_set=lazy)
        if lazy:
            return stack_lazily(self._betas, self._trials, self._root, sel, stimuli, cache)
        read = partial(read_session, self._betas, self._trials, stimuli=stimuli, average=average)
        out = {s: read(s, sel.columns(s), cache=cache) for s in sel.sessions}
        return out[sel.sessions[0]] if sel.single else out

    def get_noise_ceiling(self, session: object = None, desc: str | Sequence[str] | None = None,
                          roi: RoiArg = None, mask: np.ndarray | None = None,
                          ) -> np.ndarray | dict[str, np.ndarray]:
        """Noise ceiling in percent (0-100) per brain voxel.

        Parameters
        ----------
        session : str, int or list, optional
            Per-session map(s). Exactly one of ``session`` / ``desc`` (else ``ValueError``).
        desc : str or list of str, optional
            Cross-session map, e.g. ``"Noiseceiling12rep"``.
        %(roi_mask)s

        Returns
        -------
        numpy.ndarray or dict
            ``(n_selected,)`` float32; a dict for a list (or ``session="all"``).
        """
        return self._nc.get(self._sessions, session, desc, self.voxel_selection(roi, mask))

    images: SubjectImages = _namespace("SubjectImages", "Stimulus images by global trial index")
    embeddings: SubjectEmbeddings = _namespace("SubjectEmbeddings", "Embeddings by global trial index")
    captions: SubjectCaptions = _namespace("SubjectCaptions", "Captions by global trial index")
    segmentations: SubjectSegmentations = _namespace("SubjectSegmentations", "Object masks by trial")

    def get_split(self, name: str, *args: Any, **kwargs: Any
                  ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.DataFrame]:
        """Published train/test split ``(X_train, X_test, trials_train, trials_test)``.

        Parameters
        ----------
        name : str
            Split name, e.g. ``"tau"``.
        *args, **kwargs
            ``pool``, ``session``, ``roi``, ... as for :func:`laion_fmri.splits.subject_split`.

        Returns
        -------
        tuple
            What :func:`laion_fmri.splits.subject_split` returns.
        """
        from laion_fmri.splits._subject import subject_split

        return subject_split(self, name, *args, **kwargs)

    def to_torch_dataset(self, **kwargs: Any) -> SubjectDataset:
        """A PyTorch dataset over this subject (:class:`laion_fmri.torch.SubjectDataset`).

        Parameters
        ----------
        **kwargs
            ``session``, ``roi``, ``features``, ... as for the dataset.

        Returns
        -------
        laion_fmri.torch.SubjectDataset
        """
        from laion_fmri.torch import SubjectDataset

        return SubjectDataset(self, **kwargs)

    def to_xarray(self, **kwargs: Any) -> xarray.DataArray:
        """Betas as a ``(trial, voxel)`` ``xarray.DataArray`` (:func:`laion_fmri.xr.to_xarray`).

        Parameters
        ----------
        **kwargs
            ``session``, ``roi``, ``lazy``, ... as for :func:`laion_fmri.xr.to_xarray`.

        Returns
        -------
        xarray.DataArray
        """
        from laion_fmri.xr import to_xarray

        return to_xarray(self, **kwargs)


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
    if not (root / layout.subject_glm_prefix(sub_id)).is_dir():
        raise DataNotDownloadedError(
            f"{sub_id} is not downloaded in {root}. Download it with "
            f"`{download_hint(sub_id)}` (or one session: `{download_hint(sub_id, 'ses-01')}`)."
        )
    return Subject(sub_id, root)


__all__ = ["Subject", "load_subject"]
