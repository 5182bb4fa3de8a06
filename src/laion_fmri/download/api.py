"""Public download functions: ``download`` and ``build_plan`` (also re-exports the derivative
downloads and ``verify`` from their private modules)."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, overload

from laion_fmri import layout
from laion_fmri.download._common import _data_dir, _with_sidecars
from laion_fmri.download._public import (
    download_captions,
    download_embeddings,
    download_segmentations,
    fetch_public_keys,
)
from laion_fmri.download._scopes import listing_prefixes, pinned_anatomical, raw_filters_for
from laion_fmri.download._verify import VerifyReport, verify
from laion_fmri.download.plan import (
    Filters,
    Plan,
    check_filter_values,
    select_subject,
    subject_prefixes,
    validate_n_jobs,
)
from laion_fmri.download.transfer import (
    DEFAULT_CONNECTIONS,
    DownloadReport,
    fetch_objects,
)
from laion_fmri.download_scopes import plan_scopes
from laion_fmri.errors import (
    FilterError,
    NoMatchingDataError,
    SubjectNotFoundError,
)
from laion_fmri.licenses import ensure_dataset_license
from laion_fmri.stores import ObjectInfo, Store, open_store


def _wanted_subjects(subject: object) -> list[str] | None:
    """Canonical ids asked for (``None`` for ``"all"``); malformed values raise."""
    if isinstance(subject, str) and subject.strip().lower() == "all":
        return None
    values = subject if isinstance(subject, (list, tuple)) else [subject]
    return list(dict.fromkeys(layout.normalize_subject(v) for v in values))


def _check_listed(wanted: Sequence[str], available: Sequence[str], store: Store) -> None:
    for sub in wanted:
        if sub not in available:
            raise SubjectNotFoundError(
                f"{sub} is not in {store.url}; subjects there: {', '.join(available) or 'none'}."
            )


def _subjects(subject: object, store: Store) -> list[str]:
    from laion_fmri.discovery import _subjects as listed

    wanted = _wanted_subjects(subject)
    available = listed(store)
    if wanted is None:
        if not available:
            raise NoMatchingDataError(f"No subjects found in {store.url}.")
        return available
    _check_listed(wanted, available, store)
    return wanted


def _no_match_message(subjects: Sequence[str], filters: Filters, store: Store) -> str:
    from laion_fmri.discovery import _sessions

    hints = []
    for sub in subjects[:3]:
        sessions = [s for s in _sessions(store, sub) if not layout.is_held_out(s)]
        hints.append(f"{sub}: {', '.join(sessions) or 'no sessions'}")
    held = [f"ses-{v}" for v in filters.ses or () if layout.is_held_out(f"ses-{v}")]
    note = (f" {', '.join(held)} {'is' if len(held) == 1 else 'are'} held out: withheld from "
            "public download." if held else "")
    return (
        f"No objects in {store.url} for {', '.join(subjects)} match {filters.describe()}."
        f"{note} Available sessions - {'; '.join(hints)} (plus ses='averages' for "
        "subject-level maps)."
    )


def build_plan(
    subjects: Sequence[str],
    filters: Filters,
    store: Store,
    include_stimuli: bool = False,
    *,
    include_anatomical: bool = False,
    include_freesurfer: bool = False,
    include_raw: bool = False,
) -> Plan:
    """List the source and select what a download would fetch (no writes).

    Parameters
    ----------
    subjects : sequence of str
        Canonical subject ids.
    filters : Filters
        Normalised filters.
    store : Store
        The source.
    include_stimuli : bool
        Add the public stimulus derivatives.
    include_anatomical, include_freesurfer : bool
        Add the subjects' anatomical folder / FreeSurfer tree, whole.
    include_raw : bool
        Add the raw BIDS tree, filtered by ``ses``, ``suffix``, ``extension``.

    Returns
    -------
    Plan
        The anatomical brain mask of every subject whose betas it fetches
        is in it whatever the filters.

    Raises
    ------
    NoMatchingDataError
        When no subject object matched.

    Examples
    --------
    >>> from laion_fmri.stores import open_store
    >>> build_plan(["sub-03"], Filters.from_args(ses="averages"), open_store())  # doctest: +SKIP
    """
    plan = Plan()
    listed_keys: list[str] = []
    raw_filters = raw_filters_for(filters.ses, filters.suffix, filters.extension)
    scopes = {"include_anatomical": include_anatomical, "include_freesurfer": include_freesurfer,
              "include_raw": include_raw and raw_filters is not None}
    prefixes = [(sub, p, False) for sub in subjects for p in subject_prefixes(sub, filters)]
    prefixes += [(sub, p, True) for sub in subjects for p in listing_prefixes(sub, **scopes)]
    # Listings are latency-bound: list every prefix (and the root) at once, keep the order.
    with ThreadPoolExecutor(max_workers=min(8, len(prefixes) + 1)) as pool:
        root_files = pool.submit(store.list_files, "")
        listings = list(pool.map(lambda sp: list(store.list(sp[1])), prefixes))
        for obj in root_files.result():
            if obj.key in layout.DATASET_LEVEL_KEYS:
                plan.add(obj)
    for sub in subjects:
        def found(scope: bool, sub: str = sub) -> list[ObjectInfo]:
            return list(itertools.chain.from_iterable(
                objs for (owner, _, is_scope), objs in zip(prefixes, listings, strict=True)
                if owner == sub and is_scope == scope
            ))

        listing, scoped = found(False), found(True)
        listed_keys += [o.key for o in listing]
        if scopes["include_raw"]:
            listed_keys += [o.key for o in scoped if o.key.startswith(layout.raw_subject_prefix(sub))]
        select_subject(sub, listing, filters, plan)
        extra = plan_scopes(sub, scoped, raw_filters=raw_filters, **scopes)
        plan.n_matched += len(extra)
        for obj in extra + pinned_anatomical(sub, scoped, plan.keys):
            plan.add(obj)
    check_filter_values(filters, listed_keys, f"{', '.join(subjects)} in {store.url}")
    if plan.n_matched == 0:
        raise NoMatchingDataError(_no_match_message(subjects, filters, store))
    if include_stimuli:
        wanted = _with_sidecars(layout.public_stimulus_keys())
        stimuli = {o.key: o for o in store.list_files(layout.STIMULI_ROOT)}
        for key, obj in stimuli.items():
            if key in wanted:
                plan.add(obj)
        # The access service lists gated files elsewhere: size unknown (0) here.
        plan.gated = [stimuli.get(k, ObjectInfo(k, 0, None, None))
                      for k in layout.GATED_STIMULUS_KEYS]
    return plan


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise FilterError(f"{name}= takes True or False, got {value!r}.")
    return value


@overload
def download(
    subject: object,
    ses: object = ...,
    task: object = ...,
    space: object = ...,
    desc: object = ...,
    stat: object = ...,
    suffix: object = ...,
    extension: object = ...,
    include_stimuli: bool = ...,
    n_jobs: int | None = ...,
    datatype: object = ...,
    include: object = ...,
    exclude: object = ...,
    dry_run: Literal[False] = ...,
    progress: bool = ...,
    data_dir: str | os.PathLike[str] | None = ...,
    store: Store | None = ...,
    include_anatomical: bool = ...,
    include_freesurfer: bool = ...,
    include_raw: bool = ...,
) -> DownloadReport: ...
@overload
def download(
    subject: object,
    ses: object = ...,
    task: object = ...,
    space: object = ...,
    desc: object = ...,
    stat: object = ...,
    suffix: object = ...,
    extension: object = ...,
    include_stimuli: bool = ...,
    n_jobs: int | None = ...,
    datatype: object = ...,
    include: object = ...,
    exclude: object = ...,
    *,
    dry_run: Literal[True],
    progress: bool = ...,
    data_dir: str | os.PathLike[str] | None = ...,
    store: Store | None = ...,
    include_anatomical: bool = ...,
    include_freesurfer: bool = ...,
    include_raw: bool = ...,
) -> Plan: ...
def download(
    subject: object,
    ses: object = None,
    task: object = None,
    space: object = None,
    desc: object = None,
    stat: object = None,
    suffix: object = None,
    extension: object = None,
    include_stimuli: bool = False,
    n_jobs: int | None = None,
    datatype: object = None,
    include: object = None,
    exclude: object = None,
    dry_run: bool = False,
    progress: bool = True,
    data_dir: str | os.PathLike[str] | None = None,
    store: Store | None = None,
    include_anatomical: bool = False,
    include_freesurfer: bool = False,
    include_raw: bool = False,
) -> DownloadReport | Plan:
    """Download one or all subjects' files, filtered by BIDS entities.

    Dataset-level files (``dataset_description.json``, ``participants.*``,
    ``README``) always come; the brain-mask maps are pinned when ``ses`` names
    a session, and the anatomical brain mask (the default voxel axis) comes
    with every subject whose betas are fetched; ROI masks and localizer maps
    are part of a subject's files; ROI masks come along whatever ``ses`` says;
    held-out sessions
    (``ses-31`` .. ``ses-34``) are skipped with one summary line. Files already
    downloaded and verified are skipped without any GET.

    Parameters
    ----------
    subject : str, int or list
        ``"sub-03"``, ``"03"``, ``3``, a list of those, or ``"all"``.
    ses : str or list, optional
        Sessions (``"ses-01"`` or ``"01"``); ``"averages"`` selects the
        subject-level maps. Strict: other sessions are excluded.
    task, space, desc, stat : str or list, optional
        Entity values; permissive (keys without the entity pass).
    suffix, extension : str or list, optional
        Exact file suffix (``statmap``) / extension (``nii.gz``).
    include_stimuli : bool
        Also fetch the public stimulus derivatives and run
        :func:`laion_fmri.download.download_stimuli`; the data-use agreement
        is checked before anything is transferred.
    n_jobs : int, optional
        Files transferred at once (default 32). More is more parallel. All
        requests share one budget of ``max(32, n_jobs)`` connections: a large
        file is fetched as parallel byte ranges over many of them.
    datatype : str or list, optional
        ``func``/``anat``/``dwi``/``fmap``; also lists the raw BIDS tree.
    include, exclude : str or list, optional
        Shell globs on the key.
    dry_run : bool
        Return the :class:`~laion_fmri.download.plan.Plan` without writing anything.
    progress : bool
        Show a progress display (only on a terminal).
    data_dir : str or Path, optional
        Target directory (the configured one by default).
    store : Store, optional
        Any :class:`~laion_fmri.stores.Store` to download from (the configured
        source by default), the way an HTTP client takes a transport.
    include_anatomical : bool
        Also the subjects' anatomical folder (T1w, T2w and brain masks at
        both resolutions), whole: the filters do not apply to it.
    include_freesurfer : bool
        Also the subjects' FreeSurfer reconstruction, whole.
    include_raw : bool
        Also the raw BIDS tree, filtered by ``ses``, ``suffix`` and
        ``extension`` (for runs, echoes and parts use :func:`download_raw`).

    Returns
    -------
    DownloadReport or Plan
        The report (``downloaded``, ``skipped``, ``failed``, ``bytes``,
        ``seconds``); the plan when ``dry_run``.

    Raises
    ------
    DataDirNotSetError
        If no data directory is configured.
    SubjectNotFoundError, SessionNotFoundError, FilterError
        For malformed arguments, or a subject the source does not have.
    NoMatchingDataError
        When the filters match nothing, or a filter value appears on no file
        (the message lists the values that exist).
    LicenseNotAcceptedError
        When the CC0 notice was not accepted (see ``laion-fmri accept-license``),
        or ``include_stimuli`` without the data-use agreement.
    SourceUnavailableError
        When the source cannot be listed.

    Examples
    --------
    >>> from laion_fmri.download import download
    >>> download(subject="sub-03", ses="ses-01", n_jobs=4)  # doctest: +SKIP
    Downloaded 18 file(s) (11.9 GB) in 95.2 s; 0 already up to date.
    """
    root = _data_dir(data_dir)
    n_jobs = validate_n_jobs(n_jobs) if n_jobs is not None else None
    filters = Filters.from_args(ses, task, space, desc, stat, suffix, extension, datatype,
                                include, exclude)
    scopes = {"include_anatomical": _flag("include_anatomical", include_anatomical),
              "include_freesurfer": _flag("include_freesurfer", include_freesurfer),
              "include_raw": _flag("include_raw", include_raw)}
    store = store if store is not None else open_store()
    wanted = _wanted_subjects(subject)
    if wanted is None:
        subjects = _subjects(subject, store)
        planned = None
    else:
        from laion_fmri.discovery import _subjects as listed

        # Listing is latency-bound: list the subjects and the plan's prefixes at
        # once (nothing is written); the subject check still comes first.
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="laion-fmri-list")
        available = pool.submit(listed, store)
        planned = pool.submit(build_plan, wanted, filters, store, include_stimuli, **scopes)
        pool.shutdown(wait=False)
        try:
            _check_listed(wanted, available.result(), store)
        except BaseException:
            planned.cancel()
            with contextlib.suppress(Exception):
                planned.result()
            raise
        subjects = wanted
    if not dry_run:
        # Every agreement is settled before any byte moves (DATASET.md 8.1).
        ensure_dataset_license(root)
        if include_stimuli:
            from laion_fmri.download.stimuli import check_stimulus_access

            check_stimulus_access(root)
    plan = planned.result() if planned is not None else build_plan(subjects, filters, store,
                                                                    include_stimuli, **scopes)
    if line := plan.held_out_summary():
        print(line)
    if dry_run:
        gated = (f" plus {len(plan.gated)} stimulus file(s) that need the data-use agreement"
                 if plan.gated else "")
        print(f"Dry run: {plan} selected from {store.url}{gated}; nothing was written.")
        return plan
    report = fetch_objects(plan.objects, store, root, n_jobs=n_jobs, progress=progress)
    report.held_out = [o.key for o in plan.held_out]
    print(report)
    if include_stimuli:
        from laion_fmri.download.stimuli import download_stimuli

        result = download_stimuli(data_dir=root, n_jobs=n_jobs or DEFAULT_CONNECTIONS,
                                  progress=progress)
        if isinstance(result, DownloadReport):
            report.merge(result)
    return report


# Documented (and pickled) under their historical public home.
for _moved in (VerifyReport,):
    _moved.__module__ = __name__


__all__ = [
    "VerifyReport",
    "build_plan",
    "download",
    "download_captions",
    "download_embeddings",
    "download_segmentations",
    "fetch_public_keys",
    "verify",
]
