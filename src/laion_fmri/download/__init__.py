"""Download the dataset: filtered, parallel, resumable and verified.

Public functions
----------------
:func:`download`
    Subject data filtered by BIDS entities (``ses``, ``desc`` ...).
:func:`download_raw`
    One subject's raw BIDS tree, filtered by session, run, echo and part.
:func:`download_embeddings`, :func:`download_segmentations`, :func:`download_captions`
    The public (CC0) stimulus derivatives.
:func:`download_stimuli`
    The raw stimulus images (data-use agreement; :mod:`laion_fmri.download.stimuli`).
:func:`verify`
    Re-check what is on disk against the manifest, optionally repairing it.

Modules: :mod:`~laion_fmri.download.plan` (pure selection rules),
:mod:`~laion_fmri.download.transfer` (atomic, resumable, verified transfers),
:mod:`~laion_fmri.download.manifest` (SQLite record of verified files).
"""

from __future__ import annotations

from typing import Any

from laion_fmri.download._raw import download_raw
from laion_fmri.download.api import (
    VerifyReport,
    download,
    download_captions,
    download_embeddings,
    download_segmentations,
    verify,
)
from laion_fmri.download.plan import Plan
from laion_fmri.download.transfer import DownloadReport, fetch_objects


def __getattr__(name: str) -> Any:
    # The stimulus module is owned separately and pulls in the access client.
    if name == "download_stimuli":
        from laion_fmri.download.stimuli import download_stimuli

        return download_stimuli
    raise AttributeError(f"module 'laion_fmri.download' has no attribute {name!r}")


__all__ = [
    "DownloadReport",
    "Plan",
    "VerifyReport",
    "download",
    "download_captions",
    "download_embeddings",
    "download_raw",
    "download_segmentations",
    "download_stimuli",
    "fetch_objects",
    "verify",
]
