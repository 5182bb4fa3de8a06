"""Apply a split to a subject's betas in one call (behind ``Subject.get_split``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from laion_fmri._docs import fill_doc
from laion_fmri.errors import CorruptFileError
from laion_fmri.splits._api import get_split_masks

if TYPE_CHECKING:  # pragma: no cover
    from laion_fmri._types import SubjectLike

ALL_SESSIONS = "all"


def _session_order(metadata: pd.DataFrame, sessions: Iterable[str]) -> list[str]:
    """``sessions`` in the order they appear in the subject's metadata."""
    wanted = set(sessions)
    order = [s for s in pd.unique(metadata["session"]) if s in wanted]
    if len(order) != len(wanted):
        missing = sorted(wanted - set(order))
        raise CorruptFileError(
            f"Betas were returned for {', '.join(missing)} but the subject's trial table has no "
            "rows for them; re-download the sessions' trial TSVs."
        )
    return order


def _session_trials(metadata: pd.DataFrame, session: str, n_rows: int) -> pd.DataFrame:
    trials = metadata[metadata["session"] == session]
    if len(trials) != n_rows:
        raise CorruptFileError(
            f"{session}: the betas have {n_rows} trials but the trial table has {len(trials)}; "
            "re-download the session's trial TSV and betas."
        )
    return trials


@fill_doc
def subject_split(
    sub: SubjectLike,
    name: str,
    pool: str | int | None = None,
    session: Any = ALL_SESSIONS,
    roi: Any = None,
    mask: Any = None,
    nc_threshold: float | None = None,
    variant_id: int = 0,
    ood_types: str | Iterable[str] | None = None,
    version: str | None = None,
    mask_source: str | None = None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Split a subject's single-trial betas into train and test sets.

    Parameters
    ----------
    sub : Subject
        A loaded subject.
    name : str
        Split name, e.g. ``"tau"`` (see :func:`laion_fmri.splits.list_splits`).
    pool : str or int, optional
        Split pool; ``None`` uses the subject's own pool (``sub.subject_id``).
        ``"shared"`` restricts both sides to shared images.
    %(session)s
    %(roi_mask)s
    %(nc_threshold_one)s
    variant_id : int
        Split variant (only ``0`` is published).
    ood_types : str or iterable of str, optional
        Only for ``name="ood"``: restrict the test side to these OOD types.
    version : str, optional
        Generation of the split files (:func:`laion_fmri.splits.list_versions`);
        ``None`` is the current one, ``"gen3"``.
    %(mask_source)s

    Returns
    -------
    X_train, X_test : numpy.ndarray
        ``(n_trials, n_voxels)`` betas of the train and test trials.
    trials_train, trials_test : pandas.DataFrame
        The matching rows of ``sub.metadata`` (global trial index kept).

    Raises
    ------
    SplitError
        For unknown split arguments.
    CorruptFileError
        If betas and trial table disagree in length.

    Examples
    --------
    >>> from laion_fmri import load_subject  # doctest: +SKIP
    >>> sub = load_subject("sub-03")  # doctest: +SKIP
    >>> X_train, X_test, trials_train, trials_test = subject_split(sub, "tau")  # doctest: +SKIP
    """
    pool = sub.subject_id if pool is None else pool
    # Same rule as the torch/xarray adapters: one voxel set for all rows.
    selection = sub.select(session, roi, mask, nc_threshold, one_voxel_set=True,
                           mask_source=mask_source)
    metadata = sub.metadata
    betas = sub.get_betas(session=list(selection.sessions), mask=selection.voxels_for(),
                          mask_source=selection.mask_source)
    blocks = [
        (betas[s], _session_trials(metadata, s, np.shape(betas[s])[0]))
        for s in _session_order(metadata, betas)
    ]
    trials = pd.concat([t for _, t in blocks]) if blocks else metadata.iloc[:0]
    train_mask, test_mask = get_split_masks(trials, name, pool, variant_id, ood_types, version)
    # Select per session so the full stacked matrix is never materialised.
    x_train, x_test, start = [], [], 0
    for block, part in blocks:
        stop = start + len(part)
        x_train.append(np.asarray(block[train_mask[start:stop]]))
        x_test.append(np.asarray(block[test_mask[start:stop]]))
        start = stop
    n_voxels = np.shape(blocks[0][0])[1] if blocks else 0
    empty = np.zeros((0, n_voxels), dtype=np.float32)
    return (
        np.concatenate(x_train, axis=0) if x_train else empty,
        np.concatenate(x_test, axis=0) if x_test else empty,
        trials[train_mask],
        trials[test_mask],
    )


__all__ = [
    "ALL_SESSIONS",
    "subject_split",
]
