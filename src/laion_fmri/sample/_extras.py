"""Sample trees beyond the GLM derivatives: anatomy, raw BIDS and localizer maps.

DATASET.md 2.7 and 3.4. Everything is small and deterministic for a seed:

* ``derivatives/anatomical/<sub>/ses-PrismaAnat/anat/``: T1w, T2w and the
  brain mask at ``res-1pt8`` (the betas grid) and at 0.8 mm (no ``res-``).
  The 1.8 mm brain mask is the brain blob grown by one voxel, so it is a
  strict superset of ``R2mean != 0`` (voxels without a functional fit).
* ``<sub>/<ses>/func/``: ``raw_runs`` runs x 3 echoes x mag/phase ``bold``
  (int16, ``n_raw_volumes`` volumes on the betas grid) and ``sbref`` images,
  plus one ``events.tsv`` per run listing that run's trials in order.
* ``derivatives/localizers/<sub>/<ses>/func/``: z maps (volume and fsnative
  surface) and per-run effect maps with a planted effect in one ROI category.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from laion_fmri import layout
from laion_fmri.sample import _design as design
from laion_fmri.sample._writers import (
    nifti_header,
    write_gifti,
    write_nifti_stream,
    write_table,
    write_volume,
)
from laion_fmri.sample.spec import LOCALIZER_TARGETS, SampleSpec

#: Seconds between trial onsets in the raw events tables, and each image's duration.
TRIAL_SPACING = 4.0
IMAGE_DURATION = 3.0
FIRST_ONSET = 6.0
#: Relative magnitude of each echo (T2* decay).
_ECHO_DECAY = {1: 1.0, 2: 0.62, 3: 0.38}


def _intensity(spec: SampleSpec, res: str, contrast: str, rng: np.random.Generator) -> np.ndarray:
    """Smooth int16 anatomical intensities: brain bright (T1w) or dark (T2w), dim background."""
    mask = design.anatomical_mask(spec, res)
    shape = mask.shape
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    u, v, w = np.meshgrid(*axes, indexing="ij", sparse=True)
    tissue = 0.5 + 0.25 * np.cos(4.0 * u) * np.cos(3.0 * v) + 0.25 * np.sin(5.0 * w)
    brain = 900.0 * tissue if contrast == "T1w" else 1400.0 * (1.0 - 0.6 * tissue)
    image = np.where(mask, brain, 40.0) + rng.normal(0.0, 2.0, shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 32767).astype(np.int16)


def write_anatomy(root: Path, spec: SampleSpec, subject: str, rng: np.random.Generator) -> None:
    """The anatomical folder: T1w, T2w, brain mask at every resolution of the spec."""
    for res in spec.anatomical_resolutions:
        affine = spec.anatomical_affine(res)
        mask = design.anatomical_mask(spec, res).astype(np.uint8)
        write_volume(root / layout.anatomical_key(subject, "mask", res), mask, affine,
                     level=spec.gzip_level, description=f"sample brain mask {res}")
        for contrast in ("T1w", "T2w"):
            write_volume(root / layout.anatomical_key(subject, contrast, res),
                         _intensity(spec, res, contrast, rng), affine, level=spec.gzip_level,
                         description=f"sample {contrast} {res}")


def raw_events(trials: pd.DataFrame, run: int) -> pd.DataFrame:
    """The events table of one raw run: that run's trials in trial-table order.

    Parameters
    ----------
    trials : pandas.DataFrame
        The session's trial table (``run`` and ``label`` columns).
    run : int
        Run number.

    Returns
    -------
    pandas.DataFrame
        ``onset``, ``duration``, ``trial_type``, ``label`` (BIDS events).
    """
    labels = trials.loc[trials["run"] == run, "label"].astype(str).to_list()
    return pd.DataFrame({
        "onset": FIRST_ONSET + TRIAL_SPACING * np.arange(len(labels)),
        "duration": IMAGE_DURATION,
        "trial_type": "image",
        "label": labels,
    })


def _raw_volumes(spec: SampleSpec, anat: np.ndarray, part: str, echo: int, n: int,
                 rng: np.random.Generator):  # type: ignore[no-untyped-def]
    x = np.arange(spec.grid_shape[0], dtype=np.float32)[:, None, None]
    y = np.arange(spec.grid_shape[1], dtype=np.float32)[None, :, None]
    for t in range(n):
        if part == "phase":  # a smooth phase ramp that grows with echo time, plus noise
            ramp = 3000.0 * np.sin(0.2 * echo * (x + 0.5 * y) + 0.3 * t)
            vol = ramp + rng.integers(-16, 16, spec.grid_shape)
            yield np.rint(vol).astype(np.int16)
            continue
        base = np.where(anat, 1000.0 * _ECHO_DECAY[echo], 25.0)
        vol = base + rng.normal(0.0, 6.0, spec.grid_shape)
        yield np.clip(np.rint(vol), 0, 32767).astype(np.int16)


def write_raw(root: Path, spec: SampleSpec, subject: str, trials: dict[str, pd.DataFrame],
              rng: np.random.Generator) -> None:
    """Raw ``func/`` trees of :attr:`SampleSpec.raw_sessions` (bold, sbref, events)."""
    anat = design.anatomical_mask(spec)
    for session in spec.raw_sessions:
        for run in range(1, spec.raw_runs + 1):
            write_table(root / layout.raw_events_key(subject, session, run),
                        raw_events(trials[session], run), sep="\t")
            for echo in layout.RAW_ECHOES:
                for part in layout.RAW_PARTS:
                    shape4 = (*spec.grid_shape, spec.n_raw_volumes)
                    write_nifti_stream(
                        root / layout.raw_image_key(subject, session, run, echo, part, "bold"),
                        nifti_header(shape4, spec.affine, np.int16,
                                     description=f"sample raw bold echo {echo} {part}"),
                        _raw_volumes(spec, anat, part, echo, spec.n_raw_volumes, rng),
                        level=spec.gzip_level,
                    )
                    sbref = next(_raw_volumes(spec, anat, part, echo, 1, rng))
                    write_volume(
                        root / layout.raw_image_key(subject, session, run, echo, part, "sbref"),
                        sbref, spec.affine, level=spec.gzip_level,
                        description=f"sample sbref echo {echo} {part}",
                    )


def write_localizers(root: Path, spec: SampleSpec, subject: str,
                     rng: np.random.Generator) -> None:
    """Localizer maps (:meth:`SampleSpec.localizer_maps`) with a planted effect per contrast."""
    session = spec.localizer_session
    if session is None:
        return
    anat = design.anatomical_mask(spec)
    rois = spec.roi_masks()
    for entry in spec.localizer_maps():
        contrast = str(entry["contrast"])
        category = LOCALIZER_TARGETS[contrast]
        labels = spec.rois[category]
        key = layout.localizer_key(subject, session, **entry)  # type: ignore[arg-type]
        if entry.get("space") == "fsnative":
            hemi = str(entry["hemi"])
            effect = np.max([design.surface_mask(spec, lab, hemi) for lab in labels], axis=0)
            values = rng.standard_normal(spec.n_vertices) + 4.0 * effect
            write_gifti(root / key, values.astype(np.float32))
            continue
        target = np.any([rois[lab] for lab in labels], axis=0)
        values = rng.standard_normal(spec.grid_shape).astype(np.float32) + 4.0 * target
        write_volume(root / key, np.where(anat, values, 0.0).astype(np.float32), spec.affine,
                     level=spec.gzip_level, description=f"sample localizer {contrast}")


def write_subject_extras(root: Path, spec: SampleSpec, subject: str, seed: int,
                         trials: dict[str, pd.DataFrame]) -> None:
    """Anatomy, raw BIDS and localizer maps of one subject.

    Parameters
    ----------
    root : Path
        The sample tree.
    spec : SampleSpec
        What to write.
    subject : str
        Canonical subject id.
    seed : int
        The sample's seed.
    trials : dict of str to pandas.DataFrame
        Trial tables of (at least) the raw sessions.
    """
    rng = np.random.default_rng([seed, layout.SUBJECTS.index(subject), 13])
    write_anatomy(root, spec, subject, rng)
    write_raw(root, spec, subject, trials, rng)
    write_localizers(root, spec, subject, rng)
