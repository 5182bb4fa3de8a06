"""Embeddings, captions and segmentations without the hub (``load_embeddings`` ...)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import h5py

from laion_fmri import layout
from laion_fmri.errors import StimuliNotDownloadedError, StimulusNotFoundError
from laion_fmri.stimuli._captions import StimulusCaptions
from laion_fmri.stimuli._embeddings import StimulusEmbeddings
from laion_fmri.stimuli._files import require
from laion_fmri.stimuli._hub import Stimuli
from laion_fmri.stimuli._names import unknown
from laion_fmri.stimuli._segmentations import StimulusSegmentations

__all__ = ["Captions", "Embeddings", "Segmentations", "load_embeddings"]


class Embeddings(StimulusEmbeddings):
    """Image embeddings of chosen models without the hub (``load_embeddings``).

    The same lookups as ``load_stimuli().embeddings`` (``get``, ``all``,
    ``image_ids``, ``dim``), restricted to ``models``, plus ``emb[model]``
    (the ``(N, D)`` HDF5 dataset, read lazily) and ``len(emb)`` (images).

    Parameters
    ----------
    models : str or iterable of str
        ``"all"`` (every downloaded model), one model or several
        (case-insensitive: ``CLIP``, ``DINOv2``, ``PEcore``, ``SigLIP2``).
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Raises
    ------
    StimulusNotFoundError
        For an unknown model name (also a ``KeyError`` and a ``ValueError``).
    StimuliNotDownloadedError
        If a chosen model, or with ``"all"`` every model, is not downloaded.

    Examples
    --------
    >>> emb = Embeddings("CLIP")  # doctest: +SKIP
    >>> emb["CLIP"].shape, emb.get("CLIP", emb.image_ids[0]).shape  # doctest: +SKIP
    ((25052, 1024), (1024,))
    """

    def __init__(self, models: str | Iterable[str] = "all",
                 data_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(Stimuli(data_dir))
        self._selected = self._choose(models)

    def _choose(self, models: str | Iterable[str]) -> tuple[str, ...]:
        downloaded = super().models
        if isinstance(models, str) and models.lower() == "all":
            if not downloaded:
                raise StimuliNotDownloadedError(
                    f"No embedding file is downloaded in {self._hub.data_dir}. Fetch them with "
                    "`laion_fmri.download.download_embeddings()`."
                )
            return downloaded
        wanted = [models] if isinstance(models, str) else list(models)
        if not wanted:
            raise StimulusNotFoundError("models= selects no model; pass 'all' or model names.")
        chosen = tuple(dict.fromkeys(super(Embeddings, self)._canonical(m) for m in wanted))
        for model in chosen:
            require(self._hub._path(layout.embeddings_key(model)), model)
        return chosen

    @property
    def models(self) -> tuple[str, ...]:
        """The chosen models, in canonical order."""
        return self._selected

    def _canonical(self, model: str) -> str:
        name = super()._canonical(model)
        if name not in self._selected:
            raise unknown("embedding model of this Embeddings object", model, self._selected,
                           list_all=True)
        return name

    @property
    def image_ids(self) -> list[str]:  # type: ignore[override]
        """Image names in the row order of the first chosen model's file."""
        return super().image_ids(self._selected[0])

    def __len__(self) -> int:
        return len(self._file(self._selected[0]).ids())

    def __getitem__(self, model: str) -> h5py.Dataset:
        return self._file(model).h5.get()[layout.H5_EMBEDDING]

    def __getstate__(self) -> dict[str, Any]:
        return {"_hub": self._hub, "_selected": self._selected}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._selected = state["_selected"]

    def __repr__(self) -> str:
        return f"Embeddings(models={list(self._selected)!r}, data_dir={str(self._hub.data_dir)!r})"


def load_embeddings(models: str | Iterable[str] = "all",
                    data_dir: str | os.PathLike[str] | None = None) -> Embeddings:
    """Open the image embeddings of some models (nothing is read until used).

    Parameters
    ----------
    models : str or iterable of str
        ``"all"`` (every downloaded model), one model or several.
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Returns
    -------
    Embeddings

    Raises
    ------
    StimulusNotFoundError
        For an unknown model name.
    StimuliNotDownloadedError
        If a chosen model is not downloaded.

    Examples
    --------
    >>> import laion_fmri
    >>> emb = laion_fmri.load_embeddings(["CLIP", "DINOv2"])  # doctest: +SKIP
    >>> emb.get("DINOv2", ["a.jpg", "b.jpg"]).shape  # doctest: +SKIP
    (2, 1024)
    """
    return Embeddings(models, data_dir)


class Captions(StimulusCaptions):
    """Human and AI captions without the hub (same methods as ``load_stimuli().captions``).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Examples
    --------
    >>> Captions().list("unique_THINGS_zebra_p04.jpg", source="ai")  # doctest: +SKIP
    []
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(Stimuli(data_dir))


class Segmentations(StimulusSegmentations):
    """Object masks without the hub (same methods as ``load_stimuli().segmentations``).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Examples
    --------
    >>> Segmentations().nouns("shared_12rep_LAION_cluster_1003_i0.jpg")  # doctest: +SKIP
    ['fingers', 'hand', 'pullover']
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(Stimuli(data_dir))
