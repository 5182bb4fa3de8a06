"""The data of a sample spec: its constants, its fields and the facts that follow from them alone.

:class:`laion_fmri.sample.spec.SampleSpec` adds the facts the design derives
(masks, trial schedules, image names) on top; the design functions take a
:class:`SpecFields`, so they never import the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
    "SpecFields",
]

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
class SpecFields:
    """The fields of :class:`~laion_fmri.sample.spec.SampleSpec` (documented there)."""

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
