"""Voxel and session selection shared by the torch, xarray and plotting adapters.

Thin wrappers over the subject's own argument handling, so every adapter
accepts ``session``/``roi``/``mask``/``nc_threshold`` exactly as
:meth:`laion_fmri.subject.Subject.get_betas` does, plus the one rule the
adapters add: a per-session ``nc_threshold`` needs a single session, because
an adapter's voxel axis is shared by all its trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from laion_fmri.subject import Subject


def resolve_sessions(sub: Subject, session: object) -> list[str]:
    """The sessions a ``session=`` argument names (``"all"``, one, or a list), in order.

    Parameters
    ----------
    sub : Subject
        The subject.
    session : str, int, list or "all"
        As for :meth:`laion_fmri.subject.Subject.get_betas`.

    Returns
    -------
    list of str

    Raises
    ------
    SessionNotFoundError
        For an unknown session (the message lists the sessions on disk).

    Examples
    --------
    >>> resolve_sessions(sub, "all")  # doctest: +SKIP
    ['ses-01', 'ses-02', 'ses-03']
    """
    sessions, _ = sub.resolve_sessions(session)
    return list(sessions)


def voxel_selection(
    sub: Subject,
    sessions: Sequence[str],
    roi: object = None,
    mask: object = None,
    nc_threshold: float | None = None,
) -> np.ndarray | None:
    """Boolean selection over brain voxels shared by every session, or ``None`` (all).

    ``nc_threshold`` uses the per-session noise ceiling, so it is accepted for
    one session only: several sessions would each keep other voxels, and an
    item's betas must have one length.

    Parameters
    ----------
    sub : Subject
        The subject.
    sessions : sequence of str
        Sessions the selection is for.
    roi, mask, nc_threshold : optional
        As for :meth:`laion_fmri.subject.Subject.get_betas`.

    Returns
    -------
    numpy.ndarray or None
        ``(n_voxels,)`` bool, or ``None`` for the whole brain.

    Raises
    ------
    ValueError
        ``roi`` with ``mask``, a bad mask or threshold, or ``nc_threshold``
        with several sessions.
    RoiNotFoundError
        Unknown ROI or category.

    Examples
    --------
    >>> voxel_selection(sub, ["ses-01"], roi="FFA1").sum()  # doctest: +SKIP
    412
    """
    if nc_threshold is not None and len(sessions) > 1:
        raise ValueError(
            "nc_threshold uses each session's own noise ceiling, so several sessions would keep "
            "different voxels. Pass one session, or a common mask, e.g. "
            "mask=sub.get_noise_ceiling(desc='Noiseceiling12rep') >= 5."
        )
    return sub.voxel_selection(roi, mask, nc_threshold, sessions[0] if sessions else None)


def voxel_grid_indices(sub: Subject, sel: np.ndarray | None) -> np.ndarray:
    """``(n, 3)`` integer grid indices ``(i, j, k)`` of the selected brain voxels, voxel order.

    Parameters
    ----------
    sub : Subject
        The subject.
    sel : numpy.ndarray or None
        Boolean selection over brain voxels (``None`` = all).

    Returns
    -------
    numpy.ndarray
        ``int64`` array, one row per selected voxel.

    Examples
    --------
    >>> voxel_grid_indices(sub, None).shape == (sub.get_n_voxels(), 3)  # doctest: +SKIP
    True
    """
    flat = np.flatnonzero(sub.get_brain_mask())
    if sel is not None:
        flat = flat[sel]
    return np.column_stack(np.unravel_index(flat, sub.grid_shape)).astype(np.int64)


__all__ = ["resolve_sessions", "voxel_grid_indices", "voxel_selection"]
