"""Image embeddings joined to image names by name, read in bounded slabs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from laion_fmri import layout
from laion_fmri.errors import CorruptFileError, StimuliNotDownloadedError, StimulusNotFoundError
from laion_fmri.stimuli._files import LazyH5, check_embedding_h5
from laion_fmri.stimuli._names import Namespace, as_name_list, indexer
from laion_fmri.vocab import normalize_model

__all__ = ["StimulusEmbeddings"]

# Above this many requested rows, reading the whole embedding matrix once (and
# keeping it) beats an HDF5 point selection.
_FULL_READ_ROWS = 256
# Rows per contiguous read when many (but less than half of all) rows are asked for.
_BLOCK_ROWS = 4096


class _ModelFile:
    """State of one embedding file: lazy handle, id index, valid flags, cached matrix."""

    def __init__(self, path: Path, model: str) -> None:
        self.h5 = LazyH5(path, model, check_embedding_h5)
        self._ids: pd.Index | None = None
        self._valid: np.ndarray | None = None
        self.matrix: np.ndarray | None = None

    def ids(self) -> pd.Index:
        if self._ids is None:
            raw = self.h5.get()[layout.H5_IMAGE_IDS][()]
            names = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw]
            index = pd.Index(names, dtype=object)
            if not index.is_unique:
                dup = index[index.duplicated()][0]
                raise CorruptFileError(
                    f"{self.h5.path}: image id {dup!r} occurs more than once. Delete it and download again."
                )
            self._ids = index
        return self._ids

    def valid(self) -> np.ndarray:
        if self._valid is None:
            self._valid = np.asarray(self.h5.get()[layout.H5_VALID][()], dtype=bool)
        return self._valid

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions``; memory stays within about twice the rows asked for."""
        ds = self.h5.get()[layout.H5_EMBEDDING]
        if positions.size == 0:
            return np.empty((0, ds.shape[1]), dtype=ds.dtype)
        uniq, inverse = np.unique(positions, return_inverse=True)
        if self.matrix is None and uniq.size > _FULL_READ_ROWS and 2 * uniq.size >= ds.shape[0]:
            self.matrix = ds[()]
        if self.matrix is not None:
            return self.matrix[positions]
        if uniq.size <= _FULL_READ_ROWS:
            block = ds[uniq] if uniq.size > 1 else ds[int(uniq[0]) : int(uniq[0]) + 1]
        else:
            block = np.empty((uniq.size, ds.shape[1]), dtype=ds.dtype)
            done = 0
            while done < uniq.size:  # contiguous slabs of at most _BLOCK_ROWS rows
                lo = int(uniq[done])
                hi = lo + _BLOCK_ROWS
                stop = done + int(np.searchsorted(uniq[done:], hi))
                slab = ds[lo : min(hi, int(uniq[stop - 1]) + 1)]
                block[done:stop] = slab[uniq[done:stop] - lo]
                done = stop
        return block[inverse.ravel()]


class StimulusEmbeddings(Namespace):
    """Precomputed image embeddings (``CLIP``, ``DINOv2``, ``PEcore``, ``SigLIP2``) by name.

    Values come back in the stored dtype (``float16``) unless ``dtype=`` asks
    for another. Rows whose ``valid`` flag is False come back as NaN.

    Parameters
    ----------
    hub : Stimuli
        The hub whose data directory is read (created by :func:`load_stimuli`).

    Examples
    --------
    >>> emb = load_stimuli().embeddings  # doctest: +SKIP
    >>> emb.get("CLIP", "shared_12rep_LAION_cluster_1003_i0.jpg").shape  # doctest: +SKIP
    (1024,)
    """

    def _reset(self) -> None:
        self._files: dict[str, _ModelFile] = {}

    @property
    def models(self) -> tuple[str, ...]:
        """Models whose embedding file is downloaded, in canonical order."""
        return tuple(
            m for m in layout.EMBEDDING_MODELS if self._hub._path(layout.embeddings_key(m)).is_file()
        )

    def _canonical(self, model: str) -> str:
        if not isinstance(model, str):
            raise TypeError(f"The model must be a str, not {type(model).__name__}.")
        return normalize_model(model, StimulusNotFoundError)

    def _file(self, model: str) -> _ModelFile:
        model = self._canonical(model)
        state = self._files.get(model)
        if state is None:
            state = _ModelFile(self._hub._path(layout.embeddings_key(model)), model)
            self._files[model] = state
        return state

    def __contains__(self, item: object) -> bool:
        if isinstance(item, tuple) and len(item) == 2:
            model, name = item
            return model in self and name in self._file(model).ids()
        return isinstance(item, str) and item in self.models

    def image_ids(self, model: str) -> list[str]:
        """Image names in the row order of the model's file.

        Parameters
        ----------
        model : str
            Model name.

        Returns
        -------
        list of str
        """
        return self._file(model).ids().tolist()

    def dim(self, model: str) -> int:
        """Embedding dimension ``D`` of a model.

        Parameters
        ----------
        model : str
            Model name.

        Returns
        -------
        int
        """
        return int(self._file(model).h5.get()[layout.H5_EMBEDDING].shape[1])

    def _take(self, model: str, positions: np.ndarray, dtype: Any = None) -> np.ndarray:
        """Rows at file ``positions`` (vectorised); invalid rows become NaN."""
        state = self._file(model)
        out = state.rows(np.asarray(positions, dtype=np.intp))
        if dtype is not None:
            out = out.astype(dtype, copy=False)
        bad = ~state.valid()[positions]
        if bad.any():  # out is a fresh array (fancy indexing copies)
            out[bad] = np.nan
        return out

    def positions(self, model: str, names: Sequence[str]) -> np.ndarray:
        """Row of each name in the model's file (vectorised join by name).

        Parameters
        ----------
        model : str
            Model name.
        names : sequence of str
            Image names.

        Returns
        -------
        numpy.ndarray
            ``intp`` rows, one per name.
        """
        return indexer(self._file(model).ids(), list(names))

    def get(self, model: str, names: str | Iterable[str], dtype: Any = None) -> np.ndarray:
        """Embedding(s) of one or several images, in the caller's order.

        Parameters
        ----------
        model : str
            ``"CLIP"``, ``"DINOv2"``, ``"PEcore"`` or ``"SigLIP2"`` (case-insensitive).
        names : str or iterable of str
            Image name(s).
        dtype : numpy dtype, optional
            Output dtype; default keeps the stored ``float16``.

        Returns
        -------
        numpy.ndarray
            ``(D,)`` for one name, ``(n, D)`` for several.

        Raises
        ------
        StimulusNotFoundError
            Unknown model or image name (with close matches).
        StimuliNotDownloadedError
            The model's file is not downloaded.

        Examples
        --------
        >>> load_stimuli().embeddings.get("CLIP", ["a.jpg", "b.jpg"]).shape  # doctest: +SKIP
        (2, 1024)
        """
        name_list, single = as_name_list(names)
        out = self._take(model, self.positions(model, name_list), dtype)
        return out[0] if single else out

    def all(self, model: str, dtype: Any = None) -> np.ndarray:
        """Every image's embedding, in metadata-table row order.

        Parameters
        ----------
        model : str
            Model name (case-insensitive).
        dtype : numpy dtype, optional
            Output dtype; default keeps the stored ``float16``.

        Returns
        -------
        numpy.ndarray
            ``(N, D)``; row ``i`` belongs to ``metadata.image_name[i]``.

        Raises
        ------
        StimuliNotDownloadedError
            If the metadata table (``download_stimuli``) or the model's file is missing.

        Examples
        --------
        >>> load_stimuli().embeddings.all("CLIP").shape  # doctest: +SKIP
        (25052, 1024)
        """
        try:
            names = self._hub._name_index().tolist()
        except StimuliNotDownloadedError as exc:
            raise StimuliNotDownloadedError(
                f"{exc} (all() returns rows in metadata order; without the metadata use "
                f"get({model!r}, embeddings.image_ids({model!r})) for the file's own order.)"
            ) from exc
        try:
            rows = self.positions(model, names)
        except StimulusNotFoundError as exc:
            raise StimulusNotFoundError(
                f"Some images of the stimulus metadata table have no {model} embedding, so the "
                "two files are probably from different dataset versions; re-download both "
                f"(download_stimuli() and download_embeddings(models=[{model!r}])). Details: {exc}"
            ) from exc
        return self._take(model, rows, dtype)
