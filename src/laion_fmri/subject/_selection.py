"""What a call reads: sessions and brain voxels, decided once as a frozen :class:`Selection`.

The argument checks of ``session=``, ``roi=``, ``mask=``, ``nc_threshold=``
and ``mask_source=`` live here and in the subject's parts; ``get_betas``, the
noise ceilings, the torch and xarray adapters, splits and plotting all
receive the same :class:`Selection`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from laion_fmri.vocab import DEFAULT_MASK_SOURCE

if TYPE_CHECKING:  # pragma: no cover
    from laion_fmri.subject._brain import BrainSpace
    from laion_fmri.subject._noise import NoiseCeilings
    from laion_fmri.subject._rois import Rois
    from laion_fmri.subject._sessions import Sessions

ONE_VOXEL_SET = (
    "nc_threshold uses each session's own noise ceiling, so several sessions would keep "
    "different voxels. Pass one session, or a common mask, e.g. "
    "mask=sub.get_noise_ceiling(desc='Noiseceiling12rep') >= 5."
)


@dataclass(frozen=True, eq=False)
class Selection:
    """Sessions and brain voxels one call reads, decided once.

    Create with :meth:`laion_fmri.subject.Subject.select`.

    Parameters
    ----------
    subject_id : str
        Canonical subject id.
    sessions : tuple of str
        Canonical session ids, in the order asked for.
    single : bool
        ``True`` when the ``session=`` argument named one session.
    voxels : numpy.ndarray or None
        ``(n_brain,)`` read-only bool over brain-mask voxels shared by every
        session, or ``None`` for the whole brain.
    n_brain : int
        Number of brain-mask voxels (the length of ``voxels``).
    mask_source : str
        Brain mask the voxel axis comes from (see :data:`laion_fmri.vocab.MASK_SOURCES`).
    per_session : mapping, optional
        ``{session: voxels}`` when a per-session ``nc_threshold`` keeps
        different voxels in each session; then ``voxels`` is the part shared
        before the threshold.

    Examples
    --------
    >>> sel = sub.select("ses-01", roi="FFA1")  # doctest: +SKIP
    >>> sel.sessions, sel.n_voxels  # doctest: +SKIP
    (('ses-01',), 412)
    """

    subject_id: str
    sessions: tuple[str, ...]
    single: bool
    voxels: np.ndarray | None
    n_brain: int
    mask_source: str = DEFAULT_MASK_SOURCE
    per_session: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen all the way down: read-only arrays in a read-only mapping.
        object.__setattr__(self, "per_session", MappingProxyType(dict(self.per_session)))
        for arr in (self.voxels, *self.per_session.values()):
            if arr is not None:
                arr.setflags(write=False)

    @property
    def shared(self) -> bool:
        """``True`` when every session reads the same voxels."""
        return not self.per_session

    @property
    def n_voxels(self) -> int:
        """Voxels per trial (the shared selection's size).

        Raises
        ------
        ValueError
            When the sessions keep different voxels.
        """
        sel = self.voxels_for()
        return self.n_brain if sel is None else int(np.count_nonzero(sel))

    def voxels_for(self, session: str | None = None) -> np.ndarray | None:
        """Boolean selection over brain voxels for one session (``None`` = whole brain).

        Parameters
        ----------
        session : str, optional
            A session of the selection; without it, the selection every
            session shares.

        Returns
        -------
        numpy.ndarray or None

        Raises
        ------
        ValueError
            Without ``session`` when the sessions keep different voxels.
        """
        if self.per_session:
            if session is None:
                if len(self.per_session) > 1:
                    raise ValueError(ONE_VOXEL_SET)
                return next(iter(self.per_session.values()))
            return self.per_session[session]
        return self.voxels

    def columns(self, session: str | None = None) -> np.ndarray | None:
        """Sorted brain-voxel column indices of :meth:`voxels_for` (``None`` = all).

        Parameters
        ----------
        session : str, optional
            As for :meth:`voxels_for`.

        Returns
        -------
        numpy.ndarray or None
        """
        sel = self.voxels_for(session)
        return None if sel is None else np.flatnonzero(sel)


def check_mask(mask: object, n: int) -> np.ndarray:
    """``mask`` as a bool array over ``n`` brain voxels, or a ``ValueError`` saying what fits."""
    arr = np.asarray(mask)
    if arr.dtype != bool or arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"mask must be a 1-D boolean array of length {n} (one entry per brain-mask "
            f"voxel, see get_n_voxels()); got dtype {arr.dtype} and shape {arr.shape}."
        )
    return arr


def check_threshold(value: object) -> float:
    """A noise-ceiling threshold in percent, or a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"nc_threshold must be a number in percent (0-100), not {value!r}.")
    thr = float(value)
    if not np.isfinite(thr) or not 0 <= thr <= 100:
        raise ValueError(
            f"nc_threshold={value!r} is outside 0-100; noise ceilings are in percent."
        )
    return thr


class Selector:
    """Turns ``session``/``roi``/``mask``/``nc_threshold`` arguments into selections."""

    def __init__(
        self, sessions: Sessions, brain: BrainSpace, rois: Rois, nc: NoiseCeilings
    ) -> None:
        self._sessions = sessions
        self._brain = brain
        self._rois = rois
        self._nc = nc

    def voxels(
        self, roi: object, mask: object, nc_threshold: object = None, session: str | None = None
    ) -> np.ndarray | None:
        """Bool over brain voxels (a fresh array), or ``None`` for the whole brain."""
        if roi is not None and mask is not None:
            raise ValueError("roi and mask are mutually exclusive; pass one of them.")
        sel = None
        if roi is not None:
            sel = self._rois.mask(roi)  # type: ignore[arg-type]
        elif mask is not None:
            sel = check_mask(mask, self._brain.get().n_voxels).copy()
        if nc_threshold is None:
            return sel
        thr = check_threshold(nc_threshold)
        with np.errstate(invalid="ignore"):
            keep = self._nc.session(session) >= thr  # type: ignore[arg-type]
        return keep if sel is None else (sel & keep)

    def select(
        self,
        session: object,
        roi: object,
        mask: object,
        nc_threshold: float | None,
        one_voxel_set: bool,
    ) -> Selection:
        sessions, single = self._sessions.resolve(session)
        if nc_threshold is not None and one_voxel_set and len(sessions) > 1:
            raise ValueError(ONE_VOXEL_SET)
        base = self.voxels(roi, mask)
        per_session: dict[str, np.ndarray] = {}
        if nc_threshold is not None:
            check_threshold(nc_threshold)
            for s in sessions:
                per_session[s] = self.voxels(None, base, nc_threshold, s)  # type: ignore[assignment]
        brain = self._brain.get()
        return Selection(
            self._sessions.subject, tuple(sessions), single, base, brain.n_voxels,
            brain.mask_source, per_session,
        )


__all__ = ["ONE_VOXEL_SET", "Selection", "Selector", "check_mask", "check_threshold"]
