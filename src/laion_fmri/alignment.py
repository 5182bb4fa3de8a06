"""Stimulus namespaces of a subject, keyed by global trial index.

``sub.images``, ``sub.embeddings``, ``sub.captions`` and ``sub.segmentations``
look a trial up by its row in ``sub.metadata`` (the trial table of every
session, in session order, whose rows line up with ``sub.get_betas``). The
join trial -> image row is computed once per subject (and per embedding model)
with a vectorised :meth:`pandas.Index.get_indexer`, so
``sub.embeddings.all("CLIP")`` is a single NumPy gather, row-aligned with
``sub.get_betas(session=...)``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from laion_fmri._docs import fill_doc
from laion_fmri.errors import SessionNotFoundError, StimulusNotFoundError
from laion_fmri.layout import normalize_session
from laion_fmri.stimuli import Stimuli, load_stimuli
from laion_fmri.vocab import normalize_model

__all__ = ["SubjectCaptions", "SubjectEmbeddings", "SubjectImages", "SubjectSegmentations"]


class _Alignment:
    """Per-subject join state shared by the four namespaces."""

    def __init__(self, sub: Any) -> None:
        meta: pd.DataFrame = sub.metadata
        column = "image_name" if "image_name" in meta.columns else "label"
        self.names = np.asarray(meta[column].astype(str).to_numpy(), dtype=object)
        self.sessions = meta["session"].astype(str).to_numpy()
        self.n_trials = len(meta)
        self.subject = str(getattr(sub, "subject_id", "this subject"))
        self.hub: Stimuli = load_stimuli(sub.data_dir)
        self._image_rows: np.ndarray | None = None
        self._emb_rows: dict[str, np.ndarray] = {}

    # -- trial selection
    def trial(self, i: object) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"Trials are looked up by global trial index (int), not {type(i).__name__}.")
        if not 0 <= int(i) < self.n_trials:
            raise IndexError(
                f"Trial index {i} is out of range: {self.subject} has {self.n_trials} trials "
                f"(rows 0..{self.n_trials - 1} of sub.metadata)."
            )
        return int(i)

    def trials(self, idx: Iterable[int] | np.ndarray) -> np.ndarray:
        if not isinstance(idx, (np.ndarray, list, tuple, range, pd.Index, pd.Series)):
            raise TypeError(
                "Trials are looked up by global trial index: an int or a list/array of ints "
                f"(rows of sub.metadata), not {type(idx).__name__}."
            )
        arr = np.asarray(idx)
        if arr.size == 0:
            return arr.astype(np.intp)
        if arr.dtype.kind not in "iu":
            raise TypeError("Trials are looked up by global trial index (integers).")
        if arr.min() < 0 or arr.max() >= self.n_trials:
            raise IndexError(f"Trial indices must lie in [0, {self.n_trials}) for {self.subject}.")
        return arr.astype(np.intp)

    def session_rows(self, session: str | Sequence[str] | None) -> np.ndarray:
        """Global trial rows of the session(s), in the order ``get_betas`` stacks them."""
        if session is None:
            return np.arange(self.n_trials, dtype=np.intp)
        wanted = [session] if isinstance(session, (str, int)) else list(session)
        parts = []
        available = list(dict.fromkeys(self.sessions.tolist()))
        for ses in wanted:
            label = normalize_session(ses)
            rows = np.flatnonzero(self.sessions == label)
            if rows.size == 0:
                raise SessionNotFoundError(
                    f"{self.subject} has no trials in {label}. Sessions in sub.metadata: "
                    f"{', '.join(available)}."
                )
            parts.append(rows)
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.intp)

    # -- joins (computed once)
    def image_rows(self) -> np.ndarray:
        if self._image_rows is None:
            self._image_rows = self._join(self.hub._name_index(), "the stimulus metadata table")
        return self._image_rows

    def embedding_rows(self, model: str) -> np.ndarray:
        model = normalize_model(model, StimulusNotFoundError)
        rows = self._emb_rows.get(model)
        if rows is None:
            rows = self._join(self.hub.embeddings._file(model).ids(), f"the {model} embedding file")
            self._emb_rows[model] = rows
        return rows

    def _join(self, index: pd.Index, where: str) -> np.ndarray:
        pos = index.get_indexer(self.names)
        missing = np.flatnonzero(pos < 0)
        if missing.size:
            examples = ", ".join(repr(n) for n in dict.fromkeys(self.names[missing].tolist()))
            examples = ", ".join(examples.split(", ")[:3])
            raise StimulusNotFoundError(
                f"{missing.size} of {self.subject}'s {self.n_trials} trials show images missing from "
                f"{where} (e.g. {examples}); the stimulus files may be from another dataset version."
            )
        return pos.astype(np.intp)


# Subjects are keyed weakly so a dropped subject frees its join state.
_ALIGNMENTS: weakref.WeakKeyDictionary[Any, tuple[object, _Alignment]] = weakref.WeakKeyDictionary()


def _fingerprint(sub: Any) -> object:
    """Cheap token that changes when the subject's trial table would change."""
    sessions = getattr(sub, "get_sessions", None)
    return tuple(sessions()) if callable(sessions) else len(sub.metadata)


def _alignment_for(sub: Any) -> _Alignment:
    """The subject's join state, built once and reused while its sessions are unchanged."""
    token = _fingerprint(sub)
    try:
        cached = _ALIGNMENTS.get(sub)
    except TypeError:  # unhashable or not weak-referenceable subject
        return _Alignment(sub)
    if cached is not None and cached[0] == token:
        return cached[1]
    state = _Alignment(sub)
    with contextlib.suppress(TypeError):
        _ALIGNMENTS[sub] = (token, state)
    return state


class _SubjectNamespace:
    def __init__(self, sub: Any) -> None:
        self._sub = sub
        self._state: _Alignment | None = None

    @property
    def _a(self) -> _Alignment:
        if self._state is None:
            self._state = _alignment_for(self._sub)
        return self._state

    @property
    def stimuli(self) -> Stimuli:
        """The stimulus hub behind this namespace."""
        return self._a.hub

    def image_name(self, i: int) -> str:
        """Image name shown on trial ``i``."""
        return str(self._a.names[self._a.trial(i)])

    def __len__(self) -> int:
        return self._a.n_trials

    def __getstate__(self) -> dict[str, Any]:
        return {"_sub": self._sub, "_state": None}


@fill_doc
class SubjectImages(_SubjectNamespace):
    """Stimulus images by global trial index (``sub.images``).

    Parameters
    ----------
    sub : Subject
        The subject; its ``metadata`` (global trial index) and ``data_dir`` are used.

    Examples
    --------
    >>> sub = load_subject("sub-03")  # doctest: +SKIP
    >>> sub.images.get(42).size  # doctest: +SKIP
    (1000, 1000)
    """

    def __getitem__(self, i: int) -> bytes:
        """Encoded JPEG bytes of the image shown on trial ``i``."""
        row = int(self._a.image_rows()[self._a.trial(i)])
        return self._a.hub.images[row]

    def get(self, i: int) -> Image.Image:
        """Decoded PIL image shown on trial ``i``.

        Parameters
        ----------
        %(trial)s

        Returns
        -------
        PIL.Image.Image

        Raises
        ------
        IndexError
            If ``i`` is not a trial of the subject.
        StimuliNotDownloadedError
            If the images are not downloaded (``download_stimuli()``).
        """
        row = int(self._a.image_rows()[self._a.trial(i)])
        return self._a.hub.images.get(row)

    def array(
        self,
        session: str | Sequence[str] | None = None,
        size: int | tuple[int, int] | None = None,
        trials: Iterable[int] | np.ndarray | None = None,
        n_threads: int | None = None,
    ) -> np.ndarray:
        """Images of every trial of the session(s), row-aligned with ``get_betas``.

        Parameters
        ----------
        session : str or list of str, optional
            Session(s); ``None`` means every trial in ``sub.metadata`` order.
        size : int or (int, int), optional
            Downscale on decode (fast for JPEG). Full-size arrays are large
            (3 MB per 1000 x 1000 image), so pass a size for many trials.
        trials : iterable of int, optional
            Explicit global trial indices instead of ``session``.
        n_threads : int, optional
            Decoder threads (default 1).

        Returns
        -------
        numpy.ndarray
            ``uint8`` ``(n_trials, H, W, 3)``.

        Examples
        --------
        >>> sub.images.array(session="ses-01", size=224).shape  # doctest: +SKIP
        (1044, 224, 224, 3)
        """
        rows = self._a.trials(trials) if trials is not None else self._a.session_rows(session)
        positions = self._a.image_rows()[rows]
        return self._a.hub.images.array(positions, size, n_threads)


@fill_doc
class SubjectEmbeddings(_SubjectNamespace):
    """Image embeddings by global trial index (``sub.embeddings``).

    Values keep the stored dtype (``float16``) unless ``dtype=`` is given.

    Parameters
    ----------
    sub : Subject
        The subject; its ``metadata`` (global trial index) and ``data_dir`` are used.

    Examples
    --------
    >>> X = sub.embeddings.all("CLIP", session="ses-01")  # doctest: +SKIP
    >>> X.shape[0] == sub.get_betas(session="ses-01").shape[0]  # doctest: +SKIP
    True
    """

    @property
    def models(self) -> tuple[str, ...]:
        """Models whose embedding file is downloaded."""
        return self._a.hub.embeddings.models

    def get(self, model: str, i: int | Iterable[int], dtype: Any = None) -> np.ndarray:
        """Embedding of the image shown on trial(s) ``i``.

        Parameters
        ----------
        model : str
            ``"CLIP"``, ``"DINOv2"``, ``"PEcore"`` or ``"SigLIP2"``.
        i : int or iterable of int
            Global trial index or indices.
        dtype : numpy dtype, optional
            Output dtype (default: stored ``float16``).

        Returns
        -------
        numpy.ndarray
            ``(D,)`` for one trial, ``(n, D)`` for several.

        Raises
        ------
        IndexError
            If a trial index is out of range.
        StimulusNotFoundError
            If the model is unknown.
        """
        rows = self._a.embedding_rows(model)
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            return self._a.hub.embeddings._take(model, rows[[self._a.trial(i)]], dtype)[0]
        return self._a.hub.embeddings._take(model, rows[self._a.trials(i)], dtype)

    def all(self, model: str, session: str | Sequence[str] | None = None, dtype: Any = None) -> np.ndarray:
        """Embeddings of every trial, row-aligned with ``sub.get_betas(session=session)``.

        Parameters
        ----------
        model : str
            ``"CLIP"``, ``"DINOv2"``, ``"PEcore"`` or ``"SigLIP2"``.
        session : str or list of str, optional
            Session(s), stacked in the order given; ``None`` = every trial in
            ``sub.metadata`` order.
        dtype : numpy dtype, optional
            Output dtype (default: stored ``float16``).

        Returns
        -------
        numpy.ndarray
            ``(n_trials, D)``.

        Examples
        --------
        >>> sub.embeddings.all("CLIP").shape  # doctest: +SKIP
        (31_856, 1024)
        """
        rows = self._a.session_rows(session)
        return self._a.hub.embeddings._take(model, self._a.embedding_rows(model)[rows], dtype)


@fill_doc
class SubjectCaptions(_SubjectNamespace):
    """Captions of the image shown on a trial (``sub.captions``).

    Parameters
    ----------
    sub : Subject
        The subject; its ``metadata`` (global trial index) and ``data_dir`` are used.

    Examples
    --------
    >>> sub.captions.human(0, limit=1)  # doctest: +SKIP
    ['A zebra standing in tall grass.']
    """

    def get(self, i: int) -> pd.DataFrame:
        """All captions of trial ``i``'s image, sorted by ``caption_idx``.

        Parameters
        ----------
        %(trial)s

        Returns
        -------
        pandas.DataFrame
        """
        return self._a.hub.captions.get(self.image_name(i))

    def human(self, i: int, limit: int | None = None) -> list[str]:
        """Human captions of trial ``i``'s image, best first.

        Parameters
        ----------
        %(trial)s
        limit : int, optional
            Return at most this many.

        Returns
        -------
        list of str
        """
        return self._a.hub.captions.human(self.image_name(i), limit=limit)

    def ai(self, i: int) -> str | None:
        """The AI caption of trial ``i``'s image.

        Parameters
        ----------
        %(trial)s

        Returns
        -------
        str or None
        """
        return self._a.hub.captions.ai(self.image_name(i))


@fill_doc
class SubjectSegmentations(_SubjectNamespace):
    """Object masks of the image shown on a trial (``sub.segmentations``).

    Parameters
    ----------
    sub : Subject
        The subject; its ``metadata`` (global trial index) and ``data_dir`` are used.

    Examples
    --------
    >>> sub.segmentations.nouns(0)  # doctest: +SKIP
    ['fingers', 'hand']
    """

    def has_image(self, i: int) -> bool:
        """Whether trial ``i``'s image has masks (only shared images do).

        Parameters
        ----------
        %(trial)s

        Returns
        -------
        bool
        """
        return self._a.hub.segmentations.has_image(self.image_name(i))

    def nouns(self, i: int, localized_only: bool = True) -> list[str]:
        """Nouns with a mask in trial ``i``'s image.

        Parameters
        ----------
        %(trial)s
        localized_only : bool
            Keep only localised masks (``localized == 1``).

        Returns
        -------
        list of str
        """
        return self._a.hub.segmentations.nouns(self.image_name(i), localized_only=localized_only)

    def for_image(self, i: int) -> pd.DataFrame:
        """Mask rows of trial ``i``'s image.

        Parameters
        ----------
        %(trial)s

        Returns
        -------
        pandas.DataFrame
            Empty when the image has no masks.
        """
        return self._a.hub.segmentations.for_image(self.image_name(i))

    def get(self, i: int, noun: str, instance: int = 0) -> np.ndarray:
        """Boolean ``(H, W)`` mask of ``noun`` in trial ``i``'s image.

        Parameters
        ----------
        %(trial)s
        noun : str
            Noun, as listed by :meth:`nouns`.
        instance : int
            ``instance_id`` (0 = highest-scoring detection).

        Returns
        -------
        numpy.ndarray
        """
        return self._a.hub.segmentations.get(self.image_name(i), noun, instance=instance)
