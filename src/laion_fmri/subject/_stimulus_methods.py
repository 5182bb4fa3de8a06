"""The reference package's per-subject stimulus names (DATASET.md 9.1), over the stimulus hub.

A subject's *stimuli* are the distinct images its downloaded trials show,
in order of first appearance in ``sub.metadata``; a stimulus index is a
position in that list (the row of :meth:`StimulusMethods.get_stimulus_metadata`).
Images and metadata come from the one stimulus hub
(:func:`laion_fmri.stimuli.load_stimuli`); counting needs only the trial tables.
:class:`StimulusMethods` is the mixin of :class:`laion_fmri.subject.Subject`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri import layout
from laion_fmri._docs import fill_doc
from laion_fmri.subject._trials import STIMULI_FILTERS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from PIL import Image

IMAGE_FORMATS = ("pil", "numpy", "torch")


def stimulus_names(metadata: pd.DataFrame, stimuli: str | None = None) -> list[str]:
    """Distinct image names in first-appearance order, optionally only ``shared_``/``unique_``."""
    if stimuli is not None and stimuli not in STIMULI_FILTERS:
        raise ValueError(f"stimuli must be None, 'shared' or 'unique', not {stimuli!r}.")
    names = list(dict.fromkeys(metadata["image_name"].astype(str)))
    return names if stimuli is None else [n for n in names if n.startswith(f"{stimuli}_")]


def images_as(images: list[Image.Image], fmt: str) -> Any:
    """PIL images as a list, a ``(N, H, W, 3)`` uint8 array or a ``(N, 3, H, W)`` [0, 1] tensor."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {IMAGE_FORMATS}, not {fmt!r}.")
    if fmt == "pil":
        return images
    sizes = {img.size for img in images}
    if len(sizes) > 1:
        raise ValueError(f"The images differ in size ({sorted(sizes)[:3]}); use format='pil'.")
    arr = np.stack([np.asarray(img.convert("RGB")) for img in images]) if images else \
        np.zeros((0, 0, 0, 3), np.uint8)
    if fmt == "numpy":
        return arr
    from laion_fmri.errors import MissingDependencyError

    torch = MissingDependencyError.require("torch", "torch")
    warnings.warn(
        f"format='torch' holds all {len(images)} images as float32 in memory "
        f"({arr.size * 4 / 1e9:.2f} GB); for training prefer sub.to_torch_dataset().",
        UserWarning, stacklevel=3,
    )
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)


@fill_doc
class StimulusMethods:
    """The reference package's stimulus methods of :class:`laion_fmri.subject.Subject`."""

    metadata: Any
    data_dir: Any
    get_trial_info: Any
    resolve_sessions: Any

    def _hub(self) -> Any:
        from laion_fmri.stimuli import load_stimuli

        return load_stimuli(self.data_dir)

    def get_n_stimuli(self, stimuli: str | None = None) -> int:
        """Number of distinct images the subject's downloaded trials show.

        Parameters
        ----------
        %(stimuli)s

        Returns
        -------
        int
        """
        return len(stimulus_names(self.metadata, stimuli))

    def has_stimuli(self) -> bool:
        """Whether the stimulus images and their metadata table are downloaded.

        Returns
        -------
        bool
        """
        root = self.data_dir
        return all(layout.local_path(root, key).is_file()
                   for key in (layout.STIMULI_IMAGES_KEY, layout.STIMULI_METADATA_KEY))

    def get_stimulus_metadata(self) -> pd.DataFrame:
        """Metadata of the subject's stimuli, row = stimulus index.

        Returns
        -------
        pandas.DataFrame
            The stimulus table's rows (``image_name``, ...) plus ``stimulus_id``
            (= ``image_name``), index ``0..n_stimuli-1``.

        Raises
        ------
        StimuliNotDownloadedError
            The stimulus metadata is not downloaded (names the download call).
        """
        table = self._hub().metadata
        names = stimulus_names(self.metadata)
        rows = table.set_index("image_name", drop=False).loc[names].reset_index(drop=True)
        return rows.assign(stimulus_id=rows["image_name"].astype(str))

    def get_image(self, idx: int) -> Image.Image:
        """The image of one stimulus index (a PIL image).

        Parameters
        ----------
        idx : int
            Stimulus index (row of :meth:`get_stimulus_metadata`).

        Returns
        -------
        PIL.Image.Image

        Raises
        ------
        IndexError
            ``idx`` is not a stimulus index of the subject.
        StimuliNotDownloadedError
            The images are not downloaded.
        """
        names = stimulus_names(self.metadata)
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)) or \
                not -len(names) <= idx < len(names):
            raise IndexError(f"Stimulus index {idx!r} is outside 0..{len(names) - 1}.")
        return self._hub().images.get(names[int(idx)])

    def get_images(self, stimuli: str | None = None, format: str = "pil") -> Any:
        """Every stimulus image of the subject, in stimulus-index order.

        Parameters
        ----------
        %(stimuli)s
        format : {"pil", "numpy", "torch"}
            A list of PIL images; a ``(N, H, W, 3)`` uint8 array; a
            ``(N, 3, H, W)`` float32 tensor in [0, 1] (with a memory warning).

        Returns
        -------
        list or numpy.ndarray or torch.Tensor

        Raises
        ------
        ValueError
            Unknown ``format`` or ``stimuli``.
        StimuliNotDownloadedError
            The images are not downloaded.
        """
        if format not in IMAGE_FORMATS:
            raise ValueError(f"format must be one of {IMAGE_FORMATS}, not {format!r}.")
        hub = self._hub()
        return images_as([hub.images.get(n) for n in stimulus_names(self.metadata, stimuli)],
                         format)

    def get_trial_stimulus_indices(self, session: object) -> np.ndarray | dict[str, np.ndarray]:
        """Stimulus index of every trial (row of :meth:`get_trial_info`).

        Parameters
        ----------
        %(session)s

        Returns
        -------
        numpy.ndarray or dict
            ``(n_trials,)`` int64; ``{session: array}`` for a list or ``"all"``.
        """
        position = {name: i for i, name in enumerate(stimulus_names(self.metadata))}
        sessions, single = self.resolve_sessions(session)
        out = {s: np.array([position[str(n)] for n in self.get_trial_info(s)["label"]],
                           dtype=np.int64) for s in sessions}
        return out[sessions[0]] if single else out


__all__ = ["IMAGE_FORMATS", "StimulusMethods", "images_as", "stimulus_names"]
