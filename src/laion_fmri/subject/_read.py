"""Session betas with trial filters: eager, averaged, or as a lazy dask stack.

All three read through :class:`laion_fmri.betas.SessionBetas`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri.betas import SessionBetas
from laion_fmri.errors import MissingDependencyError
from laion_fmri.subject._brain import BrainSpace
from laion_fmri.subject._files import SubjectFiles
from laion_fmri.subject._selection import Selection
from laion_fmri.subject._trials import STIMULI_FILTERS, Trials
from laion_fmri.vocab import DEFAULT_MASK_SOURCE

if TYPE_CHECKING:  # pragma: no cover
    from laion_fmri.remote import Store

AVERAGE_MODES = ("label",)


def check_read_args(stimuli: object, average: object, lazy: bool) -> None:
    """``ValueError`` for a bad ``stimuli``/``average``; the dask check for ``lazy``."""
    if stimuli is not None and stimuli not in STIMULI_FILTERS:
        raise ValueError(f"stimuli must be None, 'shared' or 'unique', not {stimuli!r}.")
    if average is not None and average not in AVERAGE_MODES:
        raise ValueError(f"average must be None or 'label', not {average!r}.")
    if lazy:
        require_dask()
        if average is not None:
            raise ValueError("average= is not supported with lazy=True; compute, then average.")


def read_session(
    reader: SessionBetas,
    trials: Trials,
    session: str,
    cols: np.ndarray | None,
    stimuli: str | None = None,
    average: str | None = None,
    cache: bool | None = None,
    store: Store | None = None,
    keep: bool = False,
) -> np.ndarray:
    """One session's betas, trial-filtered and optionally averaged over repeats.

    With ``store``, a session not on disk is streamed from it (``fetch=True``).
    """
    data = reader.read(session, cols, cache, store=store, keep=keep)
    rows = trials.rows(session, stimuli, data.shape[0])
    if average is not None:
        from laion_fmri.stats import average_repeats

        labels = trials.labels(session, data.shape[0])
        if rows is not None:
            data, labels = data[rows], labels[rows]
        data, _, _ = average_repeats(data, labels)
    elif rows is not None:
        data = data[rows]
    return np.ascontiguousarray(data, dtype=np.float32)


def load_session_betas(
    data_dir: str,
    subject: str,
    session: str,
    cols: np.ndarray | None = None,
    stimuli: str | None = None,
    cache: bool | None = None,
    mask_source: str = DEFAULT_MASK_SOURCE,
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
    mask_source : str
        Brain mask of the voxel axis.

    Returns
    -------
    numpy.ndarray
        ``(n_trials, n_cols)`` float32.

    Examples
    --------
    >>> load_session_betas("/data", "sub-03", "ses-01").dtype  # doctest: +SKIP
    dtype('float32')
    """
    files = SubjectFiles(Path(data_dir), subject)
    brain = BrainSpace(files, mask_source)
    reader = SessionBetas(data_dir, subject, brain.get, mask_source)
    return read_session(reader, Trials(files), session, cols, stimuli, cache=cache)


def _token(cols: np.ndarray | None, stimuli: str | None, mask_source: str) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(b"all" if cols is None else np.ascontiguousarray(cols).tobytes())
    h.update(f"{stimuli}/{mask_source}".encode())
    return h.hexdigest()


def require_dask() -> Any:
    """``dask.array``, or :class:`MissingDependencyError` naming the extra."""
    return MissingDependencyError.require("dask.array", "dask")


def stack_lazily(
    reader: SessionBetas,
    trials: Trials,
    data_dir: str | os.PathLike[str],
    selection: Selection,
    stimuli: str | None,
    cache: bool | None,
) -> Any:
    """A dask array over the selection's sessions, one chunk per session."""
    import dask

    da = require_dask()
    cols = selection.columns()
    subject = selection.subject_id
    token = _token(cols, stimuli, selection.mask_source)
    parts = []
    for s in selection.sessions:
        n_rows = reader.n_trials(s)
        rows = trials.rows(s, stimuli, n_rows)
        if rows is not None:
            n_rows = int(rows.size)
        task = dask.delayed(load_session_betas, pure=True)(
            str(data_dir), subject, s, cols, stimuli, cache, selection.mask_source,
            dask_key_name=f"laion-fmri-betas-{subject}-{s}-{token}",
        )
        parts.append(da.from_delayed(task, shape=(n_rows, selection.n_voxels), dtype=np.float32))
    return da.concatenate(parts, axis=0)


__all__ = [
    "AVERAGE_MODES",
    "check_read_args",
    "load_session_betas",
    "read_session",
    "require_dask",
    "stack_lazily",
]
