"""``get_betas(..., fetch=True)``: load sessions that are not on disk straight from the source.

The small files a load needs come first: the trial tables and the brain mask
of named sessions straight from the store (known keys, each checked against
its size and MD5/ETag before it lands), trial tables of ``"all"`` and ROI
masks (which need a listing) through the download engine; in a fresh data
dir the first sessions' betas are asked for meanwhile (:func:`early_betas`).
The betas themselves are streamed by :mod:`laion_fmri._remote_betas` into the masked cache (see
:meth:`laion_fmri.betas.SessionBetas.read`): no ``.nii.gz`` lands on disk
unless ``keep=True``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from laion_fmri import layout
from laion_fmri.errors import ConfigError
from laion_fmri.subject._files import SubjectFiles

ENV_FETCH = "LAION_FMRI_FETCH"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def fetch_enabled(fetch: bool | None) -> bool:
    """The ``fetch=`` argument, else ``LAION_FMRI_FETCH`` (off when unset)."""
    if fetch is not None:
        return bool(fetch)
    value = os.environ.get(ENV_FETCH, "").strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise ConfigError(f"{ENV_FETCH}={value!r} is not understood; use 1/true/yes/on or 0/false/no/off.")


def fetch_store(fetch: bool | None) -> Any:
    """The configured source's store when fetching is on, else ``None``."""
    if not fetch_enabled(fetch):
        return None
    from laion_fmri.remote import open_store

    return open_store()


def _fetch_object(store: Any, key: str, dest: Path) -> None:
    """One small object from the store into ``dest``, checked (size, checksum/ETag) before it lands."""
    from laion_fmri._remote_betas import read_object
    from laion_fmri.errors import IntegrityError

    try:
        _, body = read_object(store, key)  # one GET: the answer's headers are the reference
    except IntegrityError as exc:
        raise IntegrityError(f"{exc} Nothing was written. Try again.") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(body)
    os.replace(part, dest)


def _mask_key(subject: str, mask_source: str) -> str:
    return (layout.anatomical_brain_mask_key(subject) if mask_source == "anatomical"
            else layout.r2mean_key(subject))


def _named_sessions(session: object) -> list[str] | None:
    """The sessions a ``session=`` argument names (``None`` for ``"all"`` or a bad id)."""
    if isinstance(session, str) and session == "all":
        return None
    names = session if isinstance(session, (list, tuple)) else [session]
    try:
        return [layout.normalize_session(int(s) if hasattr(s, "__index__") else s) for s in names]
    except Exception:  # the selection explains a bad session id
        return None


def prepare(files: SubjectFiles, session: object, mask_source: str, store: Any,
            rois: bool = False) -> object:
    """Bring the small files of a fetching load; return the ``session=`` to select.

    Named sessions: their trial tables and the brain mask come straight from
    the store (known keys, fetched together, each checked before it lands);
    nothing is requested when they are on disk. ``"all"`` (the trial tables
    of every session) and ROI masks (``rois``, when none is on disk) need a
    listing and go through the download engine. ``"all"`` becomes the list of
    public sessions whose trial table the source has.
    """
    from concurrent.futures import ThreadPoolExecutor

    from laion_fmri.licenses import ensure_dataset_license

    subject = files.subject
    every = isinstance(session, str) and session == "all"
    named = _named_sessions(session)
    include = ["*/ses-*/func/*_trials.*"] if every else []
    roi_dir = files.root / "derivatives" / "rois" / subject
    if rois and not any(roi_dir.rglob("*_mask.nii.gz")):
        include.append("*/rois/*_mask.nii.gz")
    if include:  # the engine's import (~90 ms) only when a listing is needed
        from laion_fmri.download import download

        download(subject=subject, include=include, progress=False, data_dir=files.root)
    keys = [_mask_key(subject, mask_source)]
    keys += [layout.trials_key(subject, s) for s in named or []]
    missing = [k for k in keys if not files.path(k).is_file()]
    if missing:
        ensure_dataset_license(files.root)
        with ThreadPoolExecutor(min(4, len(missing))) as pool:
            list(pool.map(lambda k: _fetch_object(store, k, files.path(k)), missing))
    if not every:
        return session
    base = files.root / layout.subject_glm_prefix(subject)
    found = sorted(p.parent.parent.name for p in base.glob("ses-*/func/*_trials.tsv"))
    return [s for s in dict.fromkeys(found) if s not in layout.HELD_OUT_SESSIONS]


def early_betas(files: SubjectFiles, session: object, mask_source: str, store: Any,
                lazy: bool = False) -> contextlib.AbstractContextManager[Any]:
    """Ask for the first sessions' betas while the small files come (a fresh data dir).

    The decoder needs the brain mask's voxel offsets, the network does not:
    when the mask is not on disk yet (so no masked cache can serve the load)
    and a named session's ``.nii.gz`` is not either, its listing and first
    ranges go out now (:func:`laion_fmri._remote_betas.started`), after the
    data-use agreement, and the stream picks them up. Otherwise (or with
    ``lazy``: the workers stream) nothing is asked early.
    """
    if store is None or lazy:  # before any import: a cached reload must stay milliseconds
        return contextlib.nullcontext()
    from laion_fmri._remote_betas import DEFAULT_SESSIONS_IN_FLIGHT, started

    named = _named_sessions(session)
    if not named or files.path(_mask_key(files.subject, mask_source)).is_file():
        return contextlib.nullcontext()
    named = [s for s in named if s not in layout.HELD_OUT_SESSIONS]
    keys = [layout.betas_key(files.subject, s) for s in named[:DEFAULT_SESSIONS_IN_FLIGHT]]
    keys = [k for k in keys if not files.path(k).is_file()]
    if not keys:
        return contextlib.nullcontext()
    from laion_fmri.licenses import ensure_dataset_license

    ensure_dataset_license(files.root)  # streaming is downloading: the agreement first
    return started(store, keys)


def read_sessions(read: Any, selection: Any, store: Any, cache: bool | None) -> dict[str, Any]:
    """``{session: read(session, columns)}``; sessions streamed from ``store`` two at a time.

    Network and decoding of one session overlap with the next one's; results
    keep the selection's order.
    """
    sessions = selection.sessions
    if store is None or len(sessions) < 2:
        return {s: read(s, selection.columns(s), cache=cache) for s in sessions}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2, thread_name_prefix="laion-fmri-fetch") as pool:
        arrays = pool.map(lambda s: read(s, selection.columns(s), cache=cache), sessions)
        return dict(zip(sessions, arrays, strict=True))


def stack_remote(selection: Any, stimuli: str | None) -> Any:
    """``lazy=True, fetch=True``: a dask array whose tasks stream their session on the worker.

    Workers need no data directory: each task reads the brain mask and its
    session from the configured source (:func:`laion_fmri._distributed_betas.lazy_remote_betas`).
    """
    from laion_fmri._distributed_betas import lazy_remote_betas
    from laion_fmri.config import get_source

    if stimuli is not None:
        raise ValueError("stimuli= is not supported with lazy=True, fetch=True; select the rows "
                         "of the computed array with sub.get_trial_info instead.")
    pairs = [(selection.subject_id, s) for s in selection.sessions]
    return lazy_remote_betas(get_source(), pairs, selection.columns(), selection.n_voxels,
                             mask_source=selection.mask_source)


__all__ = ["ENV_FETCH", "fetch_enabled", "fetch_store", "prepare", "read_sessions", "stack_remote"]
