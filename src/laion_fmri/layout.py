"""The one place that knows the dataset's key and file names.

Every other module asks this one for keys (bucket-relative, ``/``-separated)
and local paths. All functions are pure: no I/O, no network.

Layout decisions (see ``docs/ARCHITECTURE.md``)
------------------------------------------------
* The local mirror uses the bucket key under the data directory, except that
  hyphens inside a ``label-<value>`` token are removed (``label-FFA-1`` ->
  ``label-FFA1``), so ROI names are BIDS-valid alphanumerics.
* ROIs follow the later, categorised layout
  ``derivatives/rois/<sub>/<category>/<sub>_space-T1w_res-1pt8_label-<ROI>_mask.nii.gz``;
  the snapshot layout ``derivatives/atlases/<sub>/rois/<ROI>.nii.gz`` is still
  read (category ``"uncategorized"``).
* The brain mask is ``R2mean != 0`` (later layout). When a snapshot mask file
  ``desc-meanR2gt15mask_mask`` exists it takes precedence.
* Voxel order: brain-mask voxels in C order of the ``(x, y, z)`` array that
  nibabel returns.
* Package state (manifest, cache, license markers, locks) lives under
  ``<data_dir>/.laion_fmri/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from laion_fmri.errors import SessionNotFoundError, SubjectNotFoundError, UnsafeKeyError

# --------------------------------------------------------------------------- constants
BUCKET = "laion-fmri"
REGION = "us-west-2"

SUBJECTS: tuple[str, ...] = ("sub-01", "sub-03", "sub-05", "sub-06", "sub-07")
HELD_OUT_SESSIONS: tuple[str, ...] = ("ses-31", "ses-32", "ses-33", "ses-34")
AVERAGES = "averages"

TASK = "images"
SPACE = "T1w"
RES = "1pt8"

DATASET_LEVEL_KEYS: tuple[str, ...] = (
    "dataset_description.json",
    "participants.tsv",
    "participants.json",
    "README",
)

GLM_ROOT = "derivatives/glmsingle-tedana"
ROI_ROOT = "derivatives/rois"
SNAPSHOT_ROI_ROOT = "derivatives/atlases"
STIMULI_ROOT = "stimuli"

SUBJECT_NC_DESCS: tuple[str, ...] = ("Noiseceiling4rep", "Noiseceiling12rep", "NoiseceilingAllrep")

EMBEDDING_MODELS: tuple[str, ...] = ("CLIP", "DINOv2", "PEcore", "SigLIP2")
EMBEDDING_DIMS: dict[str, int] = {"CLIP": 1024, "DINOv2": 1024, "PEcore": 1024, "SigLIP2": 1152}

STIMULI_IMAGES_KEY = f"{STIMULI_ROOT}/task-{TASK}_stimuli.h5"
STIMULI_METADATA_KEY = f"{STIMULI_ROOT}/task-{TASK}_metadata.csv"
SEGMENTATIONS_KEY = f"{STIMULI_ROOT}/task-{TASK}_desc-segmentations.h5"
SEGMENTATIONS_METADATA_KEY = f"{STIMULI_ROOT}/task-{TASK}_desc-segmentations_metadata.csv"
CAPTIONS_KEY = f"{STIMULI_ROOT}/task-{TASK}_desc-captions.csv"
# Raw images and their metadata are gated by the data-use agreement.
GATED_STIMULUS_KEYS: tuple[str, ...] = (STIMULI_IMAGES_KEY, STIMULI_METADATA_KEY)

# HDF5 dataset names inside the stimulus files.
H5_IMAGES = "images"
H5_EMBEDDING = "embedding"
H5_IMAGE_IDS = "image_ids"
H5_VALID = "valid"
H5_MASKS = "masks"

TRIAL_COLUMNS: tuple[str, ...] = ("session", "run", "beta_index", "label")
STIMULUS_METADATA_COLUMNS: tuple[str, ...] = (
    "image_name",
    "dataset",
    "participant",
    "unique_or_shared",
    "n_reps",
)
CAPTION_COLUMNS: tuple[str, ...] = (
    "image_name",
    "caption_idx",
    "source",
    "caption",
    "origin_collection",
    "participant_id",
    "ai_model",
)
SEGMENTATION_COLUMNS: tuple[str, ...] = (
    "mask_row",
    "image_name",
    "noun",
    "instance_id",
    "score",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
    "localized",
    "mask_file",
)

ROI_CATEGORIES: tuple[str, ...] = (
    "body",
    "character",
    "face",
    "laion",
    "motion",
    "object",
    "place",
    "retinotopy",
)
SNAPSHOT_ROI_CATEGORY = "uncategorized"
HEMIS: tuple[str, ...] = ("L", "R")

# Local state under <data_dir>/.laion_fmri/
STATE_DIRNAME = ".laion_fmri"

# --------------------------------------------------------------------------- identifiers
_SUB_RE = re.compile(r"^(?:sub-)?0*(\d{1,3})$")
_SUB_LABEL_RE = re.compile(r"^(?:sub-)?[A-Za-z0-9]{1,32}$")
_SES_RE = re.compile(r"^(?:ses-)?0*(\d{1,3})$")


def normalize_subject(subject: object, known: Iterable[str] | None = None) -> str:
    """Return the canonical ``sub-<label>`` id for ``"sub-03"``, ``"03"``, ``"3"`` or ``3``.

    Any well-formed BIDS label is accepted (numbers are zero-padded to two
    digits); whether the subject exists is the source's listing's business
    (see :func:`laion_fmri.discovery.get_subjects`), not a list in the code.

    Parameters
    ----------
    subject : str or int
        Subject label; an integer is the label number, not a position.
    known : iterable of str, optional
        When given, the value must also be one of these ids.

    Returns
    -------
    str

    Raises
    ------
    SubjectNotFoundError
        If the value is malformed, or not one of ``known`` when that is given.

    Examples
    --------
    >>> normalize_subject(3)
    'sub-03'
    >>> normalize_subject("sub-12")
    'sub-12'
    """
    text: str | None = None
    if isinstance(subject, bool):
        text = None
    elif isinstance(subject, int):
        text = str(subject)
    elif isinstance(subject, str):
        text = subject.strip()
    candidate = None
    if text is not None:
        match = _SUB_RE.match(text)
        if match:
            candidate = f"sub-{int(match.group(1)):02d}"
        elif _SUB_LABEL_RE.match(text):
            candidate = text if text.startswith("sub-") else f"sub-{text}"
    valid = tuple(known) if known is not None else None
    if candidate is None or (valid is not None and candidate not in valid):
        listed = f"Valid subjects: {', '.join(valid)}" if valid is not None else (
            "Valid subjects look like 'sub-03'")
        raise SubjectNotFoundError(
            f"Unknown subject {subject!r}. {listed} (also accepted as '03' or 3)."
        )
    return candidate


def normalize_session(session: object) -> str:
    """Return the canonical ``ses-NN`` id for ``"ses-01"``, ``"01"``, ``"1"`` or ``1``.

    Only the form is checked, not whether the session exists.

    Parameters
    ----------
    session : str or int
        Session label; an integer is the session number.

    Returns
    -------
    str
        ``ses-`` followed by the number, zero-padded to two digits.

    Raises
    ------
    SessionNotFoundError
        If the value is not a session id.

    Examples
    --------
    >>> normalize_session("1")
    'ses-01'
    >>> normalize_session(31)
    'ses-31'
    """
    text = None
    if isinstance(session, int) and not isinstance(session, bool):
        text = str(session)
    elif isinstance(session, str):
        text = session.strip()
    match = _SES_RE.match(text) if text is not None else None
    if not match:
        raise SessionNotFoundError(
            f"Malformed session {session!r}; use 'ses-01', '01' or 1."
        )
    return f"ses-{int(match.group(1)):02d}"


def is_held_out(session: str) -> bool:
    """True for the sessions the bucket refuses (``ses-31`` .. ``ses-34``).

    Parameters
    ----------
    session : str
        Canonical session id (see :func:`normalize_session`).

    Returns
    -------
    bool
        Whether ``session`` is one of :data:`HELD_OUT_SESSIONS`.

    Examples
    --------
    >>> is_held_out("ses-31"), is_held_out("ses-01")
    (True, False)
    """
    return session in HELD_OUT_SESSIONS


# --------------------------------------------------------------------------- GLMsingle keys
def subject_glm_prefix(subject: str) -> str:
    """Key prefix of a subject's GLMsingle derivatives.

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str
        ``derivatives/glmsingle-tedana/<sub>/``.

    Examples
    --------
    >>> subject_glm_prefix("sub-03")
    'derivatives/glmsingle-tedana/sub-03/'
    """
    return f"{GLM_ROOT}/{subject}/"


def session_func_prefix(subject: str, session: str) -> str:
    """Key prefix of one session's GLMsingle outputs.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    session : str
        Canonical session id.

    Returns
    -------
    str
        ``derivatives/glmsingle-tedana/<sub>/<ses>/func/``.

    Examples
    --------
    >>> session_func_prefix("sub-03", "ses-01")
    'derivatives/glmsingle-tedana/sub-03/ses-01/func/'
    """
    return f"{GLM_ROOT}/{subject}/{session}/func/"


def betas_key(subject: str, session: str) -> str:
    """Key of the 4-D single-trial betas of one session.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    session : str
        Canonical session id.

    Returns
    -------
    str
        The ``stat-effect_desc-SingletrialBetas_statmap.nii.gz`` key under
        :func:`session_func_prefix`.

    Examples
    --------
    >>> betas_key("sub-03", "ses-01").split("/")[-1]
    'sub-03_ses-01_task-images_space-T1w_stat-effect_desc-SingletrialBetas_statmap.nii.gz'
    """
    return (
        session_func_prefix(subject, session)
        + f"{subject}_{session}_task-{TASK}_space-{SPACE}_stat-effect_desc-SingletrialBetas_statmap.nii.gz"
    )


def session_nc_key(subject: str, session: str) -> str:
    """Key of the per-session noise ceiling map (percent).

    Parameters
    ----------
    subject : str
        Canonical subject id.
    session : str
        Canonical session id.

    Returns
    -------
    str
        The ``desc-Noiseceiling_statmap.nii.gz`` key under :func:`session_func_prefix`.

    Examples
    --------
    >>> session_nc_key("sub-03", "ses-01").split("/")[-1]
    'sub-03_ses-01_task-images_space-T1w_desc-Noiseceiling_statmap.nii.gz'
    """
    return (
        session_func_prefix(subject, session)
        + f"{subject}_{session}_task-{TASK}_space-{SPACE}_desc-Noiseceiling_statmap.nii.gz"
    )


def session_r2_key(subject: str, session: str) -> str:
    """Key of the per-session variance-explained (R2) map.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    session : str
        Canonical session id.

    Returns
    -------
    str
        The ``stat-rsquare_desc-R2_statmap.nii.gz`` key under :func:`session_func_prefix`.

    Examples
    --------
    >>> session_r2_key("sub-03", "ses-01").split("/")[-1]
    'sub-03_ses-01_task-images_space-T1w_stat-rsquare_desc-R2_statmap.nii.gz'
    """
    return (
        session_func_prefix(subject, session)
        + f"{subject}_{session}_task-{TASK}_space-{SPACE}_stat-rsquare_desc-R2_statmap.nii.gz"
    )


def trials_key(subject: str, session: str) -> str:
    """Key of a session's trial table (one row per beta volume).

    Parameters
    ----------
    subject : str
        Canonical subject id.
    session : str
        Canonical session id.

    Returns
    -------
    str
        The ``desc-SingletrialBetas_trials.tsv`` key under :func:`session_func_prefix`.

    Examples
    --------
    >>> trials_key("sub-03", "ses-01").split("/")[-1]
    'sub-03_ses-01_task-images_desc-SingletrialBetas_trials.tsv'
    """
    return (
        session_func_prefix(subject, session)
        + f"{subject}_{session}_task-{TASK}_desc-SingletrialBetas_trials.tsv"
    )


def sidecar_key(key: str) -> str:
    """The JSON sidecar of a data key (``.nii.gz``/``.tsv`` -> ``.json``).

    Parameters
    ----------
    key : str
        Bucket key of a data file.

    Returns
    -------
    str
        The same key with every extension replaced by ``.json``.

    Examples
    --------
    >>> sidecar_key("a/sub-03_ses-01_task-images_desc-SingletrialBetas_trials.tsv")
    'a/sub-03_ses-01_task-images_desc-SingletrialBetas_trials.json'
    >>> sidecar_key("a/x_statmap.nii.gz")
    'a/x_statmap.json'
    """
    name = PurePosixPath(key).name
    stem = name.split(".", 1)[0]
    return str(PurePosixPath(key).with_name(stem + ".json"))


def subject_nc_key(subject: str, desc: str) -> str:
    """Key of a cross-session noise ceiling map.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    desc : str
        One of :data:`SUBJECT_NC_DESCS`, e.g. ``"Noiseceiling12rep"``.

    Returns
    -------
    str
        The ``desc-<desc>_statmap.nii.gz`` key under :func:`subject_glm_prefix`.

    Examples
    --------
    >>> subject_nc_key("sub-03", "Noiseceiling12rep").split("/")[-1]
    'sub-03_task-images_space-T1w_desc-Noiseceiling12rep_statmap.nii.gz'
    """
    return subject_glm_prefix(subject) + f"{subject}_task-{TASK}_space-{SPACE}_desc-{desc}_statmap.nii.gz"


def r2mean_key(subject: str) -> str:
    """Key of the mean R2 across sessions; its non-zero voxels define the brain mask.

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str
        The ``desc-R2mean_statmap.nii.gz`` key under :func:`subject_glm_prefix`.

    Examples
    --------
    >>> r2mean_key("sub-03").split("/")[-1]
    'sub-03_task-images_space-T1w_stat-rsquare_desc-R2mean_statmap.nii.gz'
    """
    return (
        subject_glm_prefix(subject)
        + f"{subject}_task-{TASK}_space-{SPACE}_stat-rsquare_desc-R2mean_statmap.nii.gz"
    )


def session_summary_key(subject: str, session: str) -> str:
    """Key of the GLMsingle run summary of one session (also logs excluded runs).

    Parameters
    ----------
    subject : str
        Canonical subject id.
    session : str
        Canonical session id.

    Returns
    -------
    str
        The ``desc-GLMsingle_summary.json`` key under :func:`session_func_prefix`.

    Examples
    --------
    >>> session_summary_key("sub-03", "ses-01").split("/")[-1]
    'sub-03_ses-01_task-images_desc-GLMsingle_summary.json'
    """
    return (
        session_func_prefix(subject, session)
        + f"{subject}_{session}_task-{TASK}_desc-GLMsingle_summary.json"
    )


def subject_summary_key(subject: str) -> str:
    """Key of the subject-level aggregation summary JSON.

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str
        The ``desc-GLMsingle_summary.json`` key under :func:`subject_glm_prefix`.

    Examples
    --------
    >>> subject_summary_key("sub-03")
    'derivatives/glmsingle-tedana/sub-03/sub-03_task-images_desc-GLMsingle_summary.json'
    """
    return subject_glm_prefix(subject) + f"{subject}_task-{TASK}_desc-GLMsingle_summary.json"


def snapshot_brain_mask_key(subject: str) -> str:
    """Key of the snapshot layout's brain mask (used instead of R2mean when present).

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str
        The ``desc-meanR2gt15mask_mask.nii.gz`` key under :func:`subject_glm_prefix`.

    Examples
    --------
    >>> snapshot_brain_mask_key("sub-03").split("/")[-1]
    'sub-03_task-images_space-T1w_desc-meanR2gt15mask_mask.nii.gz'
    """
    return (
        subject_glm_prefix(subject) + f"{subject}_task-{TASK}_space-{SPACE}_desc-meanR2gt15mask_mask.nii.gz"
    )


def brain_mask_keys(subject: str) -> tuple[str, ...]:
    """Keys the loader needs to build the brain mask, pinned by ``download``.

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    tuple of str
        ``(r2mean_key(subject), snapshot_brain_mask_key(subject))``; a dataset
        release holds one or both.

    Examples
    --------
    >>> brain_mask_keys("sub-03") == (r2mean_key("sub-03"), snapshot_brain_mask_key("sub-03"))
    True
    """
    return (r2mean_key(subject), snapshot_brain_mask_key(subject))


# --------------------------------------------------------------------------- ROI keys
def roi_prefix(subject: str) -> str:
    """Key prefix of a subject's ROI masks (categorised layout).

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str
        ``derivatives/rois/<sub>/``.

    Examples
    --------
    >>> roi_prefix("sub-03")
    'derivatives/rois/sub-03/'
    """
    return f"{ROI_ROOT}/{subject}/"


def raw_subject_prefix(subject: str) -> str:
    """``<sub>/``: the raw BIDS tree of a subject (fetched only with ``datatype=``).

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str

    Examples
    --------
    >>> raw_subject_prefix("sub-03")
    'sub-03/'
    """
    return f"{subject}/"


def partial_state_path(final: Path) -> Path:
    """Resume record (the ETag the ``.part`` file was started with) beside a target.

    Parameters
    ----------
    final : Path
        The target file.

    Returns
    -------
    Path

    Examples
    --------
    >>> partial_state_path(Path("/d/x.nii.gz")).name
    'x.nii.gz.part.json'
    """
    return final.with_name(final.name + ".part.json")


def snapshot_roi_prefix(subject: str) -> str:
    """Key prefix of a subject's ROI masks in the snapshot (flat) layout.

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str
        ``derivatives/atlases/<sub>/rois/``.

    Examples
    --------
    >>> snapshot_roi_prefix("sub-03")
    'derivatives/atlases/sub-03/rois/'
    """
    return f"{SNAPSHOT_ROI_ROOT}/{subject}/rois/"


def roi_volume_key(subject: str, category: str, label: str) -> str:
    """Key of a volumetric ROI mask on the beta grid.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    category : str
        ROI category folder, one of :data:`ROI_CATEGORIES`.
    label : str
        ROI label as spelled in the bucket (may contain hyphens, e.g. ``FFA-1``).

    Returns
    -------
    str
        ``derivatives/rois/<sub>/<category>/<sub>_space-T1w_res-1pt8_label-<label>_mask.nii.gz``.

    Examples
    --------
    >>> roi_volume_key("sub-03", "face", "FFA-1")
    'derivatives/rois/sub-03/face/sub-03_space-T1w_res-1pt8_label-FFA-1_mask.nii.gz'
    """
    return roi_prefix(subject) + f"{category}/{subject}_space-{SPACE}_res-{RES}_label-{label}_mask.nii.gz"


def roi_surface_key(subject: str, category: str, label: str, hemi: str) -> str:
    """Key of a per-hemisphere surface ROI mask (GIFTI, FreeSurfer native surface).

    Parameters
    ----------
    subject : str
        Canonical subject id.
    category : str
        ROI category folder, one of :data:`ROI_CATEGORIES`.
    label : str
        ROI label as spelled in the bucket.
    hemi : {"L", "R"}
        Hemisphere.

    Returns
    -------
    str
        The ``hemi-<hemi>_space-fsnative_label-<label>_mask.func.gii`` key.

    Examples
    --------
    >>> roi_surface_key("sub-03", "face", "FFA-1", "L").split("/")[-1]
    'sub-03_hemi-L_space-fsnative_label-FFA-1_mask.func.gii'
    """
    name = f"{subject}_hemi-{hemi}_space-fsnative_label-{label}_mask.func.gii"
    return roi_prefix(subject) + f"{category}/{name}"


def roi_label_key(subject: str, category: str, label: str, hemi: str) -> str:
    """Key of a per-hemisphere FreeSurfer ASCII label file.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    category : str
        ROI category folder, one of :data:`ROI_CATEGORIES`.
    label : str
        ROI label as spelled in the bucket.
    hemi : {"L", "R"}
        Hemisphere.

    Returns
    -------
    str
        The ``hemi-<hemi>_space-fsnative_label-<label>_mask.label`` key.

    Examples
    --------
    >>> roi_label_key("sub-03", "face", "FFA-1", "R").split("/")[-1]
    'sub-03_hemi-R_space-fsnative_label-FFA-1_mask.label'
    """
    return roi_prefix(subject) + f"{category}/{subject}_hemi-{hemi}_space-fsnative_label-{label}_mask.label"


_ROI_VOLUME_RE = re.compile(
    rf"^(?P<sub>sub-[A-Za-z0-9]+)_space-{SPACE}_res-{RES}_label-(?P<label>[A-Za-z0-9-]+)_mask\.nii\.gz$"
)


def parse_roi_volume_key(key: str) -> tuple[str, str, str] | None:
    """Return ``(subject, category, label)`` for a volumetric ROI key, else ``None``.

    Accepts the categorised layout (label de-hyphenated) and the snapshot flat
    layout (category ``"uncategorized"``).

    Parameters
    ----------
    key : str
        Bucket key (or local relative path) to classify.

    Returns
    -------
    tuple of str or None
        ``(subject, category, label)``, or ``None`` if ``key`` is not a
        volumetric ROI mask.

    Examples
    --------
    >>> parse_roi_volume_key("derivatives/rois/sub-03/face/sub-03_space-T1w_res-1pt8_label-FFA-1_mask.nii.gz")
    ('sub-03', 'face', 'FFA1')
    >>> parse_roi_volume_key("derivatives/atlases/sub-03/rois/V1.nii.gz")
    ('sub-03', 'uncategorized', 'V1')
    >>> parse_roi_volume_key("README") is None
    True
    """
    parts = key.split("/")
    if len(parts) == 5 and "/".join(parts[:2]) == ROI_ROOT:
        _, _, sub, category, name = parts
        match = _ROI_VOLUME_RE.match(name)
        if match and match.group("sub") == sub:
            return sub, category, match.group("label").replace("-", "")
        return None
    if len(parts) == 5 and "/".join(parts[:2]) == SNAPSHOT_ROI_ROOT and parts[3] == "rois":
        name = parts[4]
        if name.endswith(".nii.gz") and len(name) > len(".nii.gz"):
            return parts[2], SNAPSHOT_ROI_CATEGORY, name[: -len(".nii.gz")]
    return None


# --------------------------------------------------------------------------- stimuli keys
def embeddings_key(model: str) -> str:
    """Key of the image-embedding file of one model.

    Parameters
    ----------
    model : str
        One of :data:`EMBEDDING_MODELS` (``CLIP``, ``DINOv2``, ``PEcore``, ``SigLIP2``).

    Returns
    -------
    str
        ``stimuli/task-images_desc-<model>_embeddings.h5``.

    Examples
    --------
    >>> embeddings_key("CLIP")
    'stimuli/task-images_desc-CLIP_embeddings.h5'
    """
    return f"{STIMULI_ROOT}/task-{TASK}_desc-{model}_embeddings.h5"


def public_stimulus_keys() -> tuple[str, ...]:
    """Every CC0 stimulus-derivative key (no data-use agreement needed).

    Returns
    -------
    tuple of str
        The embedding files of every model, then the segmentation masks, their
        metadata and the captions.

    Examples
    --------
    >>> keys = public_stimulus_keys()
    >>> embeddings_key("CLIP") in keys, CAPTIONS_KEY in keys, STIMULI_IMAGES_KEY in keys
    (True, True, False)
    """
    return (
        *(embeddings_key(m) for m in EMBEDDING_MODELS),
        SEGMENTATIONS_KEY,
        SEGMENTATIONS_METADATA_KEY,
        CAPTIONS_KEY,
    )


# --------------------------------------------------------------------------- image names
_DATASET_PREFIXES: tuple[tuple[str, str], ...] = (
    ("shared_12rep_LAION_", "LAION"),
    ("shared_12rep_THINGS+_", "THINGSplus"),
    ("shared_4rep_NSD_", "NSD"),
    ("shared_4rep_OOD_", "OOD"),
    ("unique_LAION_", "LAION"),
    ("unique_THINGS+_", "THINGSplus"),
    ("unique_THINGS_", "THINGS"),
)


def dataset_of_label(label: str) -> str | None:
    """Source image set of a stimulus name (``LAION``, ``NSD``, ``THINGS``, ``THINGSplus``, ``OOD``).

    Parameters
    ----------
    label : str
        Image name as in the trial table's ``label`` column.

    Returns
    -------
    str or None
        ``None`` for a name outside the dataset's image-ID grammar.

    Examples
    --------
    >>> dataset_of_label("unique_THINGS+_aardvark_p01.jpg")
    'THINGSplus'
    >>> dataset_of_label("shared_4rep_NSD_special100_97.jpg")
    'NSD'
    """
    for prefix, name in _DATASET_PREFIXES:
        if label.startswith(prefix):
            return name
    return None


# --------------------------------------------------------------------------- entities
_ENTITY_RE = re.compile(r"(?:^|(?<=[/_]))([a-z]+)-([A-Za-z0-9]+)(?=[_./]|$)")
DATATYPES: tuple[str, ...] = ("func", "anat", "dwi", "fmap")
# BIDS entities that occur in this dataset's keys; other "<word>-<word>" tokens
# (e.g. the pipeline folder "glmsingle-tedana") are not entities.
ENTITIES: tuple[str, ...] = (
    "sub", "ses", "task", "acq", "ce", "dir", "rec", "run", "echo", "part", "hemi",
    "space", "res", "den", "contrast", "stat", "label", "desc",
)


def parse_entities(key: str) -> dict[str, str]:
    """Parse BIDS entities, ``suffix``, ``extension`` and ``datatype`` out of a key.

    Directory parts count (``ses-04/``). The first occurrence of an entity wins
    (file-name occurrences agree with directory ones in this dataset).

    Parameters
    ----------
    key : str
        ``/``-separated bucket key or relative path.

    Returns
    -------
    dict of str to str
        Entity values without their prefix (``{"sub": "03", ...}``), plus
        ``suffix``, ``extension`` (without the leading dot) and ``datatype``
        when present. Only names in :data:`ENTITIES` count as entities.

    Examples
    --------
    >>> e = parse_entities("derivatives/glmsingle-tedana/sub-03/ses-01/func/"
    ...                    "sub-03_ses-01_task-images_desc-SingletrialBetas_trials.tsv")
    >>> e["sub"], e["ses"], e["desc"], e["suffix"], e["extension"], e["datatype"]
    ('03', '01', 'SingletrialBetas', 'trials', 'tsv', 'func')
    """
    out: dict[str, str] = {}
    for match in _ENTITY_RE.finditer(key):
        if match.group(1) in ENTITIES:
            out.setdefault(match.group(1), match.group(2))
    parts = key.split("/")
    name = parts[-1]
    stem, dot, ext = name.partition(".")
    if "_" in stem:
        out["suffix"] = stem.rsplit("_", 1)[1]
    if dot:
        out["extension"] = ext
    for part in parts[:-1]:
        if part in DATATYPES:
            out["datatype"] = part
    return out


def session_of(key: str) -> str | None:
    """``ses-NN`` of a key, or ``None`` for subject- and dataset-level keys.

    Parameters
    ----------
    key : str
        Bucket key or relative path.

    Returns
    -------
    str or None
        The session id, or ``None`` when the key names no session.

    Examples
    --------
    >>> session_of(trials_key("sub-03", "ses-02"))
    'ses-02'
    >>> session_of(r2mean_key("sub-03")) is None
    True
    """
    value = parse_entities(key).get("ses")
    return f"ses-{value}" if value is not None else None


def subject_of(key: str) -> str | None:
    """``sub-XX`` of a key, or ``None`` for dataset-level keys.

    Parameters
    ----------
    key : str
        Bucket key or relative path.

    Returns
    -------
    str or None
        The subject id, or ``None`` when the key names no subject.

    Examples
    --------
    >>> subject_of(r2mean_key("sub-05"))
    'sub-05'
    >>> subject_of("participants.tsv") is None
    True
    """
    value = parse_entities(key).get("sub")
    return f"sub-{value}" if value is not None else None


# --------------------------------------------------------------------------- local paths
_LABEL_TOKEN_RE = re.compile(r"(?<=label-)([A-Za-z0-9-]+?)(?=[_.]|$)")
MAX_KEY_LENGTH = 1024
MAX_NAME_LENGTH = 255


def bidsify(key: str) -> str:
    """Remove hyphens inside ``label-<value>`` tokens of the file name (idempotent).

    Only the last path part changes, so folders keep their bucket names.

    Parameters
    ----------
    key : str
        ``/``-separated bucket key.

    Returns
    -------
    str
        The key with de-hyphenated ``label-`` values.

    Examples
    --------
    >>> bidsify("x/sub-03_space-T1w_res-1pt8_label-pSTS-faces_mask.nii.gz")
    'x/sub-03_space-T1w_res-1pt8_label-pSTSfaces_mask.nii.gz'
    """
    head, sep, name = key.rpartition("/")
    name = _LABEL_TOKEN_RE.sub(lambda m: m.group(1).replace("-", ""), name)
    return head + sep + name


def check_key(key: str) -> str:
    """Validate that a remote key is a safe relative path; return it unchanged.

    Parameters
    ----------
    key : str
        Key as listed by the remote store.

    Returns
    -------
    str
        ``key`` itself.

    Raises
    ------
    UnsafeKeyError
        For empty or non-text keys, absolute paths, ``..``/``.`` parts,
        backslashes, NULs, control characters, empty parts or over-long names.

    Examples
    --------
    >>> check_key("stimuli/task-images_desc-captions.csv")
    'stimuli/task-images_desc-captions.csv'
    >>> check_key("../etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    laion_fmri.errors.UnsafeKeyError: Refusing remote key '../etc/passwd': ...
    """
    if not isinstance(key, str) or not key:
        raise UnsafeKeyError(f"Refusing empty or non-text key {key!r}.")
    reason = None
    if len(key) > MAX_KEY_LENGTH:
        reason = "it is too long"
    elif "\\" in key:
        reason = "it contains a backslash"
    elif any(ord(c) < 32 or ord(c) == 127 for c in key):
        reason = "it contains a control character"
    elif key.startswith("/") or re.match(r"^[A-Za-z]:", key):
        reason = "it is an absolute path"
    else:
        for part in key.split("/"):
            if part in ("", ".", ".."):
                reason = "it has an empty, '.' or '..' part"
                break
            if len(part.encode("utf-8")) > MAX_NAME_LENGTH:
                reason = "a name in it is too long"
                break
    if reason:
        raise UnsafeKeyError(
            f"Refusing remote key {key[:200]!r}: {reason}, so it could escape the data "
            "directory. Nothing was written for it."
        )
    return key


def local_relpath(key: str) -> str:
    """Relative local path (``/``-separated) for a remote key, after safety checks.

    Parameters
    ----------
    key : str
        Remote key.

    Returns
    -------
    str
        :func:`bidsify` of the key.

    Raises
    ------
    UnsafeKeyError
        If the key is not a safe relative path (see :func:`check_key`).

    Examples
    --------
    >>> local_relpath("derivatives/rois/sub-03/face/sub-03_space-T1w_res-1pt8_label-FFA-1_mask.nii.gz")
    'derivatives/rois/sub-03/face/sub-03_space-T1w_res-1pt8_label-FFA1_mask.nii.gz'
    """
    return bidsify(check_key(key))


def local_path(data_dir: str | Path, key: str) -> Path:
    """Local path of a remote key under ``data_dir``, guaranteed to stay inside it.

    Parameters
    ----------
    data_dir : str or Path
        The local data directory (need not exist).
    key : str
        Remote key.

    Returns
    -------
    Path
        Absolute, resolved path of the (bidsified) key under ``data_dir``.

    Raises
    ------
    UnsafeKeyError
        If the key is unsafe or could resolve outside ``data_dir`` (e.g.
        through a symlink).

    Examples
    --------
    >>> local_path("/data", "participants.tsv")  # doctest: +SKIP
    PosixPath('/data/participants.tsv')
    >>> local_path(".", "participants.tsv").name
    'participants.tsv'
    """
    root = Path(data_dir).resolve()
    path = (root / local_relpath(key)).resolve()
    if root != path and root not in path.parents:
        raise UnsafeKeyError(f"Refusing key {key!r}: it resolves outside {root}.")
    return path


def state_dir(data_dir: str | Path) -> Path:
    """Folder of the package state: manifest, cache, license markers, locks.

    Parameters
    ----------
    data_dir : str or Path
        The local data directory.

    Returns
    -------
    Path
        ``<data_dir>/.laion_fmri``.

    Examples
    --------
    >>> state_dir("/data").as_posix()
    '/data/.laion_fmri'
    """
    return Path(data_dir) / STATE_DIRNAME


def manifest_path(data_dir: str | Path) -> Path:
    """Path of the local download manifest (SQLite).

    Parameters
    ----------
    data_dir : str or Path
        The local data directory.

    Returns
    -------
    Path
        ``<data_dir>/.laion_fmri/manifest.sqlite``.

    Examples
    --------
    >>> manifest_path("/data").as_posix()
    '/data/.laion_fmri/manifest.sqlite'
    """
    return state_dir(data_dir) / "manifest.sqlite"


def cache_dir(data_dir: str | Path) -> Path:
    """Folder of the decoded-betas cache.

    Parameters
    ----------
    data_dir : str or Path
        The local data directory.

    Returns
    -------
    Path
        ``<data_dir>/.laion_fmri/cache``.

    Examples
    --------
    >>> cache_dir("/data").as_posix()
    '/data/.laion_fmri/cache'
    """
    return state_dir(data_dir) / "cache"


def license_marker(data_dir: str | Path) -> Path:
    """Marker file recording that the CC0 dataset license notice was accepted.

    Parameters
    ----------
    data_dir : str or Path
        The local data directory.

    Returns
    -------
    Path
        ``<data_dir>/.laion_fmri/license_accepted``.

    Examples
    --------
    >>> license_marker("/data").name
    'license_accepted'
    """
    return state_dir(data_dir) / "license_accepted"


def stimulus_terms_marker(data_dir: str | Path) -> Path:
    """Marker file recording the stimulus data-use agreement for sample/local sources.

    Parameters
    ----------
    data_dir : str or Path
        The local data directory.

    Returns
    -------
    Path
        ``<data_dir>/.laion_fmri/stimuli_terms_accepted``.

    Examples
    --------
    >>> stimulus_terms_marker("/data").name
    'stimuli_terms_accepted'
    """
    return state_dir(data_dir) / "stimuli_terms_accepted"


def lock_path(data_dir: str | Path) -> Path:
    """Lock file serialising downloads into one data directory.

    Parameters
    ----------
    data_dir : str or Path
        The local data directory.

    Returns
    -------
    Path
        ``<data_dir>/.laion_fmri/download.lock``.

    Examples
    --------
    >>> lock_path("/data").name
    'download.lock'
    """
    return state_dir(data_dir) / "download.lock"


def partial_path(final: Path) -> Path:
    """Temporary name beside a target while it downloads.

    Parameters
    ----------
    final : Path
        The target file.

    Returns
    -------
    Path
        ``<final>.part`` in the same folder.

    Examples
    --------
    >>> partial_path(Path("/d/x.nii.gz")).name
    'x.nii.gz.part'
    """
    return final.with_name(final.name + ".part")

