"""``download_stimuli``: the raw stimulus images and their metadata (behind the DUA).

Two routes, both through the download engine (atomic ``.part`` files,
resume, size + sha256 verification, manifest):

* the public dataset (default source) or an explicit ``server_url``: the
  access service's public manifest lists the gated files with sizes and
  sha256; files already verified on disk are skipped without asking for a
  grant; the rest come from presigned URLs of a stored (or newly requested)
  grant (:mod:`laion_fmri.access`);
* a sample / local folder or another S3 endpoint: the same agreement is
  accepted once per data directory, then the files come from the source.
"""

from __future__ import annotations

import os
from pathlib import Path

from laion_fmri import layout
from laion_fmri.access import (
    AccessClient,
    PresignedStore,
    ensure_grant,
    ensure_local_terms,
    record_local_agreement,
    uses_access_service,
)
from laion_fmri.config import get_data_dir
from laion_fmri.download.transfer import fetch_objects
from laion_fmri.errors import DownloadError
from laion_fmri.stores import open_store

__all__ = ["check_stimulus_access", "download_stimuli"]


def _has_size(root: Path, key: str, size: int) -> bool:
    try:
        return layout.local_path(root, key).stat().st_size == size
    except FileNotFoundError:
        return False


def check_stimulus_access(
    data_dir: str | os.PathLike[str] | None = None,
    interactive: bool | None = None,
    server_url: str | None = None,
) -> None:
    """Make sure the raw stimulus images may be fetched, before any transfer starts.

    Runs the same gate as :func:`download_stimuli` (the stored grant of the
    access service, or the once-per-data-directory agreement for a sample /
    local source) so a missing agreement fails before other files move.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Target data directory (default: configured).
    interactive : bool, optional
        Allow prompting (default: stdin is a terminal).
    server_url : str, optional
        Access service base URL (default ``LAION_FMRI_ACCESS_URL`` or the public service).

    Raises
    ------
    LicenseNotAcceptedError
        The agreement was declined, or cannot be asked for without a terminal.

    Examples
    --------
    >>> check_stimulus_access()  # doctest: +SKIP
    """
    root = Path(get_data_dir(data_dir))
    if not uses_access_service(server_url):
        ensure_local_terms(root, interactive=interactive)
        return
    client = AccessClient(server_url)
    files = [f for f in client.manifest().files if f.key.startswith(layout.STIMULI_ROOT + "/")]
    if any(not _has_size(root, f.key, f.size) for f in files):
        ensure_grant(client.server_url, interactive=interactive)


def download_stimuli(
    data_dir: str | os.PathLike[str] | None = None,
    server_url: str | None = None,
    n_jobs: int = 4,
    progress: bool = True,
    interactive: bool | None = None,
    accept_terms: bool = False,
) -> dict[str, Path]:
    """Download the stimulus images (``task-images_stimuli.h5``) and their metadata CSV.

    The first call asks for the data-use agreement (interactively, or fails
    fast without a terminal naming ``laion-fmri request-access``).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Target data directory (default: configured).
    server_url : str, optional
        Access service base URL (default ``LAION_FMRI_ACCESS_URL`` or the public service).
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show a progress display on a terminal.
    interactive : bool, optional
        Allow prompting (default: stdin is a terminal).
    accept_terms : bool
        For a sample/local source: accept the agreement in code instead of at
        a prompt (the caller has read :data:`laion_fmri.access.STIMULUS_TERMS`).
        The access service always needs a request with your details
        (``laion-fmri request-access``).

    Returns
    -------
    dict
        ``{file name: local path}``, e.g. ``{"task-images_stimuli.h5": Path(...)}``.

    Raises
    ------
    LicenseNotAcceptedError
        The agreement was declined, or cannot be asked for without a terminal.
    TermsOutdatedError, AccessRevokedError, AccessNotFoundError, RateLimitedError
        The access service refused the stored grant.
    DownloadError
        A file could not be fetched after every retry.

    Examples
    --------
    >>> from laion_fmri.download import download_stimuli
    >>> paths = download_stimuli()  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['task-images_metadata.csv', 'task-images_stimuli.h5']
    """
    root = Path(get_data_dir(data_dir))
    if uses_access_service(server_url):
        client = AccessClient(server_url)
        manifest = client.manifest()
        files = [f for f in manifest.files if f.key.startswith(layout.STIMULI_ROOT + "/")]
        # Ask for access before the progress display starts when bytes must move;
        # files already on disk with the right size are verified without a grant.
        missing = any(not _has_size(root, f.key, f.size) for f in files)
        granted = ensure_grant(client.server_url, interactive=interactive) if missing else None
        store = PresignedStore(
            client, manifest,
            lambda: granted or ensure_grant(client.server_url, interactive=interactive),
        )
        objects = list(store.list(layout.STIMULI_ROOT + "/"))
    else:
        if accept_terms:
            record_local_agreement(root)
        ensure_local_terms(root, interactive=interactive)
        store = open_store()
        objects = [store.head(key) for key in layout.GATED_STIMULUS_KEYS]
    report = fetch_objects(objects, store, root, n_jobs=n_jobs, progress=progress)
    if report.failed:
        details = "; ".join(f"{k}: {v}" for k, v in sorted(report.failed.items()))
        raise DownloadError(f"Stimulus download incomplete ({details}). Re-run to resume.")
    return {
        obj.key.rsplit("/", 1)[-1]: layout.local_path(root, obj.key) for obj in objects
    }
