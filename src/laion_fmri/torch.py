"""PyTorch adapter: a map-style ``Dataset`` over one subject's trials.

Items come straight from the memory-mapped betas cache
(:mod:`laion_fmri.betas`), so memory stays proportional to the batch, not to
the number of trials. The dataset holds only cheap state (trial and voxel
index arrays, per-session z-score statistics); every process (the main one
and each ``DataLoader`` worker) opens its own memory maps and stimulus HDF5
handles on first use, and nothing open is ever pickled.

``torch`` is an optional dependency (``pip install 'laion-fmri[torch]'``):
importing this module works without it, constructing a dataset raises
:class:`~laion_fmri.errors.MissingDependencyError`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri._docs import fill_doc
from laion_fmri.errors import MissingDependencyError
from laion_fmri.vocab import EMBEDDING_MODELS, canonical_model, suggest

if TYPE_CHECKING:  # pragma: no cover
    from laion_fmri._types import SubjectLike
    from laion_fmri.betas import SessionBetas
    from laion_fmri.stimuli import Stimuli

try:  # absolute import on purpose: this module's own name is ``torch``
    _torch: Any = importlib.import_module("torch")
    _Base: type = importlib.import_module("torch.utils.data").Dataset
except ImportError:  # pragma: no cover - exercised in a subprocess test
    _torch = None
    _Base = object

IMAGE = "image"
_ZSCORE_CHUNK = 256  # rows per pass when computing per-session statistics


def _require_torch() -> Any:
    if _torch is None:
        raise MissingDependencyError("torch", "torch")
    return _torch


def _canonical_features(features: object) -> tuple[list[str], list[tuple[str, str]]]:
    """Split ``features`` into ``["image"]`` and ``[(key, canonical model)]``."""
    if isinstance(features, str):
        features = (features,)
    if features is None:
        features = ()
    want_image, models = [], []
    for name in features:  # type: ignore[union-attr]
        if not isinstance(name, str):
            raise ValueError(f"features must be strings, got {name!r}.")
        model = canonical_model(name)
        if name.lower() == IMAGE:
            want_image = [IMAGE]
        elif model is not None:
            models.append((name, model))
        else:
            raise ValueError(
                f"Unknown feature {name!r}.{suggest(name, [IMAGE, *EMBEDDING_MODELS])} Choose "
                f"'image' and/or embedding models {', '.join(EMBEDDING_MODELS)}."
            )
    return want_image, models


def _check_size(image_size: object) -> tuple[int, int] | None:
    """``image_size`` -> ``(height, width)`` or ``None``."""
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        pair = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in image_size)
    ):
        pair = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(f"image_size must be an int or (height, width), not {image_size!r}.")
    if min(pair) < 1:
        raise ValueError(f"image_size must be positive, not {image_size!r}.")
    return pair


def _session_stats(rows: Any, cols: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel NaN-ignoring mean and ``1/std`` (ddof=0; 0 for constant voxels).

    Two passes in row chunks over a memory map, in float64, so memory stays
    at a chunk; same conventions as :func:`laion_fmri.stats.zscore_by_session`.
    """
    n = rows.shape[0]
    width = rows.shape[1] if cols is None else cols.size
    total = np.zeros(width)
    count = np.zeros(width)

    def block(start: int) -> np.ndarray:
        part = rows[start : start + _ZSCORE_CHUNK]
        part = part if cols is None else part[:, cols]
        return np.asarray(part, dtype=np.float64)

    for start in range(0, n, _ZSCORE_CHUNK):
        b = block(start)
        ok = ~np.isnan(b)
        total += np.where(ok, b, 0.0).sum(axis=0)
        count += ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    squares = np.zeros(width)
    for start in range(0, n, _ZSCORE_CHUNK):
        d = block(start) - mean
        squares += np.where(np.isnan(d), 0.0, d * d).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(squares / count)
        scale = np.where(std > 0, 1.0 / std, 0.0)
    return mean, scale


@fill_doc
class SubjectDataset(_Base):  # type: ignore[misc, valid-type]
    """One item per trial: betas, image, embeddings, label, session, global trial index.

    Parameters
    ----------
    sub : Subject
        A loaded subject (:func:`laion_fmri.load_subject`), or anything with
        the same ``select``/``metadata``/``get_betas_reader`` interface.
    %(session)s
    %(roi_mask)s
    %(nc_threshold_one)s
    features : sequence of str
        ``"image"`` and/or embedding model names (``"CLIP"``, ``"DINOv2"``,
        ``"PEcore"``, ``"SigLIP2"``, case-insensitive). Each becomes an item key
        spelled as given. ``()`` gives betas only.
    image_size : int or (int, int), optional
        Resize images to ``size x size`` or ``(height, width)``.
    transform : callable, optional
        Applied to the RGB ``PIL.Image`` (after ``image_size`` resizing if
        both are given); its output is the item's ``image``.
    zscore : bool
        z-score betas per voxel within each session (NaN-ignoring mean and
        population std; a constant voxel gives 0), exactly as
        :func:`laion_fmri.stats.zscore_by_session` on the session's trials.
    %(mask_source)s

    Attributes
    ----------
    trials : numpy.ndarray
        Global trial indices (rows of ``sub.metadata``) of the items, in order.
    sessions : list of str
        Included sessions.
    n_voxels : int
        Length of every item's ``betas``.
    mask_source : str
        Brain mask of the voxel axis.
    memory_mapped : bool
        True when betas are read from the cache's memory maps; False when the
        cache is disabled (``LAION_FMRI_CACHE=0``) or cannot be written (a
        warning says why), and the selected betas are held in memory instead.

    Raises
    ------
    MissingDependencyError
        ``torch`` is not installed.
    ValueError
        Bad ``features``, ``image_size``, selection arguments, or
        ``nc_threshold`` with several sessions.
    SessionNotFoundError, RoiNotFoundError, DataNotDownloadedError
        Unknown session/ROI, or betas not on disk.
    StimuliNotDownloadedError
        ``"image"`` or an embedding requested but the stimulus files are missing.

    Notes
    -----
    An item is a dict: ``betas`` (float32 tensor ``(n_voxels,)``), ``image``
    (uint8 ``(3, H, W)`` tensor, or whatever ``transform`` returns), one
    float32 tensor per requested embedding model, ``label`` (image name),
    ``session`` (str) and ``trial`` (int, global trial index). The default
    ``DataLoader`` collate stacks tensors and lists the strings.

    Examples
    --------
    >>> from torch.utils.data import DataLoader  # doctest: +SKIP
    >>> ds = sub.to_torch_dataset(roi="face", features=("image", "CLIP"), image_size=224)  # doctest: +SKIP
    >>> batch = next(iter(DataLoader(ds, batch_size=64, num_workers=2)))  # doctest: +SKIP
    >>> batch["betas"].shape, batch["image"].shape  # doctest: +SKIP
    (torch.Size([64, 412]), torch.Size([64, 3, 224, 224]))
    """

    def __init__(
        self,
        sub: SubjectLike,
        session: object = "all",
        roi: object = None,
        mask: object = None,
        nc_threshold: float | None = None,
        features: Sequence[str] = (IMAGE,),
        image_size: int | tuple[int, int] | None = None,
        transform: Callable[[Any], Any] | None = None,
        zscore: bool = False,
        mask_source: str | None = None,
    ) -> None:
        _require_torch()
        self._image, self._models = _canonical_features(features)
        self._size = _check_size(image_size)
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be callable, not {transform!r}.")
        self._transform = transform
        self.subject_id: str = sub.subject_id
        self.data_dir = sub.data_dir
        selection = sub.select(session, roi, mask, nc_threshold, one_voxel_set=True,
                               mask_source=mask_source)
        self.mask_source: str = selection.mask_source
        self.sessions = list(selection.sessions)
        self._cols: np.ndarray | None = selection.columns()
        self.n_voxels = selection.n_voxels

        meta = sub.metadata
        picked = meta[meta["session"].isin(self.sessions)]
        order = {s: k for k, s in enumerate(self.sessions)}
        # Stable sort keeps metadata order within a session, sessions in the caller's order.
        keys = picked["session"].map(order).to_numpy()
        picked = picked.iloc[np.argsort(keys, kind="stable")]
        self.trials = picked.index.to_numpy(dtype=np.int64)
        self._session_code = picked["session"].map(order).to_numpy(dtype=np.int64)
        self._rows = picked["session_trial"].to_numpy(dtype=np.int64)
        self._labels = picked["image_name"].astype(str).to_numpy(dtype=object)

        self._paths: dict[str, str] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.memory_mapped = True
        for s in self.sessions:
            source = self._prepare_session(sub.get_betas_reader(self.mask_source), s)
            if zscore:
                self._stats[s] = _session_stats(source, None if self._arrays else self._cols)
            del source
        self._zscore = bool(zscore)
        self._check_stimuli()
        self._reset_handles()

    # ------------------------------------------------------------------ setup
    def _prepare_session(self, reader: SessionBetas, session: str) -> Any:
        """Make sure the session is cached; remember its path (or hold its array)."""
        if self.memory_mapped:
            path = reader.cache_file(session)
            if path is not None:
                self._paths[session] = str(path)
                return np.load(path, mmap_mode="r")
            # Cache disabled, or it cannot be written (read-only data dir, disk full): hold arrays.
            self.memory_mapped = False
            for done in list(self._paths):
                self._arrays[done] = reader.read(done, self._cols, cache=False)
            self._paths.clear()
        data = reader.read(session, self._cols)
        self._arrays[session] = data
        return data

    def _check_stimuli(self) -> None:
        """Fail in the constructor, not in a worker, when stimulus files are missing."""
        if not (self._image or self._models):
            return
        from laion_fmri.stimuli import load_stimuli

        stim = load_stimuli(self.data_dir)
        try:
            names = list(dict.fromkeys(self._labels.tolist()))
            if self._image and names:
                stim.images.index_of(names[0])
                stim.images[names[0]]
            for _, model in self._models:
                stim.embeddings.positions(model, names)
        finally:
            stim.close()

    def _reset_handles(self) -> None:
        self._pid: int | None = None
        self._maps: dict[str, np.ndarray] = {}
        self._stim: Stimuli | None = None

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_pid=None, _maps={}, _stim=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ per-process handles
    def _own_process(self) -> None:
        # A forked worker inherits the parent's handles; HDF5 handles must not be shared.
        if self._pid != os.getpid():
            self._maps = {}
            self._stim = None
            self._pid = os.getpid()

    def _betas_source(self, session: str) -> np.ndarray:
        if not self.memory_mapped:
            return self._arrays[session]
        mm = self._maps.get(session)
        if mm is None:
            mm = np.load(self._paths[session], mmap_mode="r")
            self._maps[session] = mm
        return mm

    def _hub(self) -> Stimuli:
        if self._stim is None:
            from laion_fmri.stimuli import load_stimuli

            self._stim = load_stimuli(self.data_dir)
        return self._stim

    # ------------------------------------------------------------------ Dataset protocol
    def __len__(self) -> int:
        return int(self.trials.size)

    def betas(self, index: int) -> np.ndarray:
        """The float32 betas of item ``index`` as a NumPy array (z-scored if requested).

        Parameters
        ----------
        index : int
            Item position, ``0 <= index < len(self)``.

        Returns
        -------
        numpy.ndarray
            ``(n_voxels,)`` float32; read from the memory map, so only this
            row's selected voxels are touched.

        Examples
        --------
        >>> ds.betas(0).shape  # doctest: +SKIP
        (412,)
        """
        self._own_process()
        session = self.sessions[int(self._session_code[index])]
        source = self._betas_source(session)
        row = int(self._rows[index])
        # Held arrays are already column-selected; memory maps hold the whole brain.
        subset = self.memory_mapped and self._cols is not None
        values = source[row, self._cols] if subset else source[row]
        if not self._zscore:
            return np.array(values, dtype=np.float32)
        mean, scale = self._stats[session]
        with np.errstate(invalid="ignore"):
            z = (np.asarray(values, dtype=np.float64) - mean) * scale
        return z.astype(np.float32)

    def _image_item(self, label: str) -> Any:
        torch = _torch
        images = self._hub().images
        if self._transform is None:
            from laion_fmri.stimuli import decode_image

            arr = decode_image(images[label], self._size)
            return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        img = images.get(label).convert("RGB")
        if self._size is not None:
            height, width = self._size
            img = img.resize((width, height))
        return self._transform(img)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Items are indexed by int, not {type(index).__name__}.")
        if not -n <= int(index) < n:
            raise IndexError(f"Index {index} is out of range for {n} trials.")
        index = int(index) % n
        self._own_process()
        torch = _torch
        label = str(self._labels[index])
        item: dict[str, Any] = {"betas": torch.from_numpy(self.betas(index))}
        if self._image:
            item[IMAGE] = self._image_item(label)
        for key, model in self._models:
            vec = self._hub().embeddings.get(model, label, dtype=np.float32)
            item[key] = torch.from_numpy(np.ascontiguousarray(vec))
        item["label"] = label
        item["session"] = self.sessions[int(self._session_code[index])]
        item["trial"] = int(self.trials[index])
        return item

    def __repr__(self) -> str:
        feats = [*self._image, *(k for k, _ in self._models)]
        return (
            f"SubjectDataset({self.subject_id!r}, sessions={self.sessions}, n_trials={len(self)}, "
            f"n_voxels={self.n_voxels}, features={feats}, zscore={self._zscore})"
        )


__all__ = ["SubjectDataset"]
