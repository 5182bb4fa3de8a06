"""Paths of the localizer statistical maps (DATASET.md 2.7), as the reference names them.

``localizer_statmap_path`` gives a contrast's z map, ``localizer_effect_path``
a condition's per-run effect map, both as local paths under the data
directory (whether or not the file is downloaded yet). Surface maps
(``space="fsnative"``) are per hemisphere ``.func.gii`` files; volume maps
(``space="T1w"``) are ``.nii.gz`` at ``res="1pt8"`` (the betas grid) or
``"1pt5"`` (the localizer grid).

Examples
--------
>>> from laion_fmri.derivatives import localizer_statmap_path
>>> localizer_statmap_path("sub-03", "floc", "faceVsOthers", "ses-01", space="T1w",
...                        res="1pt8", data_dir="/data").name
'sub-03_ses-01_task-floc_space-T1w_res-1pt8_contrast-faceVsOthers_stat-z_statmap.nii.gz'
"""

from __future__ import annotations

import os
from pathlib import Path

from laion_fmri import layout
from laion_fmri.config import get_data_dir

LOCALIZER_TASKS: tuple[str, ...] = layout.LOCALIZER_TASKS
VOLUME_RESOLUTIONS: tuple[str, ...] = layout.LOCALIZER_VOLUME_RESOLUTIONS


def _session(session: object) -> str:
    if isinstance(session, str) and session.startswith("ses-") and session[4:].isalnum() and (
        not session[4:].isdigit()
    ):
        return session  # a named session label (not a main-experiment number)
    return layout.normalize_session(session)


def _space(space: str) -> str:
    if space not in ("fsnative", layout.SPACE):
        raise ValueError(f"space must be 'fsnative' or {layout.SPACE!r}, got {space!r}.")
    return space


def _localizer_path(
    subject: object, session: object, task: str, contrast: str, stat: str, space: str,
    hemi: str | None, res: str, run: object, data_dir: str | os.PathLike[str] | None,
) -> Path:
    space = _space(space)
    key = layout.localizer_key(
        layout.normalize_subject(subject), _session(session), task, contrast, stat, space=space,
        hemi=hemi, res=res if space == layout.SPACE else "1pt8", run=run,
    )
    return layout.local_path(get_data_dir(data_dir), key)


def localizer_statmap_path(
    subject: object,
    task: str,
    contrast: str,
    session: object,
    space: str = "fsnative",
    hemi: str | None = None,
    res: str = "1pt5",
    data_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Local path of a localizer contrast's z map.

    Parameters
    ----------
    subject : str or int
        Subject (``"sub-03"``, ``"03"``, ``3``).
    task : str
        One of :data:`LOCALIZER_TASKS`.
    contrast : str
        camelCase contrast, e.g. ``"faceVsOthers"``.
    session : str or int
        The session of the localizer run(s).
    space : {"fsnative", "T1w"}
        Surface (needs ``hemi``) or volume map.
    hemi : {"L", "R"}, optional
        Hemisphere of a surface map.
    res : {"1pt5", "1pt8"}
        Volume resolution (``space="T1w"``).
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        For an unknown task, space, resolution or hemisphere, or a malformed
        subject or session.

    Examples
    --------
    >>> localizer_statmap_path(3, "floc", "faceVsOthers", 1, hemi="L", data_dir="/d").suffixes
    ['.func', '.gii']
    """
    return _localizer_path(subject, session, task, contrast, "z", space, hemi, res, None, data_dir)


def localizer_effect_path(
    subject: object,
    task: str,
    condition: str,
    session: object,
    run: int,
    space: str = "fsnative",
    hemi: str | None = None,
    res: str = "1pt5",
    data_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Local path of one run's effect map of a localizer condition.

    Parameters
    ----------
    subject : str or int
        Subject.
    task : str
        One of :data:`LOCALIZER_TASKS` (``MotionLoc`` is pooled: no per-run maps).
    condition : str
        Condition, e.g. ``"face"`` or ``"scrambled"``.
    session : str or int
        The session of the run.
    run : int
        Run number.
    space : {"fsnative", "T1w"}
        Surface (needs ``hemi``) or volume map.
    hemi : {"L", "R"}, optional
        Hemisphere of a surface map.
    res : {"1pt5", "1pt8"}
        Volume resolution (``space="T1w"``).
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        For an unknown task, space, resolution, hemisphere or run.

    Examples
    --------
    >>> localizer_effect_path("sub-03", "floc", "face", "ses-01", 2, space="T1w",
    ...                       res="1pt8", data_dir="/d").name
    'sub-03_ses-01_task-floc_run-02_space-T1w_res-1pt8_contrast-face_stat-effect_statmap.nii.gz'
    """
    if task == "MotionLoc":
        raise ValueError("MotionLoc is pooled over runs: it has no per-run effect maps.")
    return _localizer_path(subject, session, task, condition, "effect", space, hemi, res, run, data_dir)


__all__ = [
    "LOCALIZER_TASKS",
    "VOLUME_RESOLUTIONS",
    "localizer_effect_path",
    "localizer_statmap_path",
]
