"""Shared numpydoc parameter text, written once (nilearn-style templates).

A docstring line holding only ``%(name)s`` is replaced by the template
``name`` below, indented like the marker. Other ``%`` signs are left alone.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

_F = TypeVar("_F", bound=Callable[..., object])

PARAMS: dict[str, str] = {
    "data_dir": """\
data_dir : str or os.PathLike, optional
    Local data directory; defaults to the configured one
    (:func:`laion_fmri.config.get_data_dir`).""",
    "session": """\
session : str, int, list or "all"
    One session (``"ses-01"``, ``"01"`` or ``1``), a list of them, or
    ``"all"`` for every session whose betas are on disk.""",
    "roi": """\
roi : str or list of str, optional
    ROI name (``"FFA1"``), category (``"face"``, the union of its ROIs),
    ``"all"`` or a list (union). Exclusive with ``mask``.""",
    "mask": """\
mask : numpy.ndarray, optional
    ``(n_voxels,)`` boolean array over brain-mask voxels (length
    ``get_n_voxels()``). Exclusive with ``roi``.""",
    "nc_threshold": """\
nc_threshold : float, optional
    Keep voxels whose *per-session* noise ceiling is ``>=`` this value, in
    **percent (0-100)**, the units of ``get_noise_ceiling`` (``0.2`` means
    0.2 %). Voxels with a NaN noise ceiling are dropped; NaN, negative or
    >100 thresholds raise ``ValueError``. Combined with ``roi``/``mask`` by
    intersection.""",
    "nc_threshold_one": """\
nc_threshold : float, optional
    Keep voxels whose per-session noise ceiling is ``>=`` this (percent);
    one session only, since the voxel axis must be shared by every trial.""",
    "mask_source": """\
mask_source : str, optional
    Brain mask the voxel axis comes from (:data:`laion_fmri.vocab.MASK_SOURCES`);
    ``None`` = the default.""",
    "selection_errors": """\
SessionNotFoundError, RoiNotFoundError, DataNotDownloadedError
    Unknown session/ROI, or data not on disk.""",
    "trial": """\
i : int
    Global trial index (row of ``sub.metadata``).""",
    "out_png": """\
out : str or os.PathLike, optional
    Also save the figure as PNG here.""",
    "roi_query": """\
query : str or list of str
    ROI name (``"FFA1"``), category (``"face"``), ``"all"``, or a list (union).""",
    "stimuli": """\
stimuli : {"shared", "unique"}, optional
    Keep only trials whose image name starts with ``shared_``/``unique_``.""",
    "average": """\
average : {"label"}, optional
    Average repeated presentations: one row per unique image, in order of
    first appearance in the session's trial table (after the ``stimuli``
    filter), i.e. the row labels are
    ``pd.unique(sub.get_trial_info(session)["label"])``. Averaging is within
    each session and on the betas as stored; to average across sessions,
    z-score first (:func:`laion_fmri.stats.zscore_by_session`) and use
    :func:`laion_fmri.stats.average_repeats` on the stacked betas with
    ``sub.metadata["label"]``, which also returns labels and counts.""",
    "lazy": """\
lazy : bool
    Return a dask array stacked over the sessions (in ``metadata`` order),
    one chunk per session; works on ``dask.distributed`` too. Needs the
    ``dask`` extra. Not combinable with ``average`` or a per-session
    ``nc_threshold`` over several sessions.""",
    "cache": """\
cache : bool, optional
    Use the decoded-betas cache (default: on unless ``LAION_FMRI_CACHE=0``).
    With the cache on, the first call for a session decodes the whole
    brain once (even when filtered), writes the cache and subsets in
    memory; later calls memory-map the cache and read only the selected
    columns. With it off, only the selected voxels are gathered while
    streaming. A file is never decoded twice in one call.""",
    "betas_returns": """\
numpy.ndarray, dict or dask.array.Array
    Arrays are float32 and C-contiguous; NaNs in the file are kept. A
    whole-brain array served from the cache is a copy-on-write view of
    the memory-mapped file (writable; changes never reach the disk).""",
    "betas_raises": """\
SessionNotFoundError
    Unknown session (lists the sessions on disk, suggests close names).
RoiNotFoundError
    Unknown ROI or category (lists what exists, suggests close names).
ValueError
    ``roi`` with ``mask``, a mask of the wrong length/dtype, a bad
    ``nc_threshold``, ``stimuli`` or ``average``.
DataNotDownloadedError
    A needed file is not on disk (names the download call).
CorruptFileError
    A file on disk is malformed.
MissingDependencyError
    ``lazy=True`` without dask.""",
    "session_raises": """\
ValueError
    If ``session`` is ``None`` or empty.
DataNotDownloadedError
    For ``"all"`` when no beta session is on disk.
SessionNotFoundError
    For a session that is not on disk (the message lists those that are).""",
}
PARAMS["roi_mask"] = PARAMS["roi"] + "\n" + PARAMS["mask"]

_MARKER = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*$", re.M)


def fill_doc(obj: _F) -> _F:
    """Replace ``%(name)s`` marker lines of ``obj.__doc__`` with :data:`PARAMS` text.

    Parameters
    ----------
    obj : callable or class
        Its docstring (and, for a class, those of its methods and
        properties) is filled in place.

    Returns
    -------
    callable or class
        ``obj`` itself (use as a decorator).

    Raises
    ------
    KeyError
        For a marker without a template.

    Examples
    --------
    >>> @fill_doc
    ... def f(session):
    ...     '''Do it.
    ...
    ...     Parameters
    ...     ----------
    ...     %(session)s
    ...     '''
    >>> "every session" in f.__doc__
    True
    """
    targets: list[object] = [obj]
    if isinstance(obj, type):  # a class: its methods and properties too
        targets += [v for v in vars(obj).values() if callable(v) or isinstance(v, property)]
    for target in targets:
        doc = getattr(target, "__doc__", None)
        if doc and "%(" in doc:
            target.__doc__ = _MARKER.sub(_expand, doc)
    return obj


def _expand(match: re.Match[str]) -> str:
    return textwrap.indent(PARAMS[match.group(2)], match.group(1))


__all__ = ["PARAMS", "fill_doc"]
