"""Reading names: BIDS entities of a key, the source dataset of an image name."""

from __future__ import annotations

import re

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


__all__ = [
    "DATATYPES",
    "ENTITIES",
    "dataset_of_label",
    "parse_entities",
    "session_of",
    "subject_of",
]
