"""``get_betas(..., fetch=True)``: load sessions that are not on disk straight from the source.

The small files a load needs (trial tables, the brain mask, ROI masks) come
first through the download engine (verified, recorded in the manifest); the
anatomical brain mask, which the engine does not list, is read from the store
with the same content check. The betas themselves are streamed by
:mod:`laion_fmri._remote_betas` into the masked cache (see
:meth:`laion_fmri.betas.SessionBetas.read`): no ``.nii.gz`` lands on disk
unless ``keep=True``.
"""

from __future__ import annotations

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


def _session_globs(session: object) -> tuple[list[str], bool]:
    """Include globs of the trial tables a ``session=`` argument names, and whether it is "all"."""
    if isinstance(session, str) and session == "all":
        return ["*/ses-*/func/*_trials.*"], True
    names = session if isinstance(session, (list, tuple)) else [session]
    sessions = [layout.normalize_session(int(s) if hasattr(s, "__index__") else s) for s in names]
    return [f"*/{s}/func/*_trials.*" for s in sessions], False


def _fetch_object(store: Any, key: str, dest: Path) -> None:
    """One small object from the store into ``dest``, checked (size, MD5/ETag) before it lands."""
    from laion_fmri._remote_betas import _read_range
    from laion_fmri._stream_verify import ContentVerifier
    from laion_fmri.errors import IntegrityError

    info = store.head(key)
    body = bytes(_read_range(store, key, 0, info.size, info.etag))
    verifier = ContentVerifier(info)
    verifier.update(body)
    problem = verifier.mismatch()
    if problem is not None:
        raise IntegrityError(f"{key} from {store.url} failed its content check ({problem}); "
                             "nothing was written. Try again.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(body)
    os.replace(part, dest)


def _mask_key(subject: str, mask_source: str) -> str:
    return (layout.anatomical_brain_mask_key(subject) if mask_source == "anatomical"
            else layout.r2mean_key(subject))


def _on_disk(files: SubjectFiles, session: object, mask_source: str) -> bool:
    """Every small file a load of the named sessions needs is there (no network needed)."""
    if isinstance(session, str) and session == "all":
        return False
    names = session if isinstance(session, (list, tuple)) else [session]
    try:
        keys = [layout.trials_key(files.subject, layout.normalize_session(s)) for s in names]
    except Exception:  # let the selection explain a bad session id
        return True
    return all(files.path(k).is_file() for k in [*keys, _mask_key(files.subject, mask_source)])


def prepare(files: SubjectFiles, session: object, mask_source: str, store: Any) -> object:
    """Bring the small files of a fetching load; return the ``session=`` to select.

    Nothing is requested when they are all on disk. ``"all"`` becomes the
    list of public sessions whose trial table the source has.
    """
    from laion_fmri.download import download

    if _on_disk(files, session, mask_source):
        return session
    globs, every = _session_globs(session)
    subject = files.subject
    include = [*globs, "*/rois/*_mask.nii.gz", f"*{Path(layout.r2mean_key(subject)).name}"]
    download(subject=subject, include=include, progress=False, data_dir=files.root)
    key = _mask_key(subject, mask_source)
    if not files.path(key).is_file():  # the anatomical mask is not listed by the engine
        _fetch_object(store, key, files.path(key))
    if not every:
        return session
    base = files.root / layout.subject_glm_prefix(subject)
    found = sorted(p.parent.parent.name for p in base.glob("ses-*/func/*_trials.tsv"))
    return [s for s in dict.fromkeys(found) if s not in layout.HELD_OUT_SESSIONS]


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


__all__ = ["ENV_FETCH", "fetch_enabled", "fetch_store", "prepare", "stack_remote"]
