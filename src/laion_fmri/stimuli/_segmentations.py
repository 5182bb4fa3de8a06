"""Object masks of the shared images by image name and noun."""

from __future__ import annotations

import numpy as np
import pandas as pd

from laion_fmri import layout
from laion_fmri.errors import CorruptFileError, StimulusNotFoundError
from laion_fmri.stimuli._files import LazyH5, check_masks_h5
from laion_fmri.stimuli._names import GroupedTable, unknown

__all__ = ["StimulusSegmentations"]


class StimulusSegmentations(GroupedTable):
    """Object masks of the shared images by image name and noun.

    Parameters
    ----------
    hub : Stimuli
        The hub whose data directory is read (created by :func:`load_stimuli`).

    Examples
    --------
    >>> seg = load_stimuli().segmentations  # doctest: +SKIP
    >>> seg.get("shared_12rep_LAION_cluster_1003_i0.jpg", "hand").dtype  # doctest: +SKIP
    dtype('bool')
    """

    _key = layout.SEGMENTATIONS_METADATA_KEY
    _columns = layout.SEGMENTATION_COLUMNS
    _what = "segmentations"

    def _reset(self) -> None:
        super()._reset()
        self._h5 = LazyH5(self._hub._path(layout.SEGMENTATIONS_KEY), "segmentations", check_masks_h5)

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame["noun"] = frame["noun"].astype(str)
        return frame

    @property
    def metadata(self) -> pd.DataFrame:
        """One row per mask (``mask_row`` indexes the ``masks`` dataset)."""
        return super().metadata

    def has_image(self, name: str) -> bool:
        """Whether the image has at least one mask.

        Parameters
        ----------
        name : str
            Image name.

        Returns
        -------
        bool
        """
        return name in self._name_groups()

    def for_image(self, name: str) -> pd.DataFrame:
        """Mask rows of one image.

        Parameters
        ----------
        name : str
            Image name.

        Returns
        -------
        pandas.DataFrame
            Empty when the image has no masks (only shared images have masks).
        """
        return self._rows(name)

    def nouns(self, name: str, localized_only: bool = True) -> list[str]:
        """Nouns with a mask in the image, first-appearance order, no repeats.

        Parameters
        ----------
        name : str
            Image name.
        localized_only : bool
            Keep only masks with ``localized == 1`` (a box, covering < 99 % of the image).

        Returns
        -------
        list of str
        """
        rows = self.for_image(name)
        if localized_only:
            rows = rows[rows["localized"].astype(int) == 1]
        return list(dict.fromkeys(rows["noun"].tolist()))

    def get(self, name: str, noun: str, instance: int = 0) -> np.ndarray:
        """Boolean ``(H, W)`` mask of one noun instance in an image.

        Parameters
        ----------
        name : str
            Image name.
        noun : str
            Noun, as listed by :meth:`nouns`.
        instance : int
            ``instance_id`` (0 = highest-scoring detection).

        Returns
        -------
        numpy.ndarray
            ``bool`` ``(H, W)``.

        Raises
        ------
        StimulusNotFoundError
            If the image has no such noun / instance (the message lists its nouns).

        Examples
        --------
        >>> seg = load_stimuli().segmentations  # doctest: +SKIP
        >>> seg.get("shared_4rep_OOD_cropped_aloe.png", "aloe").shape  # doctest: +SKIP
        (1000, 1000)
        """
        rows = self.for_image(name)
        match = rows[(rows["noun"] == noun) & (rows["instance_id"].astype(int) == int(instance))]
        if match.empty:
            nouns = list(dict.fromkeys(rows["noun"].tolist()))
            if noun in nouns:
                n_inst = int((rows["noun"] == noun).sum())
                raise StimulusNotFoundError(
                    f"Image {name!r} has {n_inst} instance(s) of {noun!r}; "
                    f"instance {instance} does not exist."
                )
            if not nouns:
                raise StimulusNotFoundError(
                    f"Image {name!r} has no segmentation masks (only shared images have masks)."
                )
            raise unknown(f"noun for image {name!r}", noun, nouns, list_all=True)
        ds = self._h5.get()[layout.H5_MASKS]
        row = int(match["mask_row"].iloc[0])
        if not 0 <= row < ds.shape[0]:
            raise CorruptFileError(
                f"{self._hub._path(layout.SEGMENTATIONS_METADATA_KEY)} points at mask_row {row} but "
                f"{self._h5.path} has {ds.shape[0]} masks; download the segmentations again."
            )
        return np.asarray(ds[row]) > 0
