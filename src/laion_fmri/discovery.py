"""What is in the dataset: subjects, ROIs, categories, sizes.

Every function asks the configured source (the public bucket, another S3
endpoint or a local folder). When the source cannot be reached, they fall
back to what is already in the local data directory and say so in one line
on stderr; network calls carry connect and read timeouts, so nothing hangs.

Examples
--------
>>> from laion_fmri.discovery import get_subjects, get_rois, describe
>>> get_subjects()  # doctest: +SKIP
['sub-01', 'sub-03', 'sub-05', 'sub-06', 'sub-07']
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from laion_fmri import layout
from laion_fmri.config import get_data_dir
from laion_fmri.download.plan import format_bytes
from laion_fmri.errors import (
    DataDirNotSetError,
    RoiNotFoundError,
    SourceUnavailableError,
    SubjectNotFoundError,
)
from laion_fmri.stores import LocalStore, Store, open_store

T = TypeVar("T")


#: Seconds a source that failed stays marked unreachable for this process, so
#: later discovery calls go straight to disk instead of waiting again.
UNREACHABLE_FOR = 60.0
_UNREACHABLE: dict[str, float] = {}
_UNREACHABLE_LOCK = threading.Lock()


class _DiskFallback(LocalStore):
    """The local data directory standing in for an unreachable source."""


def forget_unreachable() -> None:
    """Forget which sources were found unreachable (the next call tries them again).

    Examples
    --------
    >>> forget_unreachable()
    """
    with _UNREACHABLE_LOCK:
        _UNREACHABLE.clear()


def _marked_unreachable(url: str) -> bool:
    with _UNREACHABLE_LOCK:
        since = _UNREACHABLE.get(url)
        if since is not None and time.monotonic() - since > UNREACHABLE_FOR:
            del _UNREACHABLE[url]
            since = None
        return since is not None


def _with_fallback(fn: Callable[[Store], T], data_dir: str | os.PathLike[str] | None = None) -> T:
    """Run ``fn`` on the configured store, or on the local data directory if unreachable.

    The first failure is remembered for :data:`UNREACHABLE_FOR` seconds and
    warned about once; later calls use the disk at once.
    """
    store = open_store()
    error: SourceUnavailableError | None = None
    if not _marked_unreachable(store.url):
        try:
            return fn(store)
        except SourceUnavailableError as exc:
            error = exc
            with _UNREACHABLE_LOCK:
                _UNREACHABLE[store.url] = time.monotonic()
    try:
        local = get_data_dir(data_dir)
    except DataDirNotSetError:
        if error is not None:
            raise error from None
        raise SourceUnavailableError(
            f"{store.url} did not answer a moment ago and no data directory is configured; "
            "check the network, or `laion-fmri config --source/--endpoint-url`."
        ) from None
    if error is not None:
        print(
            f"laion-fmri: warning: {store.url} is unreachable; showing what is on disk in "
            f"{local} instead.",
            file=sys.stderr,
        )
    return fn(_DiskFallback(local))


def _require_subject(store: Store, subject: str) -> None:
    """Raise unless the store has ``subject`` (offline: the disk or the known list)."""
    subjects = _subjects(store)
    if subject in subjects:
        return
    if isinstance(store, _DiskFallback) and subject in layout.SUBJECTS:
        return
    raise SubjectNotFoundError(
        f"{subject} is not in {store.url}; subjects there: {', '.join(subjects) or 'none'}."
    )


def _subjects(store: Store) -> list[str]:
    from concurrent.futures import ThreadPoolExecutor

    roots = (layout.GLM_ROOT, layout.ROI_ROOT)
    with ThreadPoolExecutor(max_workers=len(roots)) as pool:  # two listings at once
        listings = list(pool.map(lambda root: store.list_dirs(root + "/"), roots))
    found: set[str] = set()
    for prefixes in listings:
        for prefix in prefixes:
            name = prefix.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("sub-"):
                found.add(name)
    return sorted(found)


def get_subjects(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Subjects available in the source, sorted.

    Parameters
    ----------
    data_dir : str or Path, optional
        Local directory used only as a fallback when the source is unreachable.

    Returns
    -------
    list of str

    Raises
    ------
    SourceUnavailableError
        When the source is unreachable and no data directory is configured.

    Examples
    --------
    >>> get_subjects()  # doctest: +SKIP
    ['sub-01', 'sub-03', 'sub-05', 'sub-06', 'sub-07']
    """
    return _with_fallback(_subjects, data_dir)


def _sessions(store: Store, subject: str) -> list[str]:
    names = [p.rstrip("/").rsplit("/", 1)[-1]
             for p in store.list_dirs(layout.subject_glm_prefix(subject))]
    return sorted(n for n in names if n.startswith("ses-"))


def get_sessions(
    subject: object, include_held_out: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Sessions of one subject in the source, sorted.

    Parameters
    ----------
    subject : str or int
        ``"sub-03"``, ``"03"`` or ``3``.
    include_held_out : bool
        Also list held-out sessions (listed by the bucket, not downloadable).
    data_dir : str or Path, optional
        Local directory used only as a fallback when the source is unreachable.

    Returns
    -------
    list of str

    Raises
    ------
    SubjectNotFoundError
        For a malformed subject or one the source does not have.

    Examples
    --------
    >>> get_sessions("sub-03")  # doctest: +SKIP
    ['ses-01', 'ses-02', ...]
    """
    sub = layout.normalize_subject(subject)

    def collect(store: Store) -> list[str]:
        _require_subject(store, sub)
        return _sessions(store, sub)

    sessions = _with_fallback(collect, data_dir)
    return [s for s in sessions if include_held_out or not layout.is_held_out(s)]


def _roi_index(store: Store, subject: str) -> set[tuple[str, str]]:
    """``{(category, label)}`` of one subject's volumetric ROI masks."""
    out = set()
    for prefix in (layout.roi_prefix(subject), layout.snapshot_roi_prefix(subject)):
        for obj in store.list(prefix):
            parsed = layout.parse_roi_volume_key(obj.key)
            if parsed and parsed[0] == subject:
                out.add((parsed[1], parsed[2]))
    return out


def _roi_entries(
    subject: object | None, data_dir: str | os.PathLike[str] | None = None
) -> set[tuple[str, str]]:
    sub = layout.normalize_subject(subject) if subject is not None else None

    def collect(store: Store) -> set[tuple[str, str]]:
        if sub is not None:
            _require_subject(store, sub)
        subjects = [sub] if sub is not None else _subjects(store)
        out: set[tuple[str, str]] = set()
        for name in subjects:
            out |= _roi_index(store, name)
        return out

    return _with_fallback(collect, data_dir)


def get_categories(
    subject: object | None = None, data_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """ROI categories (``face``, ``place`` ...), for one subject or all, sorted.

    Parameters
    ----------
    subject : str or int, optional
        ``"sub-03"``, ``"03"`` or ``3``; all subjects when ``None``.
    data_dir : str or Path, optional
        Local directory used only as a fallback when the source is unreachable.

    Returns
    -------
    list of str

    Raises
    ------
    SubjectNotFoundError
        For an unknown subject.

    Examples
    --------
    >>> get_categories("sub-03")  # doctest: +SKIP
    ['body', 'face', 'place']
    """
    return sorted({category for category, _ in _roi_entries(subject, data_dir)})


def get_rois(
    subject: object | None = None, category: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """ROI names (de-hyphenated, e.g. ``FFA1``), optionally of one category, sorted.

    Parameters
    ----------
    subject : str or int, optional
        One subject, or all (union) when ``None``.
    category : str, optional
        Restrict to one category.
    data_dir : str or Path, optional
        Local directory used only as a fallback when the source is unreachable.

    Returns
    -------
    list of str

    Raises
    ------
    SubjectNotFoundError
        For an unknown subject.
    RoiNotFoundError
        For a category the subject(s) do not have.

    Examples
    --------
    >>> get_rois("sub-03", category="face")  # doctest: +SKIP
    ['FFA1', 'OFA', 'pSTSfaces']
    """
    entries = _roi_entries(subject, data_dir)
    if category is not None:
        categories = sorted({c for c, _ in entries})
        if category not in categories:
            raise RoiNotFoundError(
                f"No ROI category {category!r}"
                + (f" for {layout.normalize_subject(subject)}" if subject is not None else "")
                + f". Available categories: {', '.join(categories) or 'none'}."
            )
        entries = {e for e in entries if e[0] == category}
    return sorted({label for _, label in entries})


def _local_store(data_dir: str | None) -> LocalStore | None:
    """The data directory as a store, or ``None`` when it is not configured or absent."""
    return LocalStore(data_dir) if data_dir and os.path.isdir(data_dir) else None


def _local_counts(data_dir: str | None, prefixes: list[str]) -> tuple[int, int]:
    local = _local_store(data_dir)
    if local is None:
        return 0, 0
    n = size = 0
    for prefix in prefixes:
        for obj in local.list(prefix):
            n += 1
            size += obj.size
    return n, size


def _summary_lines(store: Store, data_dir: str | None) -> list[str]:
    lines = [f"LAION-fMRI dataset at {store.url}"]
    subjects = _subjects(store)
    lines.append(f"Subjects ({len(subjects)}): {', '.join(subjects) or 'none'}")
    total_n = total_size = 0
    categories: set[str] = set()
    any_held_out = False
    for sub in subjects:
        sessions = _sessions(store, sub)
        shown = [s + ("*" if layout.is_held_out(s) else "") for s in sessions]
        any_held_out |= any(layout.is_held_out(s) for s in sessions)
        prefixes = [layout.subject_glm_prefix(sub), layout.roi_prefix(sub),
                    layout.snapshot_roi_prefix(sub)]
        n = size = 0
        for prefix in prefixes:
            for obj in store.list(prefix):
                n += 1
                size += obj.size
                parsed = layout.parse_roi_volume_key(obj.key)
                if parsed:
                    categories.add(parsed[1])
        total_n += n
        total_size += size
        local_n, local_size = _local_counts(data_dir, prefixes)
        lines.append(
            f"  {sub}: {len(sessions)} session(s) [{', '.join(shown)}]; {n} files, "
            f"{format_bytes(size)}; local: {local_n} files, {format_bytes(local_size)}"
        )
    if any_held_out:
        lines.append("  (* held-out session: listed but not publicly downloadable)")
    lines.append(f"ROI categories: {', '.join(sorted(categories)) or 'none'}")
    stimuli = list(store.list(layout.STIMULI_ROOT + "/"))
    total_n += len(stimuli)
    total_size += sum(o.size for o in stimuli)
    local = _local_store(data_dir)
    local_stim = {o.key for o in local.list(layout.STIMULI_ROOT + "/")} if local is not None else set()
    lines.append(f"Stimulus files ({len(stimuli)}):")
    for obj in stimuli:
        gated = " (data-use agreement)" if obj.key in layout.GATED_STIMULUS_KEYS else ""
        mark = "downloaded" if obj.key in local_stim else "not downloaded"
        lines.append(f"  {obj.key}: {format_bytes(obj.size)}{gated}, {mark}")
    lines.append(f"Total: {total_n} files, {format_bytes(total_size)}")
    lines.append(f"Local data directory: {data_dir or 'not configured'}")
    return lines


def describe(data_dir: str | os.PathLike[str] | None = None) -> None:
    """Print a summary: subjects, sessions (held-out marked), ROI categories,
    stimulus files, total and per-subject sizes, and what is already local.

    Parameters
    ----------
    data_dir : str or Path, optional
        Local data directory to compare with (the configured one by default).

    Examples
    --------
    >>> describe()  # doctest: +SKIP
    LAION-fMRI dataset at s3://laion-fmri
    Subjects (5): sub-01, sub-03, sub-05, sub-06, sub-07
    ...
    """
    try:
        local: str | None = get_data_dir(data_dir)
    except DataDirNotSetError:
        local = None
    print("\n".join(_with_fallback(lambda store: _summary_lines(store, local), data_dir)))


def inspect_bucket(
    max_depth: int = 2, data_dir: str | os.PathLike[str] | None = None
) -> dict[str, list[str]]:
    """Print and return the folder structure of the source, two levels deep.

    Parameters
    ----------
    max_depth : int
        How many folder levels to expand.
    data_dir : str or Path, optional
        Local directory used only as a fallback when the source is unreachable.

    Returns
    -------
    dict
        ``{prefix: [sub-folders]}`` for every expanded prefix.

    Examples
    --------
    >>> inspect_bucket()  # doctest: +SKIP
    Top-level prefixes (3):
      derivatives/
      ...
    """

    def walk(store: Store) -> dict[str, list[str]]:
        tree: dict[str, list[str]] = {"": store.list_dirs("")}
        frontier = list(tree[""])
        for _ in range(max_depth - 1):
            nxt = []
            for prefix in frontier:
                tree[prefix] = store.list_dirs(prefix)
                nxt += tree[prefix]
            frontier = nxt
        return tree

    tree = _with_fallback(walk, data_dir)
    print(f"Top-level prefixes ({len(tree[''])}):")
    for prefix in tree[""]:
        print(f"  {prefix}")
    for prefix, children in tree.items():
        if not prefix or not children:
            continue
        subs = sum(1 for c in children if c.rstrip("/").rsplit("/", 1)[-1].startswith("sub-"))
        print(f"{prefix}: {len(children)} entries, {subs} sub-* entries")
    return tree


__all__ = [
    "describe",
    "forget_unreachable",
    "get_categories",
    "get_rois",
    "get_sessions",
    "get_subjects",
    "inspect_bucket",
]
