"""Brain space of a subject: the voxel axis, grid maps on it, coordinates, NIfTI output.

Voxel axis: the brain-mask voxels in C order of the ``(x, y, z)`` grid, for
one of :data:`laion_fmri.vocab.MASK_SOURCES`: ``"anatomical"`` (the
``res-1pt8`` ``desc-brain`` mask of the anatomical folder, on the betas grid)
or ``"rsquare"`` (``R2mean != 0``, or the snapshot ``desc-meanR2gt15mask``
file when present). Every session of a subject shares it, so sessions
concatenate along trials. A mask on another grid than the betas is an error,
never resampled.

The voxel index of a mask (and the grid check) is kept next to the betas
cache (:func:`laion_fmri._mask_index.mask_index`), so a fresh process that
reloads cached betas opens no NIfTI map.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laion_fmri import _cache, _nifti, layout
from laion_fmri._mask_index import checked, mask_index
from laion_fmri.brain import voxel_coordinates, write_values
from laion_fmri.errors import CorruptFileError, DataNotDownloadedError
from laion_fmri.subject._files import SubjectFiles
from laion_fmri.vocab import DEFAULT_MASK_SOURCE


@dataclass(frozen=True)
class _Brain:
    grid_shape: tuple[int, int, int]
    affine: np.ndarray
    c_index: np.ndarray  # C-order flat indices of brain voxels
    offsets: np.ndarray  # the same voxels as Fortran (disk) offsets
    digest: str
    mask_source: str = DEFAULT_MASK_SOURCE

    @property
    def flat(self) -> np.ndarray:
        """Boolean brain mask over the grid, C order (a new array)."""
        flat = np.zeros(int(np.prod(self.grid_shape)), dtype=bool)
        flat[self.c_index] = True
        return flat

    @property
    def n_voxels(self) -> int:
        return int(self.c_index.size)

    def index(self, voxels: np.ndarray | None) -> np.ndarray:
        """C-order grid indices of the selected brain voxels (``None`` = all)."""
        return self.c_index if voxels is None else self.c_index[voxels]


def anatomical_mask_hint(subject: str) -> str:
    """The download call that brings a subject's anatomical brain mask."""
    return f'laion_fmri.download.download(subject="{subject}", include_anatomical=True)'


def _betas_grid_file(files: SubjectFiles) -> Path | None:
    """A file on the betas grid to check another mask against (R2mean, else any betas)."""
    r2 = files.path(layout.r2mean_key(files.subject))
    if r2.is_file():
        return r2
    base = files.root / layout.subject_glm_prefix(files.subject)
    found = sorted(base.glob(f"ses-*/func/{layout.pattern('betas', subject=files.subject)}"))
    return found[0] if found else None


def check_same_grid(path: Path, shape: tuple[int, ...], affine: np.ndarray,
                    files: SubjectFiles, ref: Path | None = None) -> None:
    """:class:`CorruptFileError` when ``path``'s grid is not the betas grid (never resample)."""
    ref = ref or _betas_grid_file(files)
    if ref is None:
        return
    header = _nifti.read_header(ref)
    same_affine = np.allclose(header.affine, affine, atol=1e-3)
    if tuple(header.grid_shape) != tuple(shape[:3]) or not same_affine:
        raise CorruptFileError(
            f"{path.name} is on grid {tuple(shape[:3])} but the betas of {files.subject} are on "
            f"{header.grid_shape} ({ref.name}){'' if same_affine else ' with another affine'}. "
            "laion_fmri never resamples a mask onto the betas grid; use the res-1pt8 mask on "
            "the betas grid (or mask_source='rsquare')."
        )


def _mask_volume(files: SubjectFiles, mask_source: str) -> Path:
    """The file the brain mask of ``mask_source`` is read from."""
    subject = files.subject
    if mask_source == "anatomical":
        anat = files.path(layout.anatomical_brain_mask_key(subject))
        if not anat.is_file():
            raise DataNotDownloadedError(
                f"The anatomical brain mask of {subject} (the default voxel axis, "
                f"mask_source='anatomical') is not on disk ({anat}). Download it with "
                f"`{anatomical_mask_hint(subject)}`, or pass mask_source='rsquare' to use "
                "the R2mean != 0 mask."
            )
        return anat
    snap = files.path(layout.snapshot_brain_mask_key(subject))
    r2 = files.path(layout.r2mean_key(subject))
    if snap.is_file():
        return snap
    if r2.is_file():
        return r2
    raise DataNotDownloadedError(
        f"The brain mask of {subject} is missing: neither {r2.name} nor {snap.name} is in "
        f"{r2.parent}. Download it with `{files.hint()}`."
    )


def load_brain(files: SubjectFiles, mask_source: str = DEFAULT_MASK_SOURCE) -> _Brain:
    """Read the brain mask of a subject and index its voxels (from the stored index when kept)."""
    path = _mask_volume(files, mask_source)
    folder = _cache.derived_dir(files.root, files.subject)
    index = mask_index(path, folder)
    if mask_source == "anatomical":
        ref = _betas_grid_file(files)
        if ref is not None:
            checked(folder, "grid", (path, ref),
                    lambda: check_same_grid(path, index.grid_shape, index.affine, files, ref))
    return _Brain(
        grid_shape=index.grid_shape,
        affine=index.affine,
        c_index=index.c_index,
        offsets=index.offsets,
        digest=index.digest,
        mask_source=mask_source,
    )


class BrainSpace:
    """The brain of one subject, loaded on first use."""

    def __init__(self, files: SubjectFiles, mask_source: str = DEFAULT_MASK_SOURCE) -> None:
        self._files = files
        self._mask_source = mask_source
        self._brain: _Brain | None = None

    @property
    def mask_source(self) -> str:
        """The brain mask this voxel axis comes from."""
        return self._mask_source

    def get(self) -> _Brain:
        if self._brain is None:
            self._brain = load_brain(self._files, self._mask_source)
        return self._brain

    def grid_map(self, path: Path) -> np.ndarray:
        """A 3-D map restricted to brain voxels (flat, brain order)."""
        brain = self.get()
        data, _ = _nifti.read_volume(path)
        if tuple(data.shape) != brain.grid_shape:
            raise CorruptFileError(
                f"{path} has shape {tuple(data.shape)} but the beta grid of "
                f"{self._files.subject} is {brain.grid_shape}; the file does not belong to this "
                "subject's grid."
            )
        return np.asarray(data).ravel()[brain.c_index]

    def grid_indices(self, voxels: np.ndarray | None) -> np.ndarray:
        """``(n, 3)`` int64 grid indices ``(i, j, k)`` of the selected voxels."""
        brain = self.get()
        return np.column_stack(np.unravel_index(brain.index(voxels), brain.grid_shape)).astype(
            np.int64
        )

    def coordinates(self, voxels: np.ndarray | None) -> np.ndarray:
        """``(n, 3)`` scanner coordinates (mm) of the selected voxels (``laion_fmri.brain``'s)."""
        brain = self.get()
        return voxel_coordinates(brain.index(voxels), brain.grid_shape, brain.affine)

    def to_nifti(
        self, values: np.ndarray, path: str | os.PathLike[str], voxels: np.ndarray | None
    ) -> Path:
        """Write per-voxel values onto the grid as float32 NIfTI (``laion_fmri.brain``'s writer)."""
        brain = self.get()
        return write_values(values, brain.index(voxels), brain.grid_shape, brain.affine, path)


__all__ = ["BrainSpace", "anatomical_mask_hint", "check_same_grid", "load_brain"]
