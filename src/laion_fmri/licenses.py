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
data-use agreement, handled by :mod:`laion_fmri.access`; both use the one
flow of :class:`laion_fmri.agreements.Agreement`.)
"""

from __future__ import annotations

import os
from pathlib import Path

from laion_fmri.agreements import AGREE, Agreement

ENV_ACCEPT_LICENSE = "LAION_FMRI_ACCEPT_LICENSE"
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

DATASET_LICENSE = Agreement(
    title="LAION-fMRI dataset license (CC0 1.0)",
    text=lambda: DATASET_LICENSE_TEXT,
    marker="license",
    env_var=ENV_ACCEPT_LICENSE,
    how=(
        "Run `laion-fmri accept-license` once (or set "
        f"{ENV_ACCEPT_LICENSE}=1 for scripted runs), then retry."
    ),
    prompt=f'Type "{AGREE}" to accept and continue with the download: ',
)
PROMPT = DATASET_LICENSE.prompt


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
    return DATASET_LICENSE.accepted(data_dir)


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
    return DATASET_LICENSE.record(data_dir)


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

    Examples
    --------
    >>> ensure_dataset_license("/tmp/laion_data", interactive=False)  # doctest: +SKIP
    """
    DATASET_LICENSE.ensure(data_dir, interactive)


__all__ = [
    "AGREE",
    "CC0_URL",
    "DATASET_LICENSE",
    "DATASET_LICENSE_TEXT",
    "ENV_ACCEPT_LICENSE",
    "PROMPT",
    "accept_dataset_license",
    "dataset_license_accepted",
    "ensure_dataset_license",
]
