"""The reference package's PyTorch dataset, ``LaionFMRIDataset`` (DATASET.md 9.1, 9.5).

A thin, documented compatibility layer over :class:`laion_fmri.torch.SubjectDataset`
(the same memory-mapped betas, the same stimulus hub); new code can use
``sub.to_torch_dataset(...)`` directly, which also offers embeddings,
resizing and z-scoring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from laion_fmri._docs import fill_doc
from laion_fmri.torch import SubjectDataset

if TYPE_CHECKING:  # pragma: no cover
    from laion_fmri._types import SubjectLike


def repetition_index(sessions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based presentation number of each trial's image within its session, in trial order.

    Parameters
    ----------
    sessions, labels : numpy.ndarray
        Session and image name of each trial, in trial order.

    Returns
    -------
    numpy.ndarray
        int64, one entry per trial.

    Examples
    --------
    >>> repetition_index(np.array(["s1"] * 4), np.array(["a", "b", "a", "a"])).tolist()
    [0, 0, 1, 2]
    """
    frame = pd.DataFrame({"session": sessions, "label": labels})
    return frame.groupby(["session", "label"], sort=False).cumcount().to_numpy(dtype=np.int64)


@fill_doc
class LaionFMRIDataset(SubjectDataset):
    """One item per trial of a subject's session(s): betas, image and the image's repetition.

    Parameters
    ----------
    subject : Subject
        A loaded subject.
    %(session)s
    %(roi_mask)s
    %(nc_threshold_one)s
    image_transform : callable, optional
        Applied to the image tensor (``(3, H, W)`` float32 in [0, 1]); its
        output is the item's ``image``.
    %(mask_source)s

    Raises
    ------
    MissingDependencyError
        ``torch`` is not installed (an ``ImportError`` naming ``laion-fmri[torch]``).
    StimuliNotDownloadedError
        The stimulus images are not downloaded.

    Notes
    -----
    An item is a dict: ``betas`` (float32 tensor ``(n_voxels,)``), ``image``
    (``(3, H, W)`` float32 in [0, 1], ``image_transform`` applied),
    ``stimulus_id`` (image name), ``session`` and ``rep_index`` (0-based
    presentation number of the image within its session).

    Examples
    --------
    >>> ds = LaionFMRIDataset(sub, "ses-01", roi="face")  # doctest: +SKIP
    >>> sorted(ds[0])  # doctest: +SKIP
    ['betas', 'image', 'rep_index', 'session', 'stimulus_id']
    """

    def __init__(self, subject: SubjectLike, session: object, roi: object = None,
                 mask: object = None, nc_threshold: float | None = None,
                 image_transform: Callable[[Any], Any] | None = None,
                 mask_source: str | None = "anatomical") -> None:
        if image_transform is not None and not callable(image_transform):
            raise ValueError(f"image_transform must be callable, not {image_transform!r}.")
        super().__init__(subject, session=session, roi=roi, mask=mask, nc_threshold=nc_threshold,
                         features=("image",), mask_source=mask_source)
        self._image_transform = image_transform
        codes = np.asarray(self.sessions, dtype=object)[self._session_code]
        self.rep_index = repetition_index(codes, self._labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        image = item["image"].float().div_(255.0)
        if self._image_transform is not None:
            image = self._image_transform(image)
        return {
            "betas": item["betas"],
            "image": image,
            "stimulus_id": item["label"],
            "session": item["session"],
            "rep_index": int(self.rep_index[int(index) % len(self)]),
        }


__all__ = ["LaionFMRIDataset", "repetition_index"]
