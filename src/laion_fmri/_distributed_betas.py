"""Distributed betas: tasks that stream their session on a worker sharing nothing with the client.

:func:`session_block` is a picklable task ``(source, subject, session,
columns) -> block``: the worker reads the brain mask and the betas from the
source (no data directory, no shared filesystem) through
:func:`laion_fmri._remote_betas.stream_betas`. :func:`session_to_zarr`
writes the block to a zarr store the user names instead of returning it, and
:func:`lazy_remote_betas` stacks sessions into a dask array whose graph holds
one small :class:`BlockSpec` per task.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laion_fmri import layout
from laion_fmri._mask_index import MaskIndex, derive_mask_index
from laion_fmri._remote_betas import read_object, stream_betas
from laion_fmri.config import Source
from laion_fmri.remote import Store, open_store
from laion_fmri.vocab import DEFAULT_MASK_SOURCE

_WORKER_MASKS: dict[tuple[str, str, str | None], MaskIndex] = {}
_WORKER_LOCK = threading.Lock()


def _source_store(source: Source | str) -> Store:
    return open_store(source)


def remote_mask_index(store: Store, subject: str, mask_source: str = DEFAULT_MASK_SOURCE) -> MaskIndex:
    """The brain-mask index of ``subject`` read from the source (no data dir), cached per process.

    The loader's rule: ``"anatomical"`` reads the ``res-1pt8`` anatomical
    brain mask; ``"rsquare"`` the snapshot brain mask when the source has
    one, else ``R2mean``. The mask object is fetched into a temporary file,
    decoded once per process and ETag.

    Parameters
    ----------
    store : Store
        The source.
    subject : str
        Canonical id.
    mask_source : {"anatomical", "rsquare"}
        The voxel axis (:data:`laion_fmri.vocab.MASK_SOURCES`).

    Returns
    -------
    MaskIndex

    Examples
    --------
    >>> remote_mask_index(open_store(), "sub-03").c_index.size  # doctest: +SKIP
    """
    from laion_fmri.errors import DataNotFoundError

    keys = ((layout.anatomical_brain_mask_key(subject),) if mask_source == "anatomical"
            else (layout.snapshot_brain_mask_key(subject), layout.r2mean_key(subject)))
    for key in keys:
        try:
            info = store.head(key)
        except DataNotFoundError:
            continue
        cache_key = (store.url, key, info.etag or f"{info.size}-{info.last_modified}")
        with _WORKER_LOCK:
            hit = _WORKER_MASKS.get(cache_key)
        if hit is not None:
            return hit
        _, body = read_object(store, key, info.etag)  # the version the cache key names
        with tempfile.TemporaryDirectory(prefix="laion-fmri-mask-") as tmp:
            path = Path(tmp) / Path(key).name
            path.write_bytes(body)
            index = derive_mask_index(path)
        with _WORKER_LOCK:
            _WORKER_MASKS[cache_key] = index
        return index
    raise DataNotFoundError(
        f"The brain mask of {subject} (mask_source={mask_source!r}: {', '.join(keys)}) is not "
        f"in {store.url}; check the source."
    )


@dataclass(frozen=True)
class BlockSpec:
    """What one distributed task reads: small and picklable (no data, no paths).

    Attributes
    ----------
    source : Source
        Where the betas live (``laion_fmri.config.get_source()`` on the client).
    subject, session : str
        Canonical ids.
    columns : numpy.ndarray or None
        Brain-voxel columns (sorted int); ``None`` = whole brain.
    mask_source : str
        The voxel axis the columns index.
    """

    source: Source
    subject: str
    session: str
    columns: np.ndarray | None = None
    mask_source: str = DEFAULT_MASK_SOURCE


def session_block(spec: BlockSpec, **kwargs: Any) -> np.ndarray:
    """Stream one session on the worker and return ``(n_trials, n_columns)`` float32.

    Reads the brain mask and the betas from ``spec.source``; needs no data
    directory and no shared filesystem.

    Parameters
    ----------
    spec : BlockSpec
        Source, subject, session and columns.
    **kwargs
        Passed to :func:`stream_betas` (``range_bytes``, ``in_flight``).

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> session_block(BlockSpec(get_source(), "sub-03", "ses-01")).shape  # doctest: +SKIP
    """
    store = _source_store(spec.source)
    index = remote_mask_index(store, spec.subject, spec.mask_source)
    offsets = index.offsets if spec.columns is None else index.offsets[np.asarray(spec.columns)]
    return stream_betas(store, layout.betas_key(spec.subject, spec.session), offsets, **kwargs).betas


def session_to_zarr(spec: BlockSpec, url: str, chunk_voxels: int = 1024, **kwargs: Any) -> tuple[int, int]:
    """Stream one session on the worker and write it to ``<url>/<subject>/<session>`` (zarr v3).

    Only the shape travels back to the client; the betas go from the source
    to the store the user named (a shared path or any URL zarr can write,
    e.g. ``s3://...`` with fsspec).

    Parameters
    ----------
    spec : BlockSpec
        Source, subject, session and columns.
    url : str
        Zarr group (created when missing).
    chunk_voxels : int
        Columns per chunk (all trials x this many voxels).
    **kwargs
        Passed to :func:`stream_betas`.

    Returns
    -------
    tuple of int
        Shape written.

    Examples
    --------
    >>> session_to_zarr(BlockSpec(get_source(), "sub-03", "ses-01"), "/shared/out.zarr")  # doctest: +SKIP
    (1044, 61234)
    """
    from zarr.codecs import BloscCodec, BloscShuffle

    block = session_block(spec, **kwargs)
    sub = _require_group(url, spec.subject)
    arr = sub.create_array(
        spec.session, shape=block.shape, dtype="float32", overwrite=True,
        chunks=(max(1, block.shape[0]), max(1, min(chunk_voxels, block.shape[1]))),
        compressors=BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle),
    )
    arr[...] = block
    if spec.columns is not None:
        arr.attrs["columns"] = np.asarray(spec.columns).tolist()
    return tuple(int(s) for s in block.shape)  # type: ignore[return-value]


def _require_group(url: str, name: str) -> Any:
    """Open (creating when missing) the group ``name`` under ``url``; safe when workers race."""
    import zarr
    from zarr.errors import ContainsGroupError

    for _ in range(10):
        try:
            return zarr.open_group(url, mode="a", zarr_format=3).require_group(name)
        except ContainsGroupError:  # another worker created it a moment ago: open it now
            time.sleep(0.01)
    return zarr.open_group(url, mode="r+")[name]


def remote_trial_count(store: Store, subject: str, session: str) -> int:
    """Trials of a session from its trial table on the source (small; no betas read).

    Parameters
    ----------
    store : Store
    subject, session : str

    Returns
    -------
    int

    Examples
    --------
    >>> remote_trial_count(open_store(), "sub-03", "ses-01")  # doctest: +SKIP
    1044
    """
    text = read_object(store, layout.trials_key(subject, session))[1].decode("utf-8")
    lines = [line for line in text.splitlines()[1:] if line.strip()]
    return len(lines)


def lazy_remote_betas(
    source: Source, subjects_sessions: Sequence[tuple[str, str]], columns: np.ndarray | None,
    n_columns: int, *, rows: Sequence[int] | None = None, store: Store | None = None,
    mask_source: str = DEFAULT_MASK_SOURCE, **stream_kwargs: Any,
) -> Any:
    """A dask array stacking sessions streamed on the workers (one chunk per session).

    The graph holds one small :class:`BlockSpec` per task (no task depends
    on another, so the scheduler spreads them over the workers); every spec
    refers to the same ``columns`` array, which a pickled graph holds once.

    Parameters
    ----------
    source : Source
        Where the betas live.
    subjects_sessions : sequence of (subject, session)
        Row blocks in order (all on the same voxel axis: one subject, or
        columns that mean the same for every subject).
    columns : numpy.ndarray or None
        Brain-voxel columns; ``None`` = whole brain.
    n_columns : int
        Width of each block (``columns.size`` or the brain size).
    rows : sequence of int, optional
        Trials of each block when known; otherwise read from the trial tables
        on the source (small files).
    store : Store, optional
        Used on the client to read trial counts (default: ``open_store(source)``).
    mask_source : str
        The voxel axis ``columns`` index (:data:`laion_fmri.vocab.MASK_SOURCES`).
    **stream_kwargs
        Passed to :func:`stream_betas` on the workers (``range_bytes``, ``in_flight``).

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> arr = lazy_remote_betas(get_source(), [("sub-03", "ses-01")], None, n_vox)  # doctest: +SKIP
    """
    import dask
    import dask.array as da

    if rows is None:  # small files, read side by side (each is a round trip to the source)
        from concurrent.futures import ThreadPoolExecutor

        store = store or _source_store(source)
        with ThreadPoolExecutor(max(1, min(8, len(subjects_sessions)))) as pool:
            rows = list(pool.map(lambda pair: remote_trial_count(store, *pair), subjects_sessions))
    from dask.base import tokenize

    # Keys name the source and the columns, so two selections never share a key.
    token = tokenize(source, columns, mask_source)
    parts = []
    for (subject, session), n_rows in zip(subjects_sessions, rows, strict=True):
        # The spec is a literal of the task, not a task of its own: a task every block
        # depends on would pull all blocks to the one worker that ran it. Every spec
        # holds the same ``columns`` object, which the pickled graph stores once.
        spec = BlockSpec(source, subject, session, columns, mask_source)
        task = dask.delayed(session_block, pure=True)(
            spec, **stream_kwargs, dask_key_name=f"laion-fmri-remote-{subject}-{session}-{token}")
        parts.append(da.from_delayed(task, shape=(n_rows, n_columns), dtype=np.float32))
    return da.concatenate(parts, axis=0)


__all__ = [
    "BlockSpec",
    "lazy_remote_betas",
    "remote_mask_index",
    "remote_trial_count",
    "session_block",
    "session_to_zarr",
]
