"""The parts of a subject that depend on the voxel axis, one set per brain-mask source.

ROI masks, noise-ceiling maps, the betas reader and the selector all index
the brain-mask voxels, so each :data:`laion_fmri.vocab.MASK_SOURCES` value
gets its own set, built on first use. The cache entries of the betas reader
are keyed by the mask source.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from laion_fmri.betas import SessionBetas
from laion_fmri.subject._brain import BrainSpace
from laion_fmri.subject._files import SubjectFiles
from laion_fmri.subject._noise import NoiseCeilings
from laion_fmri.subject._rois import Rois
from laion_fmri.subject._selection import Selector
from laion_fmri.subject._sessions import Sessions
from laion_fmri.vocab import normalize_mask_source


@dataclass(frozen=True)
class VoxelSpace:
    """Brain, ROIs, noise ceilings, betas reader and selector over one brain mask."""

    mask_source: str
    brain: BrainSpace
    rois: Rois
    nc: NoiseCeilings
    betas: SessionBetas
    selector: Selector


class VoxelSpaces:
    """One :class:`VoxelSpace` per mask source, built on first use."""

    def __init__(self, files: SubjectFiles, sessions: Sessions) -> None:
        self._files = files
        self._sessions = sessions
        self._spaces: dict[str, VoxelSpace] = {}
        self._lock = threading.Lock()

    def get(self, mask_source: object = None) -> VoxelSpace:
        """The parts over ``mask_source`` (``None`` = the default); ``ValueError`` if unknown."""
        source = normalize_mask_source(mask_source)
        with self._lock:
            space = self._spaces.get(source)
            if space is None:
                files = self._files
                brain = BrainSpace(files, source)
                rois = Rois(files, brain)
                nc = NoiseCeilings(files, brain)
                betas = SessionBetas(files.root, files.subject, brain.get, source)
                selector = Selector(self._sessions, brain, rois, nc)
                space = self._spaces[source] = VoxelSpace(source, brain, rois, nc, betas, selector)
        return space


__all__ = ["VoxelSpace", "VoxelSpaces"]
