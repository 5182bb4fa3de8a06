"""The public (CC0) stimulus derivatives: embeddings, segmentations, captions."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from laion_fmri import layout
from laion_fmri.download._common import _data_dir, _with_sidecars
from laion_fmri.download.plan import (
    validate_n_jobs,
)
from laion_fmri.download.transfer import (
    DownloadReport,
    fetch_objects,
)
from laion_fmri.errors import (
    DataNotFoundError,
)
from laion_fmri.licenses import ensure_dataset_license
from laion_fmri.stores import open_store


def fetch_public_keys(
    keys: Iterable[str], what: str, data_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 4, progress: bool = True,
) -> DownloadReport:
    """Fetch named public keys (CC0 stimulus derivatives) after the license check.

    JSON sidecars of the keys come along when the source has them.

    Parameters
    ----------
    keys : iterable of str
        Keys under ``stimuli/``.
    what : str
        What the files are, for messages.
    data_dir : str or Path, optional
        Target directory.
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show a progress display.

    Returns
    -------
    DownloadReport

    Raises
    ------
    DataNotFoundError
        If a key is not in the source.

    Examples
    --------
    >>> fetch_public_keys([layout.CAPTIONS_KEY], "Captions")  # doctest: +SKIP
    """
    root = _data_dir(data_dir)
    n_jobs = validate_n_jobs(n_jobs)
    ensure_dataset_license(root)
    store = open_store()
    keys = list(keys)
    listed = {o.key: o for o in store.list_files(layout.STIMULI_ROOT)}
    for key in keys:
        if key not in listed:
            raise DataNotFoundError(
                f"{what} file {key!r} was not found in {store.url}. Has it been uploaded yet?"
            )
    # JSON sidecars (provenance) come along when the source has them.
    objects = [listed[k] for k in sorted(_with_sidecars(keys)) if k in listed]
    report = fetch_objects(objects, store, root, n_jobs=n_jobs, progress=progress)
    print(report)
    return report


def download_embeddings(
    models: str | Sequence[str] = "all",
    data_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 4,
    progress: bool = True,
) -> DownloadReport:
    """Download stimulus embeddings (CLIP, DINOv2, PEcore, SigLIP2; CC0).

    Parameters
    ----------
    models : str or list of str
        ``"all"`` or model names (case-insensitive).
    data_dir : str or Path, optional
        Target directory.
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show a progress display.

    Returns
    -------
    DownloadReport

    Raises
    ------
    DataNotFoundError
        For an unknown model or a file missing from the source.

    Examples
    --------
    >>> download_embeddings(["CLIP"])  # doctest: +SKIP
    """
    by_lower = {m.lower(): m for m in layout.EMBEDDING_MODELS}
    wanted = [models] if isinstance(models, str) else list(models)
    if any(isinstance(m, str) and m.lower() == "all" for m in wanted):
        names = list(layout.EMBEDDING_MODELS)
    else:
        names = []
        for m in wanted:
            if not isinstance(m, str) or m.lower() not in by_lower:
                raise DataNotFoundError(
                    f"No embeddings for model {m!r}; available: "
                    f"{', '.join(layout.EMBEDDING_MODELS)} (or 'all')."
                )
            names.append(by_lower[m.lower()])
    keys = [layout.embeddings_key(m) for m in dict.fromkeys(names)]
    return fetch_public_keys(keys, "Embeddings", data_dir, n_jobs, progress)


def download_segmentations(
    data_dir: str | os.PathLike[str] | None = None, n_jobs: int = 4, progress: bool = True
) -> DownloadReport:
    """Download the object segmentations of the shared images and their table (CC0).

    Parameters
    ----------
    data_dir : str or Path, optional
        Target directory.
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show a progress display.

    Returns
    -------
    DownloadReport

    Raises
    ------
    DataNotFoundError
        If the files are missing from the source.

    Examples
    --------
    >>> download_segmentations()  # doctest: +SKIP
    """
    keys = [layout.SEGMENTATIONS_KEY, layout.SEGMENTATIONS_METADATA_KEY]
    return fetch_public_keys(keys, "Segmentation", data_dir, n_jobs, progress)


def download_captions(
    data_dir: str | os.PathLike[str] | None = None, n_jobs: int = 4, progress: bool = True
) -> DownloadReport:
    """Download the human and AI image captions (CC0).

    Parameters
    ----------
    data_dir : str or Path, optional
        Target directory.
    n_jobs : int
        Parallel transfers.
    progress : bool
        Show a progress display.

    Returns
    -------
    DownloadReport

    Raises
    ------
    DataNotFoundError
        If the file is missing from the source.

    Examples
    --------
    >>> download_captions()  # doctest: +SKIP
    """
    return fetch_public_keys([layout.CAPTIONS_KEY], "Captions", data_dir, n_jobs, progress)


__all__ = [
    "download_captions",
    "download_embeddings",
    "download_segmentations",
    "fetch_public_keys",
]
