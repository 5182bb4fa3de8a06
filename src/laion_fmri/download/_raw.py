"""``download_raw``: one subject's raw BIDS tree, filtered by session, run, echo and part."""

from __future__ import annotations

import os
from typing import Literal, overload

from laion_fmri import layout
from laion_fmri.download.api import _check_listed, _data_dir
from laion_fmri.download.plan import Plan, validate_n_jobs
from laion_fmri.download.transfer import DownloadReport, fetch_objects
from laion_fmri.download_scopes import plan_download_raw
from laion_fmri.licenses import ensure_dataset_license
from laion_fmri.stores import Store, open_store


@overload
def download_raw(subject: object, ses: object = ..., run: object = ..., echo: object = ...,
                 part: object = ..., suffix: object = ..., extension: object = ...,
                 n_jobs: int | None = ..., dry_run: Literal[False] = ..., progress: bool = ...,
                 data_dir: str | os.PathLike[str] | None = ...,
                 store: Store | None = ...) -> DownloadReport: ...
@overload
def download_raw(subject: object, ses: object = ..., run: object = ..., echo: object = ...,
                 part: object = ..., suffix: object = ..., extension: object = ...,
                 n_jobs: int | None = ..., *, dry_run: Literal[True], progress: bool = ...,
                 data_dir: str | os.PathLike[str] | None = ...,
                 store: Store | None = ...) -> Plan: ...
def download_raw(
    subject: object,
    ses: object = None,
    run: object = None,
    echo: object = None,
    part: object = None,
    suffix: object = None,
    extension: object = None,
    n_jobs: int | None = None,
    dry_run: bool = False,
    progress: bool = True,
    data_dir: str | os.PathLike[str] | None = None,
    store: Store | None = None,
) -> DownloadReport | Plan:
    """Download one subject's raw BIDS tree (``<sub>/``), filtered like the reference.

    ``ses`` is strict (a session-less raw file comes only without ``ses``);
    ``run``, ``echo`` and ``part`` reject files carrying another value and
    keep files without the entity, so ``run=1, echo=2`` still brings run 1's
    events table and the session's field maps. Held-out sessions never come.
    Transfers are resumable and verified like :func:`download`'s.

    Parameters
    ----------
    subject : str or int
        One subject (``"sub-03"``, ``"03"``, ``3``).
    ses : str, int or list, optional
        Sessions (``"ses-01"``, ``"01"``, ``1``).
    run, echo : int, str or list, optional
        Runs and echoes (``1``, ``"01"``, ``"run-01"``).
    part : str or list, optional
        ``"mag"`` and/or ``"phase"``.
    suffix, extension : str or list, optional
        Exact suffix (``bold``, ``sbref``, ``events``) / extension (``nii.gz``).
    n_jobs : int, optional
        Files transferred at once (default 32).
    dry_run : bool
        Return the :class:`~laion_fmri.download.Plan` without writing anything.
    progress : bool
        Show a progress display (only on a terminal).
    data_dir : str or Path, optional
        Target directory (the configured one by default).
    store : Store, optional
        The source (the configured one by default).

    Returns
    -------
    DownloadReport or Plan
        The report; the plan when ``dry_run``.

    Raises
    ------
    SubjectNotFoundError
        For a malformed subject or one the source does not have.
    FilterError, SessionNotFoundError
        For malformed filter values.
    NoMatchingDataError
        When the source has no raw data for the subject or none passes the
        filters (the message lists the values that exist).
    LicenseNotAcceptedError
        When the CC0 notice was not accepted.

    Examples
    --------
    >>> from laion_fmri.download import download_raw
    >>> download_raw("sub-03", ses="ses-01", run=1, echo=2, part="mag")  # doctest: +SKIP
    """
    from laion_fmri.discovery import _subjects as listed

    root = _data_dir(data_dir)
    n_jobs = validate_n_jobs(n_jobs) if n_jobs is not None else None
    sub = layout.normalize_subject(subject)
    store = store if store is not None else open_store()
    _check_listed([sub], listed(store), store)
    plan = Plan()
    for obj in plan_download_raw(sub, store.list(layout.raw_subject_prefix(sub)),
                                 ses, run, echo, part, suffix, extension):
        plan.add(obj)
    plan.n_matched = len(plan.objects)
    if dry_run:
        print(f"Dry run: {plan} of raw data selected from {store.url}; nothing was written.")
        return plan
    ensure_dataset_license(root)
    report = fetch_objects(plan.objects, store, root, n_jobs=n_jobs, progress=progress)
    print(report)
    return report


__all__ = ["download_raw"]
