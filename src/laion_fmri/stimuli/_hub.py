"""The stimulus hub: one data directory, its metadata table and the four namespaces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from laion_fmri import layout
from laion_fmri.config import get_data_dir
from laion_fmri.errors import CorruptFileError
from laion_fmri.stimuli._captions import StimulusCaptions
from laion_fmri.stimuli._embeddings import StimulusEmbeddings
from laion_fmri.stimuli._files import read_csv
from laion_fmri.stimuli._images import StimulusImages
from laion_fmri.stimuli._names import unknown
from laion_fmri.stimuli._segmentations import StimulusSegmentations

__all__ = ["Stimuli", "load_stimuli"]


class Stimuli:
    """The stimulus hub (use :func:`load_stimuli`).

    Attributes
    ----------
    data_dir : pathlib.Path
        The data directory whose ``stimuli/`` folder is read.
    images, embeddings, captions, segmentations
        Namespaces; each opens its files on first use.

    Examples
    --------
    >>> with load_stimuli() as stim:  # doctest: +SKIP
    ...     stim.metadata.head()
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.data_dir = Path(get_data_dir(data_dir))
        self._metadata: pd.DataFrame | None = None
        self._names: pd.Index | None = None
        self.images = StimulusImages(self)
        self.embeddings = StimulusEmbeddings(self)
        self.captions = StimulusCaptions(self)
        self.segmentations = StimulusSegmentations(self)

    def _path(self, key: str) -> Path:
        return layout.local_path(self.data_dir, key)

    @property
    def metadata(self) -> pd.DataFrame:
        """One row per image; row ``i`` is image ``i`` of the image HDF5.

        Raises
        ------
        StimuliNotDownloadedError
            If ``task-images_metadata.csv`` is missing (it comes with ``download_stimuli``).
        """
        if self._metadata is None:
            path = self._path(layout.STIMULI_METADATA_KEY)
            frame = read_csv(path, layout.STIMULUS_METADATA_COLUMNS, "metadata")
            if frame["image_name"].duplicated().any():
                dup = frame.loc[frame["image_name"].duplicated(), "image_name"].iloc[0]
                raise CorruptFileError(f"{path}: image_name {dup!r} occurs more than once.")
            self._metadata = frame
        return self._metadata

    def _name_index(self) -> pd.Index:
        if self._names is None:
            self._names = pd.Index(self.metadata["image_name"].tolist(), dtype=object)
        return self._names

    def _known_names(self) -> pd.Index | dict[str, np.ndarray] | None:
        """Every image name, from the first table on disk (metadata, captions, embeddings)."""
        if self._path(layout.STIMULI_METADATA_KEY).is_file():
            return self._name_index()
        if self._path(layout.CAPTIONS_KEY).is_file():
            return self.captions._name_groups()
        models = self.embeddings.models
        return self.embeddings._file(models[0]).ids() if models else None

    def _check_known(self, name: object) -> None:
        """Raise for a name that no stimulus table on disk knows."""
        if not isinstance(name, str):
            raise TypeError(f"Image names must be str, not {type(name).__name__}.")
        known = self._known_names()
        if known is not None and name not in known:
            raise unknown("image name", name, list(known))

    def close(self) -> None:
        """Close every open HDF5 handle (they reopen on next use)."""
        for ns in (self.images, self.embeddings, self.captions, self.segmentations):
            ns.close()

    def __enter__(self) -> Stimuli:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["data_dir"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Stimuli(data_dir={str(self.data_dir)!r})"


def load_stimuli(data_dir: str | os.PathLike[str] | None = None) -> Stimuli:
    """Open the stimulus hub of a data directory (nothing is read until used).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Returns
    -------
    Stimuli

    Raises
    ------
    DataDirNotSetError
        If no data directory is configured.

    Examples
    --------
    >>> import laion_fmri
    >>> stim = laion_fmri.load_stimuli()  # doctest: +SKIP
    >>> stim.embeddings.get("CLIP", "shared_12rep_LAION_cluster_1003_i0.jpg").shape  # doctest: +SKIP
    (1024,)
    """
    return Stimuli(data_dir)
