"""Per-object decisions of a transfer (skip / check / fetch) and small shared rules.

Pure: manifest records and ``stat`` results in, decisions out.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Literal

from laion_fmri.stores import ObjectInfo

Action = Literal["skip", "check", "fetch"]


def decide(
    obj: ObjectInfo,
    record: dict[str, object] | None,
    local: os.stat_result | None,
) -> Action:
    """Decide what to do with one planned object.

    Parameters
    ----------
    obj : ObjectInfo
        What the source lists now.
    record : dict, optional
        The manifest record of the key (``size``, ``etag``, ``mtime_ns``).
    local : os.stat_result, optional
        ``stat`` of the local file, ``None`` when absent.

    Returns
    -------
    {"skip", "check", "fetch"}
        ``skip``: verified earlier and untouched since; ``check``: present with
        the right size but not (or no longer) vouched for by the manifest, so
        hash it locally before trusting it; ``fetch``: download.

    Examples
    --------
    >>> decide(ObjectInfo("a", 3, None, None), None, None)
    'fetch'
    """
    if local is None or local.st_size != obj.size:
        return "fetch"
    if record is not None:
        same_object = (
            record.get("size") == obj.size
            and (obj.etag is None or record.get("etag") in (None, obj.etag))
        )
        if not same_object:
            return "fetch"
        if record.get("mtime_ns") == local.st_mtime_ns:
            return "skip"
    return "check"


def validate_n_jobs(n_jobs: object) -> int:
    """Return a usable worker count (warns and corrects bad values).

    Parameters
    ----------
    n_jobs : int
        Requested parallel transfers; non-int, bool or < 1 become 1 with a
        warning, values above ``max(32, 2 * cpus)`` are clamped with a warning.

    Returns
    -------
    int

    Examples
    --------
    >>> validate_n_jobs(4)
    4
    """
    limit = max(32, 2 * (os.cpu_count() or 1))
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        warnings.warn(f"n_jobs must be a positive int, got {n_jobs!r}; using 1.", stacklevel=3)
        return 1
    if n_jobs > limit:
        warnings.warn(
            f"n_jobs={n_jobs} is higher than recommended; using {limit}.", stacklevel=3
        )
        return limit
    return n_jobs


def format_bytes(n: float) -> str:
    """Human-readable byte count (``1.5 GB``).

    Parameters
    ----------
    n : float
        Bytes.

    Returns
    -------
    str

    Examples
    --------
    >>> format_bytes(1536)
    '1.5 kB'
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def dedupe(objects: Sequence[ObjectInfo]) -> list[ObjectInfo]:
    """Drop repeated keys, keeping the first occurrence."""
    seen: set[str] = set()
    out = []
    for obj in objects:
        if obj.key not in seen:
            seen.add(obj.key)
            out.append(obj)
    return out


__all__ = [
    "Action",
    "decide",
    "dedupe",
    "format_bytes",
    "validate_n_jobs",
]
