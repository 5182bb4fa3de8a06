"""Public download functions: ``download``, ``download_embeddings`` ... and ``verify``."""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from laion_fmri import layout
from laion_fmri.config import get_data_dir
from laion_fmri.download._content import OPAQUE_ETAG, ContentRule, digest_file, mismatch
from laion_fmri.download._scopes import listing_prefixes, pinned_anatomical, raw_filters_for
from laion_fmri.download.manifest import Manifest
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
    data_dir_lock,
    fetch_objects,
)
from laion_fmri.download_scopes import plan_scopes
from laion_fmri.errors import (
    AccessDeniedError,
    DataNotFoundError,
    FilterError,
    NoMatchingDataError,
    SourceUnavailableError,
    SubjectNotFoundError,
    UnsafeKeyError,
)
from laion_fmri.licenses import ensure_dataset_license
from laion_fmri.stores import ObjectInfo, Store, open_store


def _data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    root = Path(get_data_dir(data_dir)).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(
            f"The data directory {root} does not exist. Create it (mkdir -p {root}) and run "
            "`laion-fmri config --data-dir DIR` again."
        )
    return root


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


def _with_sidecars(keys: Iterable[str]) -> set[str]:
    keys = set(keys)
    return keys | {layout.sidecar_key(k) for k in keys}


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


def fetch_public_keys(
    keys: Iterable[str], what: str, data_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 4, progress: bool = True,
) -> DownloadReport:
    """Fetch named public keys (CC0 stimulus derivatives) after the license check.

    JSON sidecars of the keys come along when the source has them.

    Parameters
    ----------
    keys : iterable of str
        Keys under ``stimuli/``.
    what : str
        What the files are, for messages.
    data_dir : str or Path, optional
        Target directory.
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show a progress display.

    Returns
    -------
    DownloadReport

    Raises
    ------
    DataNotFoundError
        If a key is not in the source.

    Examples
    --------
    >>> fetch_public_keys([layout.CAPTIONS_KEY], "Captions")  # doctest: +SKIP
    """
    root = _data_dir(data_dir)
    n_jobs = validate_n_jobs(n_jobs)
    ensure_dataset_license(root)
    store = open_store()
    keys = list(keys)
    listed = {o.key: o for o in store.list_files(layout.STIMULI_ROOT)}
    for key in keys:
        if key not in listed:
            raise DataNotFoundError(
                f"{what} file {key!r} was not found in {store.url}. Has it been uploaded yet?"
            )
    # JSON sidecars (provenance) come along when the source has them.
    objects = [listed[k] for k in sorted(_with_sidecars(keys)) if k in listed]
    report = fetch_objects(objects, store, root, n_jobs=n_jobs, progress=progress)
    print(report)
    return report


def download_embeddings(
    models: str | Sequence[str] = "all",
    data_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 4,
    progress: bool = True,
) -> DownloadReport:
    """Download stimulus embeddings (CLIP, DINOv2, PEcore, SigLIP2; CC0).

    Parameters
    ----------
    models : str or list of str
        ``"all"`` or model names (case-insensitive).
    data_dir : str or Path, optional
        Target directory.
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show a progress display.

    Returns
    -------
    DownloadReport

    Raises
    ------
    DataNotFoundError
        For an unknown model or a file missing from the source.

    Examples
    --------
    >>> download_embeddings(["CLIP"])  # doctest: +SKIP
    """
    by_lower = {m.lower(): m for m in layout.EMBEDDING_MODELS}
    wanted = [models] if isinstance(models, str) else list(models)
    if any(isinstance(m, str) and m.lower() == "all" for m in wanted):
        names = list(layout.EMBEDDING_MODELS)
    else:
        names = []
        for m in wanted:
            if not isinstance(m, str) or m.lower() not in by_lower:
                raise DataNotFoundError(
                    f"No embeddings for model {m!r}; available: "
                    f"{', '.join(layout.EMBEDDING_MODELS)} (or 'all')."
                )
            names.append(by_lower[m.lower()])
    keys = [layout.embeddings_key(m) for m in dict.fromkeys(names)]
    return fetch_public_keys(keys, "Embeddings", data_dir, n_jobs, progress)


def download_segmentations(
    data_dir: str | os.PathLike[str] | None = None, n_jobs: int = 4, progress: bool = True
) -> DownloadReport:
    """Download the object segmentations of the shared images and their table (CC0).

    Parameters
    ----------
    data_dir : str or Path, optional
        Target directory.
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show a progress display.

    Returns
    -------
    DownloadReport

    Raises
    ------
    DataNotFoundError
        If the files are missing from the source.

    Examples
    --------
    >>> download_segmentations()  # doctest: +SKIP
    """
    keys = [layout.SEGMENTATIONS_KEY, layout.SEGMENTATIONS_METADATA_KEY]
    return fetch_public_keys(keys, "Segmentation", data_dir, n_jobs, progress)


def download_captions(
    data_dir: str | os.PathLike[str] | None = None, n_jobs: int = 4, progress: bool = True
) -> DownloadReport:
    """Download the human and AI image captions (CC0).

    Parameters
    ----------
    data_dir : str or Path, optional
        Target directory.
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show a progress display.

    Returns
    -------
    DownloadReport

    Raises
    ------
    DataNotFoundError
        If the file is missing from the source.

    Examples
    --------
    >>> download_captions()  # doctest: +SKIP
    """
    return fetch_public_keys([layout.CAPTIONS_KEY], "Captions", data_dir, n_jobs, progress)


# --------------------------------------------------------------------------- verify
@dataclass
class VerifyReport:
    """Outcome of :func:`verify`.

    Parameters
    ----------
    ok, missing, truncated, altered, repaired : list of str
        Initial key lists.
    failed : dict
        Initial failures.
    nothing_recorded : str, optional
        Set (to advice) when the manifest has no record for the scope.

    Attributes
    ----------
    ok : list of str
        Keys whose bytes match the manifest.
    missing, truncated, altered : list of str
        Keys absent, shorter than recorded, or with other bytes.
    repaired : list of str
        Keys fetched again (``repair=True``).
    failed : dict
        ``{key: reason}`` for repairs that failed.
    nothing_recorded : str or None
        What to do when the manifest held nothing to check (files copied in,
        or a damaged manifest set aside); ``None`` otherwise.
    size_only : list of str
        Keys among ``ok`` whose source offered no content hash: only their size
        could be checked.
    read_only : bool
        The data directory was read-only: checked without a lock, not repairable.

    Examples
    --------
    >>> str(VerifyReport(ok=["a", "b"]))
    'Verified 2 file(s): 2 ok, 0 missing, 0 truncated, 0 altered.'
    """

    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    nothing_recorded: str | None = None
    size_only: list[str] = field(default_factory=list)
    read_only: bool = False

    @property
    def problems(self) -> list[str]:
        """Every key that was missing, truncated or altered."""
        return self.missing + self.truncated + self.altered

    @property
    def clean(self) -> bool:
        """True when nothing is wrong now (all problems repaired, nothing failed)."""
        return not self.failed and set(self.problems) <= set(self.repaired)

    def __str__(self) -> str:
        if self.nothing_recorded:
            return self.nothing_recorded
        text = (
            f"Verified {len(self.ok) + len(self.problems)} file(s): {len(self.ok)} ok, "
            f"{len(self.missing)} missing, {len(self.truncated)} truncated, "
            f"{len(self.altered)} altered"
        )
        if self.repaired or self.failed:
            text += f"; {len(self.repaired)} repaired, {len(self.failed)} repair(s) failed"
        if self.size_only:
            text += (f"; {len(self.size_only)} size-checked only ({OPAQUE_ETAG}, so no content "
                     "check is possible)")
        if self.read_only:
            text += "; read-only data directory: checked without changes, cannot repair"
        return text + "."


def _record_rule(record: dict[str, Any]) -> ContentRule | None:
    """The rule a record's bytes were checked with at download (``None``: size only)."""
    content = record.get("content")
    etag = str(record.get("etag") or "").lower()
    checksum = None
    if record.get("checksum") and ":" in str(record["checksum"]):
        name, value = str(record["checksum"]).split(":", 1)
        checksum = (name, value)
    sha256 = str(record["sha256"]).lower() if record.get("sha256") else None
    multipart = None
    part_sizes: tuple[int, ...] = ()
    if content == "multipart" and record.get("part_size") and "-" in etag:
        multipart, part_sizes = etag.split("-", 1)[0], (int(record["part_size"]),)
    md5 = str(record["md5"]).lower() if record.get("md5") and content != "size" else None
    rule = ContentRule(md5=md5, multipart=multipart, part_sizes=part_sizes, checksum=checksum,
                       sha256=sha256)
    return rule if rule.content_checked else None


def _check_record(root: Path, record: dict[str, Any]) -> str:
    # The stored path is informational: the key alone says where the file is.
    path = layout.local_path(root, str(record["key"]))
    try:
        st = os.stat(path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    if not stat.S_ISREG(st.st_mode):
        return "altered"
    if st.st_size < int(record["size"]):
        return "truncated"
    if st.st_size != record["size"]:
        return "altered"
    rule = _record_rule(record)
    if rule is None:
        return "size_only"
    # The recorded checksum is the server's, or our CRC64NVME of the bytes as
    # written: either way it catches damage after the download.
    if mismatch(rule, digest_file(str(path), rule)):
        return "altered"
    return "size_only" if record.get("content") == "size" else "ok"


def _writable(root: Path) -> bool:
    state = layout.state_dir(root)
    return os.access(root, os.W_OK) and (not state.exists() or os.access(state, os.W_OK))


def verify(
    subject: object | None = None,
    repair: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 4,
    progress: bool = True,
) -> VerifyReport:
    """Re-check downloaded files against the manifest; optionally re-fetch bad ones.

    Every file recorded in the manifest is re-hashed with the rule it was
    verified with at download: the MD5 of a single-part ETag, the MD5 of part
    MD5s of a multipart ETag (with the recorded part size), a full-object
    checksum the server sent, a published SHA-256. Files whose source offered
    no content hash are size-checked and listed as such. Local paths come from
    the keys, never from the stored paths. A read-only data directory is
    verified without a lock or writes (and cannot be repaired).

    Parameters
    ----------
    subject : str or int, optional
        Only this subject's files (all recorded files when ``None``).
    repair : bool
        Re-fetch missing, truncated or altered files.
    data_dir : str or Path, optional
        The data directory.
    n_jobs : int
        Parallel checks and transfers.
    progress : bool
        Progress display while repairing.

    Returns
    -------
    VerifyReport
        ``nothing_recorded`` holds advice when the manifest has no record
        for the scope; repairs that could not run (source unreachable, read-only
        data directory) are in ``failed`` with the reason.

    Raises
    ------
    SubjectNotFoundError
        For a malformed subject.

    Examples
    --------
    >>> print(verify("sub-03"))  # doctest: +SKIP
    Verified 18 file(s): 18 ok, 0 missing, 0 truncated, 0 altered.
    """
    root = _data_dir(data_dir).resolve()
    sub = layout.normalize_subject(subject) if subject is not None else None
    report = VerifyReport()
    writable = _writable(root)
    lock = data_dir_lock(root) if writable else contextlib.nullcontext()
    with lock, Manifest(root, readonly=not writable) as manifest:
        records = [r for r in manifest.records()
                   if sub is None or layout.subject_of(str(r["key"])) == sub]
    if not records:
        report.nothing_recorded = (
            f"Nothing to verify: the manifest of {root} records no file"
            f"{' of ' + sub if sub else ''}, so there is nothing to compare against. "
            f"`laion-fmri download --subject {sub or 'S'}` re-hashes files already "
            "present and registers them (only missing or different files are fetched)."
        )
        return report

    def check(record: dict[str, Any]) -> str:
        try:
            return _check_record(root, record)
        except UnsafeKeyError as exc:
            report.failed[str(record["key"])] = str(exc)
            return "unsafe"

    with ThreadPoolExecutor(max_workers=validate_n_jobs(n_jobs)) as pool:
        states = list(pool.map(check, records))
    for record, state in zip(records, states, strict=True):
        if state == "size_only":
            report.ok.append(record["key"])
            report.size_only.append(record["key"])
        elif state != "unsafe":
            getattr(report, state).append(record["key"])
    if not writable:
        report.read_only = True
    if repair and report.problems:
        if not writable:
            for key in report.problems:
                report.failed[key] = (f"not repaired: {root} is read-only; run verify --repair "
                                      "where the data directory is writable.")
            return report
        _repair(root, report, n_jobs, progress)
    return report


def _repair(root: Path, report: VerifyReport, n_jobs: int, progress: bool) -> None:
    # The local findings come first, whatever happens to the repairs.
    print(f"Local check: {report}")
    store = open_store()
    objects: list[ObjectInfo] = []
    for key in report.problems:
        try:
            objects.append(store.head(key))
        except (DataNotFoundError, AccessDeniedError, UnsafeKeyError) as exc:
            report.failed[key] = str(exc)
        except SourceUnavailableError as exc:
            # Unreachable: every remaining repair fails for the same reason;
            # the records stay, so the next verify still reports the files.
            for rest in report.problems:
                report.failed.setdefault(rest, f"not repaired: {exc}")
            return
    with data_dir_lock(root), Manifest(root) as manifest:
        for obj in objects:
            manifest.delete(obj.key)
            # A same-size altered file would otherwise pass the size check; the
            # path comes from the key (checked to stay inside the data dir).
            path = layout.local_path(root, obj.key)
            if path.is_file() or path.is_symlink():
                path.unlink()
    fetched = fetch_objects(objects, store, root, n_jobs=n_jobs, progress=progress)
    report.repaired = fetched.downloaded + fetched.skipped
    report.failed.update(fetched.failed)


__all__ = [
    "VerifyReport",
    "build_plan",
    "download",
    "download_captions",
    "download_embeddings",
    "download_segmentations",
    "verify",
]
