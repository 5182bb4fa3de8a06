"""Subject methods over ROI masks: listing, query masks, volume/surface/label data.

A mixin of :class:`laion_fmri.subject.Subject` over its :class:`~laion_fmri.subject._rois.Rois`
part of the chosen brain mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from laion_fmri._docs import fill_doc


@fill_doc
class RoiMethods:
    """ROI methods of :class:`laion_fmri.subject.Subject`."""

    _space: Any

    def get_available_rois(self, category: str | None = None) -> list[str]:
        """ROI names on disk, sorted; optionally only one category's.

        Parameters
        ----------
        category : str, optional
            Only ROIs of this category (an unknown one is a ``RoiNotFoundError``).

        Returns
        -------
        list of str
        """
        return self._space().rois.names(category)

    def get_available_categories(self) -> list[str]:
        """ROI categories on disk, sorted.

        Returns
        -------
        list of str
        """
        return list(self._space().rois.index().categories)

    def get_roi_mask(self, query: str | Sequence[str], mask_source: str | None = None
                     ) -> np.ndarray:
        """Boolean mask over brain voxels of an ROI query (union).

        Parameters
        ----------
        %(roi_query)s
        %(mask_source)s

        Returns
        -------
        numpy.ndarray
            ``(n_voxels,)`` bool.
        """
        return self._space(mask_source).rois.mask(query)

    def get_roi_masks(self, queries: Sequence[str], mask_source: str | None = None
                      ) -> dict[Any, np.ndarray]:
        """One mask per query, ``{query: (n_voxels,) bool}`` (a list query becomes a tuple key).

        Parameters
        ----------
        queries : list
            Each item is a query for :meth:`get_roi_mask`.
        %(mask_source)s

        Returns
        -------
        dict
        """
        return self._space(mask_source).rois.masks(queries)

    def get_roi_data(self, query: str | Sequence[str], format: str = "volume", hemi: str = "all",
                     mask_source: str | None = None) -> dict[str, Any]:
        """ROI masks in volume, surface (GIFTI) or FreeSurfer-label form.

        Parameters
        ----------
        %(roi_query)s
        format : {"volume", "func.gii", "label"}
            Bool over brain voxels; per-hemisphere bool vertex masks; per-hemisphere vertex indices.
        hemi : {"L", "R", "all"}
            Hemispheres for the surface formats (ignored for ``volume``).
        %(mask_source)s

        Returns
        -------
        dict
            ``{roi: mask}`` for volume, ``{roi: {hemi: array}}`` otherwise.
        """
        return self._space(mask_source).rois.data(query, format, hemi)


__all__ = ["RoiMethods"]
