"""ROIs of a subject: listing, query masks over brain voxels, surface files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from laion_fmri import _cache, _nifti
from laion_fmri import _rois as rois
from laion_fmri._mask_index import stored_array
from laion_fmri.errors import DataNotDownloadedError, RoiNotFoundError
from laion_fmri.subject._brain import BrainSpace
from laion_fmri.subject._files import SubjectFiles
from laion_fmri.vocab import suggest


class Rois:
    """ROI masks of one subject, rescanned on every call so new downloads show up."""

    def __init__(self, files: SubjectFiles, brain: BrainSpace) -> None:
        self._files = files
        self._brain = brain

    def index(self) -> rois.RoiIndex:
        return rois.scan_rois(self._files.root, self._files.subject)

    def names(self, category: str | None) -> list[str]:
        index = self.index()
        if category is None:
            return index.names
        if category not in index.categories:
            raise RoiNotFoundError(
                f"Unknown ROI category {category!r} for {self._files.subject}."
                f"{suggest(category, index.categories)} Categories on disk: "
                f"{', '.join(index.categories) or 'none'}."
            )
        return list(index.categories[category])

    def voxels(self, name: str, index: rois.RoiIndex) -> np.ndarray:
        """Bool over brain voxels of one ROI (a fresh copy)."""
        _, path = index.volumes[name]

        def load(p: Path) -> np.ndarray:
            # Kept next to the betas cache, keyed by the ROI file and the brain mask,
            # so a fresh process selecting an ROI opens no NIfTI.
            tag = f"roi-{self._brain.mask_source}-{self._brain.get().digest[:16]}"
            folder = _cache.derived_dir(self._files.root, self._files.subject)
            return stored_array(p, folder, tag, lambda: _nifti.nonzero(self._brain.grid_map(p)))

        return self._files.cached(f"roi/{self._brain.mask_source}", path, load).copy()

    def mask(self, query: str | Sequence[str]) -> np.ndarray:
        """Union of the ROIs a query names, over brain voxels."""
        index = self.index()
        out = np.zeros(self._brain.get().n_voxels, dtype=bool)
        for name in rois.resolve_query(query, index, self._files.subject):
            out |= self.voxels(name, index)
        return out

    def masks(self, queries: Sequence[str]) -> dict[Any, np.ndarray]:
        """One mask per query (a list query becomes a tuple key)."""
        if isinstance(queries, str):
            queries = [queries]
        return {(tuple(q) if isinstance(q, list) else q): self.mask(q) for q in queries}

    def data(self, query: str | Sequence[str], fmt: str, hemi: str) -> dict[str, Any]:
        """Masks per ROI in volume, GIFTI or FreeSurfer-label form."""
        fmt = rois.normalize_format(fmt)
        hemis = rois.normalize_hemis(hemi)
        index = self.index()
        names = rois.resolve_query(query, index, self._files.subject)
        if fmt == "volume":
            return {name: self.voxels(name, index) for name in names}
        read = rois.read_gifti_mask if fmt == "func.gii" else rois.read_label_vertices
        out: dict[str, Any] = {}
        for name in names:
            category = index.volumes[name][0]
            per_hemi = {}
            for h in hemis:
                path = rois.surface_path(
                    self._files.root, self._files.subject, category, name, h, fmt
                )
                if not path.is_file():
                    raise DataNotDownloadedError(
                        f"The {fmt} file of ROI {name} ({h}) is not on disk: {path}. Download "
                        f"it with `{self._files.hint()}`."
                    )
                per_hemi[h] = read(path)
            out[name] = per_hemi
        return out


__all__ = ["Rois"]
