"""Keys of the later-revision trees: anatomy, FreeSurfer, raw BIDS runs, localizers.

DATASET.md 2.7. Part of :mod:`laion_fmri.layout`, the one place that knows names.
"""

from __future__ import annotations

import re

from laion_fmri.layout._constants import HEMIS, SPACE, TASK
from laion_fmri.layout._kinds import raw_subject_prefix

# One contiguous block of key functions, to be folded into the name templates.
# ============================================================================
ANATOMICAL_ROOT = "derivatives/anatomical"
FREESURFER_ROOT = "derivatives/freesurfer"
LOCALIZER_ROOT = "derivatives/localizers"
ANATOMICAL_SESSION = "ses-PrismaAnat"
#: ``1pt8`` is the betas grid (``res-1pt8`` in the name); ``0pt8`` the
#: FreeSurfer hires grid (no ``res-`` entity in the name).
ANATOMICAL_RESOLUTIONS: tuple[str, ...] = ("1pt8", "0pt8")
ANATOMICAL_SUFFIXES: tuple[str, ...] = ("T1w", "T2w", "mask")
RAW_ECHOES: tuple[int, ...] = (1, 2, 3)
RAW_PARTS: tuple[str, ...] = ("mag", "phase")
RAW_IMAGE_SUFFIXES: tuple[str, ...] = ("bold", "sbref")
LOCALIZER_TASKS: tuple[str, ...] = ("floc", "oloc", "MotionLeft", "MotionRight", "MotionLoc")
LOCALIZER_STATS: tuple[str, ...] = ("z", "effect")
LOCALIZER_VOLUME_RESOLUTIONS: tuple[str, ...] = ("1pt8", "1pt5")


def anatomical_prefix(subject: str) -> str:
    """Key prefix of a subject's anatomical images.

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str

    Examples
    --------
    >>> anatomical_prefix("sub-03")
    'derivatives/anatomical/sub-03/'
    """
    return f"{ANATOMICAL_ROOT}/{subject}/"


def anatomical_key(subject: str, suffix: str, res: str = "1pt8") -> str:
    """Key of a subject's T1w, T2w or brain mask at 1.8 mm (betas grid) or 0.8 mm.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    suffix : {"T1w", "T2w", "mask"}
        Image kind; ``mask`` is the brain mask (``desc-brain``).
    res : {"1pt8", "0pt8"}
        ``1pt8`` names ``res-1pt8`` (the betas grid); ``0pt8`` has no ``res-``
        entity (the FreeSurfer hires grid).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an unknown suffix or resolution.

    Examples
    --------
    >>> anatomical_key("sub-03", "mask")  # doctest: +NORMALIZE_WHITESPACE
    'derivatives/anatomical/sub-03/ses-PrismaAnat/anat/sub-03_ses-PrismaAnat_space-T1w_res-1pt8_desc-brain_mask.nii.gz'
    >>> anatomical_key("sub-03", "T1w", res="0pt8").rsplit("/", 1)[1]
    'sub-03_ses-PrismaAnat_space-T1w_T1w.nii.gz'
    """
    if suffix not in ANATOMICAL_SUFFIXES:
        raise ValueError(f"Unknown anatomical suffix {suffix!r}; use one of {ANATOMICAL_SUFFIXES}.")
    if res not in ANATOMICAL_RESOLUTIONS:
        raise ValueError(f"Unknown resolution {res!r}; use one of {ANATOMICAL_RESOLUTIONS}.")
    res_part = "_res-1pt8" if res == "1pt8" else ""
    desc_part = "_desc-brain" if suffix == "mask" else ""
    name = f"{subject}_{ANATOMICAL_SESSION}_space-{SPACE}{res_part}{desc_part}_{suffix}.nii.gz"
    return f"{anatomical_prefix(subject)}{ANATOMICAL_SESSION}/anat/{name}"


def anatomical_brain_mask_key(subject: str, res: str = "1pt8") -> str:
    """Key of the anatomical brain mask (``res="1pt8"``: the betas grid, the default voxel axis).

    Parameters
    ----------
    subject : str
        Canonical subject id.
    res : {"1pt8", "0pt8"}
        Grid.

    Returns
    -------
    str

    Examples
    --------
    >>> anatomical_brain_mask_key("sub-01").endswith("res-1pt8_desc-brain_mask.nii.gz")
    True
    """
    return anatomical_key(subject, "mask", res)


def freesurfer_prefix(subject: str) -> str:
    """Key prefix of a subject's FreeSurfer reconstruction (``mri/``, ``surf/``, ``label/``).

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str

    Examples
    --------
    >>> freesurfer_prefix("sub-03")
    'derivatives/freesurfer/sub-03/'
    """
    return f"{FREESURFER_ROOT}/{subject}/"


def localizer_prefix(subject: str) -> str:
    """Key prefix of a subject's localizer statistical maps.

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    str

    Examples
    --------
    >>> localizer_prefix("sub-03")
    'derivatives/localizers/sub-03/'
    """
    return f"{LOCALIZER_ROOT}/{subject}/"


def raw_session_prefix(subject: str, session: str) -> str:
    """``<sub>/<ses>/``: one session of the raw BIDS tree.

    Parameters
    ----------
    subject, session : str
        Canonical ids.

    Returns
    -------
    str

    Examples
    --------
    >>> raw_session_prefix("sub-03", "ses-01")
    'sub-03/ses-01/'
    """
    return f"{raw_subject_prefix(subject)}{session}/"


def _raw_func_stem(subject: str, session: str, run: int) -> str:
    if isinstance(run, bool) or not isinstance(run, int) or not 1 <= run <= 99:
        raise ValueError(f"run must be an integer 1..99, got {run!r}.")
    return f"{raw_session_prefix(subject, session)}func/{subject}_{session}_task-{TASK}_run-{run:02d}"


def raw_image_key(subject: str, session: str, run: int, echo: int, part: str = "mag",
                  suffix: str = "bold") -> str:
    """Key of one raw multi-echo BOLD run or its single-band reference.

    Parameters
    ----------
    subject, session : str
        Canonical ids.
    run : int
        Run number (written with two digits).
    echo : int
        Echo 1..3.
    part : {"mag", "phase"}
        Magnitude or phase image.
    suffix : {"bold", "sbref"}
        The 4-D run or its 3-D reference.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For a value outside the dataset's runs, echoes, parts or suffixes.

    Examples
    --------
    >>> raw_image_key("sub-03", "ses-01", 2, 3, "phase")
    'sub-03/ses-01/func/sub-03_ses-01_task-images_run-02_echo-3_part-phase_bold.nii.gz'
    """
    if echo not in RAW_ECHOES or isinstance(echo, bool):
        raise ValueError(f"echo must be one of {RAW_ECHOES}, got {echo!r}.")
    if part not in RAW_PARTS:
        raise ValueError(f"part must be one of {RAW_PARTS}, got {part!r}.")
    if suffix not in RAW_IMAGE_SUFFIXES:
        raise ValueError(f"suffix must be one of {RAW_IMAGE_SUFFIXES}, got {suffix!r}.")
    return f"{_raw_func_stem(subject, session, run)}_echo-{echo}_part-{part}_{suffix}.nii.gz"


def raw_events_key(subject: str, session: str, run: int) -> str:
    """Key of the events table of one raw run.

    Parameters
    ----------
    subject, session : str
        Canonical ids.
    run : int
        Run number.

    Returns
    -------
    str

    Examples
    --------
    >>> raw_events_key("sub-03", "ses-01", 1)
    'sub-03/ses-01/func/sub-03_ses-01_task-images_run-01_events.tsv'
    """
    return f"{_raw_func_stem(subject, session, run)}_events.tsv"


def localizer_key(subject: str, session: str, task: str, contrast: str, stat: str = "z", *,
                  space: str = "T1w", res: str = "1pt8", hemi: str | None = None,
                  run: int | None = None) -> str:
    """Key of one localizer statistical map (DATASET.md 2.7).

    Parameters
    ----------
    subject, session : str
        Canonical ids (``session`` as ``ses-<label>``).
    task : str
        One of :data:`LOCALIZER_TASKS`.
    contrast : str
        camelCase contrast (``faceVsOthers``) or, for per-run ``effect`` maps,
        a condition (``face``).
    stat : {"z", "effect"}
        Statistic.
    space : {"T1w", "fsnative"}
        Volume (``.nii.gz``) or surface (``.func.gii``, needs ``hemi``).
    res : {"1pt8", "1pt5"}
        Volume resolution (``space="T1w"`` only).
    hemi : {"L", "R"}, optional
        Hemisphere of a surface map.
    run : int, optional
        Run of a per-run map.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an unknown task, statistic, space, resolution or hemisphere.

    Examples
    --------
    >>> localizer_key("sub-03", "ses-01", "floc", "faceVsOthers").rsplit("/", 1)[1]
    'sub-03_ses-01_task-floc_space-T1w_res-1pt8_contrast-faceVsOthers_stat-z_statmap.nii.gz'
    >>> localizer_key("sub-03", "ses-01", "floc", "face", "effect", space="fsnative",
    ...               hemi="L", run=2).rsplit("/", 1)[1]
    'sub-03_ses-01_task-floc_run-02_hemi-L_space-fsnative_contrast-face_stat-effect_statmap.func.gii'
    """
    if task not in LOCALIZER_TASKS:
        raise ValueError(f"Unknown localizer task {task!r}; use one of {LOCALIZER_TASKS}.")
    if stat not in LOCALIZER_STATS:
        raise ValueError(f"Unknown localizer stat {stat!r}; use one of {LOCALIZER_STATS}.")
    if not contrast.isalnum():
        raise ValueError(f"A contrast name is alphanumeric (camelCase), got {contrast!r}.")
    if space == "fsnative":
        if hemi not in HEMIS:
            raise ValueError(f"A surface map needs hemi= one of {HEMIS}, got {hemi!r}.")
        where, ext = f"hemi-{hemi}_space-fsnative", ".func.gii"
    elif space == SPACE:
        if res not in LOCALIZER_VOLUME_RESOLUTIONS:
            raise ValueError(
                f"Unknown localizer resolution {res!r}; use one of {LOCALIZER_VOLUME_RESOLUTIONS}."
            )
        if hemi is not None:
            raise ValueError("hemi= is only for surface maps (space='fsnative').")
        where, ext = f"space-{SPACE}_res-{res}", ".nii.gz"
    else:
        raise ValueError(f"Unknown localizer space {space!r}; use 'T1w' or 'fsnative'.")
    run_part = ""
    if run is not None:
        if isinstance(run, bool) or not isinstance(run, int) or not 1 <= run <= 99:
            raise ValueError(f"run must be an integer 1..99, got {run!r}.")
        run_part = f"_run-{run:02d}"
    name = (f"{subject}_{session}_task-{task}{run_part}_{where}_contrast-{contrast}"
            f"_stat-{stat}_statmap{ext}")
    return f"{localizer_prefix(subject)}{session}/func/{name}"


_LOCALIZER_RE = re.compile(
    r"^derivatives/localizers/(?P<subject>sub-[A-Za-z0-9]+)/(?P<session>ses-[A-Za-z0-9]+)/func/"
    r"(?P=subject)_(?P=session)_task-(?P<task>[A-Za-z0-9]+)(?:_run-(?P<run>\d+))?_"
    r"(?:hemi-(?P<hemi>[LR])_space-(?P<fsspace>fsnative)|space-(?P<space>T1w)_res-(?P<res>[0-9pt]+))"
    r"_contrast-(?P<contrast>[A-Za-z0-9]+)_stat-(?P<stat>[A-Za-z0-9]+)_statmap"
    r"(?P<extension>\.func\.gii|\.nii\.gz)$"
)


def parse_localizer_key(key: str) -> dict[str, object] | None:
    """Fields of a localizer map key, or ``None`` for any other key.

    Parameters
    ----------
    key : str
        Bucket key or relative path.

    Returns
    -------
    dict or None
        ``subject``, ``session``, ``task``, ``run`` (int or None), ``space``
        (``T1w``/``fsnative``), ``res`` (or None), ``hemi`` (or None),
        ``contrast``, ``stat``, ``extension``.

    Examples
    --------
    >>> f = parse_localizer_key(localizer_key("sub-03", "ses-01", "floc", "faceVsOthers"))
    >>> f["task"], f["contrast"], f["stat"], f["space"], f["run"]
    ('floc', 'faceVsOthers', 'z', 'T1w', None)
    """
    match = _LOCALIZER_RE.match(key)
    if match is None:
        return None
    g = match.groupdict()
    return {
        "subject": g["subject"],
        "session": g["session"],
        "task": g["task"],
        "run": int(g["run"]) if g["run"] else None,
        "space": "fsnative" if g["fsspace"] else g["space"],
        "res": g["res"],
        "hemi": g["hemi"],
        "contrast": g["contrast"],
        "stat": g["stat"],
        "extension": g["extension"],
    }


__all__ = [
    "ANATOMICAL_RESOLUTIONS",
    "ANATOMICAL_ROOT",
    "ANATOMICAL_SESSION",
    "ANATOMICAL_SUFFIXES",
    "FREESURFER_ROOT",
    "LOCALIZER_ROOT",
    "LOCALIZER_STATS",
    "LOCALIZER_TASKS",
    "LOCALIZER_VOLUME_RESOLUTIONS",
    "RAW_ECHOES",
    "RAW_IMAGE_SUFFIXES",
    "RAW_PARTS",
    "anatomical_brain_mask_key",
    "anatomical_key",
    "anatomical_prefix",
    "freesurfer_prefix",
    "localizer_key",
    "localizer_prefix",
    "parse_localizer_key",
    "raw_events_key",
    "raw_image_key",
    "raw_session_prefix",
]
