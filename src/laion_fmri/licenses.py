"""The CC0 dataset license notice and its one-time acceptance.

The imaging and participant data (and the public stimulus derivatives) are
released under CC0 1.0. Before the first download into a data directory the
notice is shown once and the acceptance is recorded in
``<data_dir>/.laion_fmri/license_accepted``.

Ways to accept:

* interactively: type ``I AGREE`` at the prompt shown by the first download;
* ``laion-fmri accept-license`` (prints the notice and records acceptance);
* :func:`accept_dataset_license` from Python;
* scripted runs: set ``LAION_FMRI_ACCEPT_LICENSE=1``.

A run without a terminal and without a recorded acceptance fails at once
with :class:`~laion_fmri.errors.LicenseNotAcceptedError` naming the command;
it never waits on ``input()``. (The stimulus images have their own
data-use agreement, handled by :mod:`laion_fmri.access`.)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from laion_fmri import layout
from laion_fmri.errors import LicenseNotAcceptedError

ENV_ACCEPT_LICENSE = "LAION_FMRI_ACCEPT_LICENSE"
AGREE = "I AGREE"
CC0_URL = "https://creativecommons.org/publicdomain/zero/1.0/"

DATASET_LICENSE_TEXT = f"""\
=== LAION-fMRI Dataset License (CC0 1.0) ===

The LAION-fMRI imaging data, participant tables and derived maps (betas,
noise ceilings, ROI masks) as well as the public stimulus derivatives
(embeddings, captions, segmentations) are dedicated to the public domain
under the Creative Commons CC0 1.0 Universal dedication:
{CC0_URL}

The stimulus images themselves are NOT covered by CC0: they remain with their
original rights holders and are available only under a separate data-use
agreement (see `laion-fmri download-stimuli`).

Please cite the LAION-fMRI dataset when you use it.
"""

PROMPT = f'Type "{AGREE}" to accept and continue with the download: '


def dataset_license_accepted(data_dir: str | os.PathLike[str]) -> bool:
    """Whether the CC0 notice was accepted for this data directory.

    Parameters
    ----------
    data_dir : str or Path
        The data directory.

    Returns
    -------
    bool

    Examples
    --------
    >>> dataset_license_accepted("/nonexistent")
    False
    """
    return layout.license_marker(data_dir).is_file()


def accept_dataset_license(data_dir: str | os.PathLike[str]) -> Path:
    """Record acceptance of the CC0 notice; return the marker path.

    Parameters
    ----------
    data_dir : str or Path
        The data directory.

    Returns
    -------
    Path

    Examples
    --------
    >>> accept_dataset_license("/tmp/laion_data")  # doctest: +SKIP
    """
    marker = layout.license_marker(data_dir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"accepted CC0 1.0 notice at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n",
                      encoding="utf-8")
    return marker


def _env_accepts() -> bool:
    return os.environ.get(ENV_ACCEPT_LICENSE, "").strip().lower() in ("1", "true", "yes")


def ensure_dataset_license(
    data_dir: str | os.PathLike[str], interactive: bool | None = None
) -> None:
    """Make sure the CC0 notice was accepted, asking once on a terminal.

    Parameters
    ----------
    data_dir : str or Path
        The data directory.
    interactive : bool, optional
        Force (``True``) or forbid (``False``) the prompt; by default it is
        shown only when stdin is a terminal.

    Raises
    ------
    LicenseNotAcceptedError
        When not accepted (non-interactive without marker, or another answer).

    Examples
    --------
    >>> ensure_dataset_license("/tmp/laion_data", interactive=False)  # doctest: +SKIP
    """
    if dataset_license_accepted(data_dir):
        return
    if _env_accepts():
        accept_dataset_license(data_dir)
        return
    how = (
        "Run `laion-fmri accept-license` once (or set "
        f"{ENV_ACCEPT_LICENSE}=1 for scripted runs), then retry."
    )
    if interactive is None:
        interactive = bool(sys.stdin and sys.stdin.isatty())
    if not interactive:
        raise LicenseNotAcceptedError(
            f"The LAION-fMRI dataset license (CC0 1.0) has not been accepted for {data_dir}. "
            + how
        )
    print(DATASET_LICENSE_TEXT)
    try:
        reply = input(PROMPT)
    except EOFError:
        reply = ""
    if reply.strip() != AGREE:
        raise LicenseNotAcceptedError(
            f"The dataset license must be accepted before downloading (you typed "
            f"{reply.strip()[:40]!r}, not {AGREE!r}). " + how
        )
    accept_dataset_license(data_dir)


__all__ = [
    "DATASET_LICENSE_TEXT",
    "ENV_ACCEPT_LICENSE",
    "accept_dataset_license",
    "dataset_license_accepted",
    "ensure_dataset_license",
]
