"""What a sample dataset contains: every fact tests and demos read instead of hard-coding.

The spec depends only on the scale (and an optional trial count), never on
the seed: the seed changes trial order, noise, embeddings and weights, not the
shapes, counts, names or file variants.
"""


from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from laion_fmri.errors import ConfigError
from laion_fmri.sample import _design as design
from laion_fmri.sample._fields import (
    BUCKET_LABELS,
    GZIP_STYLE_OF_VARIANT,
    LOCALIZER_CONDITIONS,
    LOCALIZER_CONTRASTS,
    LOCALIZER_SURFACE,
    LOCALIZER_TARGETS,
    NIFTI_VARIANTS_TINY,
    ROIS,
    SCALES,
    SPEC_VERSION,
    SpecFields,
)

__all__ = [
    "BUCKET_LABELS",
    "GZIP_STYLE_OF_VARIANT",
    "LOCALIZER_CONDITIONS",
    "LOCALIZER_CONTRASTS",
    "LOCALIZER_SURFACE",
    "LOCALIZER_TARGETS",
    "NIFTI_VARIANTS_TINY",
    "ROIS",
    "SCALES",
    "SPEC_VERSION",
    "SampleSpec",
    "real_image_names",
    "spec_for",
]


@dataclass(frozen=True)
class SampleSpec(SpecFields):
    """Facts about one scale of the sample dataset.

    Attributes
    ----------
    scale : str
        ``"tiny"``, ``"small"`` or ``"full-grid"``.
    version : int
        :data:`SPEC_VERSION` (cache invalidation).
    subjects : tuple of str
        Subjects in the tree.
    sessions : tuple of str
        Public main sessions of every subject.
    held_out_sessions : tuple of str
        Sessions present in the tree that a real bucket refuses (``ses-31``).
    grid_shape : tuple of int
        ``(X, Y, Z)`` of every volume.
    voxel_size : float
        Isotropic voxel size in mm.
    origin : tuple of float
        World coordinate (mm) of voxel ``(0, 0, 0)``.
    brain_radii : tuple of float
        Semi-axes (voxels) of the brain blob.
    n_runs : int
        Runs per session; the trials TSV ``run`` column holds ints ``1..n_runs``.
    n_shared_12rep, n_shared_4rep_nsd, n_shared_4rep_ood, n_unique : int
        Images drawn from each real pool (unique: per subject).
    n_trials : int or None
        If set, every session has exactly this many trials.
    rois : dict
        Category -> de-hyphenated ROI labels (all exist for every subject).
    bucket_labels : dict
        De-hyphenated label -> label stored in the bucket key when different.
    surface_categories : tuple of str
        Categories whose ROIs also have ``.func.gii`` and ``.label`` files.
    n_vertices : int
        Vertices per hemisphere of the surface ROI files.
    nifti_variants : dict
        ``(subject, session) -> variant`` for the betas files that are not
        plain little-endian float32 (``int16-scaled``, ``float32-big-endian``,
        ``float32-nan``).
    n_nan_voxels : int
        Brain voxels (outside every ROI) that are NaN in the ``float32-nan`` session.
    image_size : int
        Side (px) of the procedural stimulus JPEGs and segmentation masks.
    latent_dim : int
        Dimension of the latent image features behind every embedding.
    gzip_level : int
        Compression level of the NIfTI files.
    doc_image : str
        The documentation's example image (in every subject's trials, with
        segmentation nouns ``fingers``, ``hand``, ``pullover``).
    anatomical_resolutions : tuple of str
        Resolutions of the anatomical folder: ``1pt8`` (T1w, T2w and the
        brain mask on the betas grid) and ``0pt8`` (the same on the hires grid).
    hires_voxel_size : float
        Voxel size (mm) of the ``0pt8`` grid.
    raw_sessions : tuple of str
        Sessions with a raw BIDS ``func/`` tree (bold and sbref for every run,
        echo and part, plus one events table per run).
    raw_runs : int
        Raw runs per raw session (the first ``raw_runs`` runs of the trial table).
    n_raw_volumes : int
        Volumes per raw BOLD run (int16, on the betas grid).
    localizer_session : str or None
        Session of the localizer maps (``None``: no localizer maps).
    localizer_runs : int
        Runs of the per-run ``stat-effect`` localizer maps.

    Examples
    --------
    >>> spec = spec_for("tiny")
    >>> spec.grid_shape, spec.bucket_label("FFA1"), spec.nifti_variant("sub-03", "ses-01")
    ((24, 28, 20), 'FFA-1', 'float32')
    """


    # ----------------------------------------------------------------- facts the design derives
    def anatomical_mask(self, res: str = "1pt8") -> np.ndarray:
        """Boolean anatomical brain mask (``desc-brain_mask``) of a grid.

        At ``1pt8`` it is the brain blob grown by one voxel (6-neighbourhood):
        a strict superset of the ``R2mean != 0`` mask (:meth:`brain_mask`), as
        in the reference's data.

        Parameters
        ----------
        res : {"1pt8", "0pt8"}
            Grid.

        Returns
        -------
        numpy.ndarray of bool
        """
        return design.anatomical_mask(self, res)

    @property
    def n_anatomical_voxels(self) -> int:
        """Voxels of the ``1pt8`` anatomical brain mask."""
        return int(self.anatomical_mask().sum())

    def participant_code(self, subject: str) -> str:
        """Participant code carried by a subject's unique images (``sub-03`` -> ``p04``).

        Parameters
        ----------
        subject : str
            Canonical subject id.

        Returns
        -------
        str
        """
        return design.PARTICIPANT_CODES[subject]

    def brain_mask(self) -> np.ndarray:
        """Boolean ``grid_shape`` brain mask (= ``R2mean != 0`` in the tree).

        Returns
        -------
        numpy.ndarray of bool
        """
        return design.brain_mask(self)

    def roi_masks(self) -> dict[str, np.ndarray]:
        """Boolean ``grid_shape`` volume of every ROI.

        Returns
        -------
        dict of str to numpy.ndarray
            Keyed by de-hyphenated label; every mask lies inside the brain.
        """
        return design.roi_masks(self)

    @property
    def n_brain_voxels(self) -> int:
        """Number of brain-mask voxels."""
        return int(self.brain_mask().sum())

    def trial_labels(self, subject: str, session: str) -> list[str]:
        """The image names one session shows (with repeats), sorted.

        Parameters
        ----------
        subject, session : str
            Canonical ids (main or held-out session).

        Returns
        -------
        list of str
        """
        return sorted(design.session_images(self, subject)[session])

    def n_trials_in(self, subject: str, session: str) -> int:
        """Trials (beta volumes) of one session.

        Parameters
        ----------
        subject, session : str
            Canonical ids (main or held-out session).

        Returns
        -------
        int
        """
        return len(design.session_images(self, subject)[session])

    def stimulus_names(self) -> list[str]:
        """Image names in the stimulus files (metadata row order = sorted).

        Every image any trial shows, the documentation's example names, and a
        few unique images of subjects without trials in the sample.

        Returns
        -------
        list of str
        """
        return design.catalogue(self)

    def reduced_images(self, subject: str) -> tuple[str, ...]:
        """Images of a subject that lost one planned repetition.

        They enter ``NoiseceilingAllrep`` but not ``Noiseceiling4rep``/``12rep``.

        Parameters
        ----------
        subject : str
            Canonical subject id.

        Returns
        -------
        tuple of str
        """
        return design.reduced_images(self, subject)


def real_image_names() -> tuple[str, ...]:
    """Every real LAION-fMRI image ID (25,052, sorted), from the bundled label list.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> real_image_names()[0]
    'shared_12rep_LAION_cluster_1003_i0.jpg'
    """
    return design.all_labels()


def spec_for(scale: str = "tiny", n_trials: int | None = None) -> SampleSpec:
    """The :class:`SampleSpec` of a scale.

    Parameters
    ----------
    scale : {"tiny", "small", "full-grid"}
        ``tiny``: 2 subjects x 3 sessions + ``ses-31`` on a 24x28x20 grid
        (tests). ``small``: more sessions and images (demos). ``full-grid``:
        the real 143x143x143 grid, one subject and one session with
        ``n_trials`` trials (default 256; benchmarks).
    n_trials : int, optional
        Trials per session (overrides the scale's schedule).

    Returns
    -------
    SampleSpec

    Raises
    ------
    ConfigError
        For an unknown scale or a non-positive trial count.

    Examples
    --------
    >>> spec_for("tiny").subjects
    ('sub-01', 'sub-03')
    """
    if scale not in SCALES:
        raise ConfigError(f"Unknown sample scale {scale!r}; choose one of {', '.join(SCALES)}.")
    if n_trials is not None and (not isinstance(n_trials, int) or n_trials < 8):
        raise ConfigError(f"n_trials must be an integer >= 8, got {n_trials!r}.")
    spec = SampleSpec(scale=scale)
    if scale == "small":
        spec = replace(
            spec,
            sessions=("ses-01", "ses-02", "ses-03", "ses-04", "ses-05", "ses-06"),
            grid_shape=(32, 38, 28),
            brain_radii=(13.5, 16.5, 11.5),
            n_runs=6,
            n_shared_12rep=16,
            n_shared_4rep_nsd=10,
            n_shared_4rep_ood=14,
            n_unique=40,
            n_vertices=1000,
        )
    elif scale == "full-grid":
        spec = replace(
            spec,
            subjects=("sub-03",),
            sessions=("ses-01",),
            held_out_sessions=(),
            grid_shape=(143, 143, 143),
            origin=(-127.127, -145.796, -104.902),
            brain_radii=(26.0, 30.0, 20.0),
            n_runs=12,
            n_trials=256 if n_trials is None else n_trials,
            nifti_variants={},
            n_nan_voxels=0,
            anatomical_resolutions=("1pt8",),
            raw_sessions=(),
            localizer_session=None,
            gzip_level=1,
            n_vertices=2000,
        )
    if n_trials is not None:
        spec = replace(spec, n_trials=n_trials)
    return spec
