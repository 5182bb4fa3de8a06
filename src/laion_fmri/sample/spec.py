"""What a sample dataset contains: every fact tests and demos read instead of hard-coding.

The spec depends only on the scale (and an optional trial count), never on
the seed: the seed changes trial order, noise, embeddings and weights, not the
shapes, counts, names or file variants.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from laion_fmri.errors import ConfigError

#: Bump when the generated tree changes, so cached samples are rebuilt.
SPEC_VERSION = 2

SCALES: tuple[str, ...] = ("tiny", "small", "full-grid")

#: De-hyphenated label -> label as stored in the bucket key.
BUCKET_LABELS: dict[str, str] = {"FFA1": "FFA-1", "FFA2": "FFA-2", "pSTSfaces": "pSTS-faces"}

ROIS: dict[str, tuple[str, ...]] = {
    "body": ("EBA",),
    "face": ("FFA1", "FFA2", "OFA", "pSTSfaces"),
    "laion": ("laionEVC",),
    "place": ("OPA", "PPA"),
    "retinotopy": ("V1d", "V1v", "hV4"),
}

#: NIfTI storage variants of the betas files, so readers are tested against nibabel.
#: Every other session is little-endian float32 without scaling.
NIFTI_VARIANTS_TINY: dict[tuple[str, str], str] = {
    ("sub-01", "ses-01"): "int16-scaled",  # int16 with scl_slope != 1 and scl_inter != 0
    ("sub-01", "ses-02"): "float32-big-endian",
    ("sub-01", "ses-03"): "float32-nan",  # a few brain voxels are NaN in every trial
    # Multi-member gzip, as pigz/bgzip or concatenated streams write it.
    ("sub-03", "ses-02"): "float32-multimember",  # one gzip member per volume
    ("sub-03", "ses-03"): "float32-bgzf",  # bgzip blocks with the FEXTRA "BC" field
}
#: Storage variant -> gzip layout of the file (every other variant: one member).
GZIP_STYLE_OF_VARIANT: dict[str, str] = {
    "float32-multimember": "concatenated",
    "float32-bgzf": "bgzf",
}

#: Localizer maps of the sample (DATASET.md 2.7): task -> z-stat contrasts (volume).
LOCALIZER_CONTRASTS: dict[str, tuple[str, ...]] = {
    "floc": ("faceVsOthers", "placeVsOthers"),
    "MotionLoc": ("motionVsStatic",),
}
#: Per-run ``stat-effect`` maps: task -> conditions (volume, runs 1..localizer_runs).
LOCALIZER_CONDITIONS: dict[str, tuple[str, ...]] = {"floc": ("face", "scrambled")}
#: (task, contrast) with z maps on the fsnative surface too (both hemispheres).
LOCALIZER_SURFACE: tuple[tuple[str, str], ...] = (("floc", "faceVsOthers"),)
#: Contrast/condition -> ROI category whose voxels carry the planted effect.
LOCALIZER_TARGETS: dict[str, str] = {
    "faceVsOthers": "face", "face": "face", "placeVsOthers": "place",
    "motionVsStatic": "body", "scrambled": "retinotopy",
}


@dataclass(frozen=True)
class SampleSpec:
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

    scale: str
    version: int = SPEC_VERSION
    subjects: tuple[str, ...] = ("sub-01", "sub-03")
    sessions: tuple[str, ...] = ("ses-01", "ses-02", "ses-03")
    held_out_sessions: tuple[str, ...] = ("ses-31",)
    grid_shape: tuple[int, int, int] = (24, 28, 20)
    voxel_size: float = 1.778
    origin: tuple[float, float, float] = (-21.336, -31.115, -14.224)
    brain_radii: tuple[float, float, float] = (10.0, 12.0, 8.5)
    n_runs: int = 4
    n_shared_12rep: int = 8
    n_shared_4rep_nsd: int = 4
    n_shared_4rep_ood: int = 6
    n_unique: int = 12
    n_trials: int | None = None
    rois: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(ROIS))
    bucket_labels: dict[str, str] = field(default_factory=lambda: dict(BUCKET_LABELS))
    surface_categories: tuple[str, ...] = ("face",)
    n_vertices: int = 400
    nifti_variants: dict[tuple[str, str], str] = field(
        default_factory=lambda: dict(NIFTI_VARIANTS_TINY)
    )
    n_nan_voxels: int = 4
    image_size: int = 64
    latent_dim: int = 8
    gzip_level: int = 6
    doc_image: str = "shared_12rep_LAION_cluster_1003_i0.jpg"
    anatomical_resolutions: tuple[str, ...] = ("1pt8", "0pt8")
    hires_voxel_size: float = 0.8
    raw_sessions: tuple[str, ...] = ("ses-01",)
    raw_runs: int = 2
    n_raw_volumes: int = 4
    localizer_session: str | None = "ses-01"
    localizer_runs: int = 2

    # ----------------------------------------------------------------- derived facts
    @property
    def all_sessions(self) -> tuple[str, ...]:
        """Main sessions followed by held-out sessions (tree order)."""
        return self.sessions + self.held_out_sessions

    @property
    def affine(self) -> np.ndarray:
        """Voxel -> world (mm) affine of every volume."""
        aff = np.diag([self.voxel_size] * 3 + [1.0])
        aff[:3, 3] = self.origin
        return aff

    @property
    def roi_labels(self) -> tuple[str, ...]:
        """Every ROI label (de-hyphenated), sorted."""
        return tuple(sorted(lab for labs in self.rois.values() for lab in labs))

    def bucket_label(self, label: str) -> str:
        """Label as stored in the bucket key.

        Parameters
        ----------
        label : str
            De-hyphenated ROI label, e.g. ``"FFA1"``.

        Returns
        -------
        str
            ``"FFA-1"`` for ``"FFA1"``; unchanged for labels stored without hyphens.
        """
        return self.bucket_labels.get(label, label)

    def category_of(self, label: str) -> str:
        """Category directory of an ROI label.

        Parameters
        ----------
        label : str
            De-hyphenated ROI label.

        Returns
        -------
        str

        Raises
        ------
        KeyError
            If the sample has no such ROI.
        """
        for category, labels in self.rois.items():
            if label in labels:
                return category
        raise KeyError(label)

    def nifti_variant(self, subject: str, session: str) -> str:
        """Storage variant of one betas file.

        Parameters
        ----------
        subject, session : str
            Canonical ids.

        Returns
        -------
        str
            ``"float32"`` unless listed in :attr:`nifti_variants`.
        """
        return self.nifti_variants.get((subject, session), "float32")

    def gzip_style(self, subject: str, session: str) -> str:
        """gzip layout of one betas file: ``single``, ``concatenated`` or ``bgzf``.

        Parameters
        ----------
        subject, session : str
            Canonical ids.

        Returns
        -------
        str
        """
        return GZIP_STYLE_OF_VARIANT.get(self.nifti_variant(subject, session), "single")

    @property
    def hires_grid_shape(self) -> tuple[int, int, int]:
        """``(X, Y, Z)`` of the ``0pt8`` anatomical grid (covers the same field of view)."""
        x, y, z = (round(n * self.voxel_size / self.hires_voxel_size) for n in self.grid_shape)
        return (x, y, z)

    def anatomical_affine(self, res: str = "1pt8") -> np.ndarray:
        """Voxel -> world (mm) affine of an anatomical grid.

        Parameters
        ----------
        res : {"1pt8", "0pt8"}
            ``1pt8`` is the betas grid (:attr:`affine`); ``0pt8`` shares its
            outer corner.

        Returns
        -------
        numpy.ndarray
        """
        if res == "1pt8":
            return self.affine
        aff = np.diag([self.hires_voxel_size] * 3 + [1.0])
        aff[:3, 3] = np.asarray(self.origin) + (self.hires_voxel_size - self.voxel_size) / 2
        return aff

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
        from laion_fmri.sample._extras import anatomical_mask

        return anatomical_mask(self, res)

    @property
    def n_anatomical_voxels(self) -> int:
        """Voxels of the ``1pt8`` anatomical brain mask."""
        return int(self.anatomical_mask().sum())

    def localizer_maps(self) -> list[dict[str, object]]:
        """Every localizer map of a subject as :func:`laion_fmri.layout.localizer_key` arguments.

        Returns
        -------
        list of dict
            ``task``, ``contrast``, ``stat`` and, where set, ``space``,
            ``hemi``, ``run`` (the session is :attr:`localizer_session`).
        """
        if self.localizer_session is None:
            return []
        out: list[dict[str, object]] = []
        for task, contrasts in LOCALIZER_CONTRASTS.items():
            out += [{"task": task, "contrast": c, "stat": "z"} for c in contrasts]
        for task, contrast in LOCALIZER_SURFACE:
            out += [{"task": task, "contrast": contrast, "stat": "z", "space": "fsnative",
                     "hemi": hemi} for hemi in ("L", "R")]
        for task, conditions in LOCALIZER_CONDITIONS.items():
            out += [{"task": task, "contrast": c, "stat": "effect", "run": run}
                    for run in range(1, self.localizer_runs + 1) for c in conditions]
        return out

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
        from laion_fmri.sample._design import PARTICIPANT_CODES

        return PARTICIPANT_CODES[subject]

    def brain_mask(self) -> np.ndarray:
        """Boolean ``grid_shape`` brain mask (= ``R2mean != 0`` in the tree).

        Returns
        -------
        numpy.ndarray of bool
        """
        from laion_fmri.sample._design import brain_mask

        return brain_mask(self)

    def roi_masks(self) -> dict[str, np.ndarray]:
        """Boolean ``grid_shape`` volume of every ROI.

        Returns
        -------
        dict of str to numpy.ndarray
            Keyed by de-hyphenated label; every mask lies inside the brain.
        """
        from laion_fmri.sample._design import roi_masks

        return roi_masks(self)

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
        from laion_fmri.sample._design import session_images

        return sorted(session_images(self, subject)[session])

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
        from laion_fmri.sample._design import session_images

        return len(session_images(self, subject)[session])

    def stimulus_names(self) -> list[str]:
        """Image names in the stimulus files (metadata row order = sorted).

        Every image any trial shows, the documentation's example names, and a
        few unique images of subjects without trials in the sample.

        Returns
        -------
        list of str
        """
        from laion_fmri.sample._design import catalogue

        return catalogue(self)

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
        from laion_fmri.sample._design import reduced_images

        return reduced_images(self, subject)


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
    from laion_fmri.sample._design import all_labels

    return all_labels()


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
