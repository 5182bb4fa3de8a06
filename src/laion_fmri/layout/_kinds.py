"""The table of file-name templates and the functions that fill and read it."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TypeVar

from laion_fmri.layout._constants import (
    CAPTIONS_KEY,
    GLM_ROOT,
    RES,
    ROI_ROOT,
    SEGMENTATIONS_KEY,
    SEGMENTATIONS_METADATA_KEY,
    SNAPSHOT_ROI_CATEGORY,
    SNAPSHOT_ROI_ROOT,
    SPACE,
    STIMULI_ROOT,
    TASK,
)
from laion_fmri.vocab import EMBEDDING_MODELS, normalize_roi_label, suggest

_F = TypeVar("_F", bound=Callable[..., object])


@dataclass(frozen=True)
class FileKind:
    """One kind of file in the bucket: a name template over its entities.

    Parameters
    ----------
    template : str
        Key template; ``{subject}``, ``{session}``, ``{desc}``, ``{category}``,
        ``{label}``, ``{hemi}`` and ``{model}`` are the entities.
    summary : str
        One line saying what the file is.
    prefix : bool
        ``True`` for a folder prefix (ends in ``/``) rather than a file.

    Examples
    --------
    >>> KINDS["trials"].entities
    ('subject', 'session')
    """

    template: str
    summary: str
    prefix: bool = False

    @property
    def entities(self) -> tuple[str, ...]:
        """The template's entities, in order of first appearance."""
        return tuple(dict.fromkeys(re.findall(r"\{(\w+)\}", self.template)))


_SES_DIR = f"{GLM_ROOT}/{{subject}}/{{session}}/func/{{subject}}_{{session}}_task-{TASK}"
_SUB_DIR = f"{GLM_ROOT}/{{subject}}/{{subject}}_task-{TASK}"
_ROI_DIR = f"{ROI_ROOT}/{{subject}}/{{category}}/{{subject}}"

#: Every file kind the package reads or writes, by name: the one table of file names.
KINDS: dict[str, FileKind] = {
    "betas": FileKind(f"{_SES_DIR}_space-{SPACE}_stat-effect_desc-SingletrialBetas_statmap.nii.gz",
                      "Single-trial betas of one session (4-D NIfTI)"),
    "session_nc": FileKind(f"{_SES_DIR}_space-{SPACE}_desc-Noiseceiling_statmap.nii.gz",
                           "Per-session noise ceiling map (percent)"),
    "session_r2": FileKind(f"{_SES_DIR}_space-{SPACE}_stat-rsquare_desc-R2_statmap.nii.gz",
                           "Per-session variance-explained (R2) map"),
    "trials": FileKind(f"{_SES_DIR}_desc-SingletrialBetas_trials.tsv",
                       "Trial table of one session (one row per beta volume)"),
    "session_summary": FileKind(f"{_SES_DIR}_desc-GLMsingle_summary.json",
                                "GLMsingle summary of one session"),
    "subject_nc": FileKind(f"{_SUB_DIR}_space-{SPACE}_desc-{{desc}}_statmap.nii.gz",
                           "Cross-session noise ceiling map, e.g. desc ``Noiseceiling12rep``"),
    "r2mean": FileKind(f"{_SUB_DIR}_space-{SPACE}_stat-rsquare_desc-R2mean_statmap.nii.gz",
                       "Mean R2 across sessions; its non-zero voxels define the brain mask"),
    "subject_summary": FileKind(f"{_SUB_DIR}_desc-GLMsingle_summary.json",
                                "GLMsingle summary across a subject's sessions"),
    "snapshot_brain_mask": FileKind(f"{_SUB_DIR}_space-{SPACE}_desc-meanR2gt15mask_mask.nii.gz",
                                    "Brain mask of the snapshot layout (precedes R2mean when present)"),
    "roi_volume": FileKind(f"{_ROI_DIR}_space-{SPACE}_res-{RES}_label-{{label}}_mask.nii.gz",
                           "Volumetric ROI mask on the beta grid"),
    "roi_surface": FileKind(f"{_ROI_DIR}_hemi-{{hemi}}_space-fsnative_label-{{label}}_mask.func.gii",
                            "Per-hemisphere surface ROI mask (GIFTI)"),
    "roi_label": FileKind(f"{_ROI_DIR}_hemi-{{hemi}}_space-fsnative_label-{{label}}_mask.label",
                          "Per-hemisphere FreeSurfer ASCII label of an ROI"),
    "snapshot_roi_volume": FileKind(f"{SNAPSHOT_ROI_ROOT}/{{subject}}/rois/{{label}}.nii.gz",
                                    "Volumetric ROI mask of the snapshot layout (no category)"),
    "embeddings": FileKind(f"{STIMULI_ROOT}/task-{TASK}_desc-{{model}}_embeddings.h5",
                           "Image embeddings of one model (HDF5)"),
    "subject_glm_prefix": FileKind(f"{GLM_ROOT}/{{subject}}/",
                                   "Key prefix of a subject's GLMsingle derivatives", prefix=True),
    "session_func_prefix": FileKind(f"{GLM_ROOT}/{{subject}}/{{session}}/func/",
                                    "Key prefix of one session's GLMsingle files", prefix=True),
    "roi_prefix": FileKind(f"{ROI_ROOT}/{{subject}}/",
                           "Key prefix of a subject's ROI masks (later layout)", prefix=True),
    "snapshot_roi_prefix": FileKind(f"{SNAPSHOT_ROI_ROOT}/{{subject}}/rois/",
                                    "Key prefix of a subject's ROI masks (snapshot layout)", prefix=True),
    "raw_subject_prefix": FileKind("{subject}/", "Key prefix of a subject's raw BIDS tree", prefix=True),
}

# What each entity may look like (in keys we build and in names we parse).
_ENTITY_VALUES: dict[str, str] = {
    "subject": r"sub-[A-Za-z0-9]+",
    "session": r"ses-[A-Za-z0-9]+",
    "desc": r"[A-Za-z0-9]+",
    "category": r"[A-Za-z0-9_]+",
    "label": r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*",
    "hemi": r"[LR]",
    "model": r"[A-Za-z0-9]+",
}
_ENTITY_DOCS: dict[str, str] = {
    "subject": "Canonical subject id, e.g. ``sub-03``.",
    "session": "Canonical session id, e.g. ``ses-01``.",
    "desc": "The ``desc`` value, e.g. ``Noiseceiling12rep``.",
    "category": "ROI category, e.g. ``face``.",
    "label": "ROI label, e.g. ``FFA1`` (bucket spelling; may hold hyphens).",
    "hemi": "Hemisphere, ``L`` or ``R``.",
    "model": "Embedding model, e.g. ``CLIP``.",
}
_EXAMPLE = {"subject": "sub-03", "session": "ses-01", "desc": "Noiseceiling12rep", "category": "face",
            "label": "FFA1", "hemi": "L", "model": "CLIP"}


def _kind(kind: str) -> FileKind:
    if kind not in KINDS:
        raise ValueError(f"Unknown file kind {kind!r}.{suggest(kind, KINDS)} Kinds: {', '.join(KINDS)}.")
    return KINDS[kind]


def key(kind: str, **entities: str) -> str:
    """The bucket key of a file kind for the given entities.

    Parameters
    ----------
    kind : str
        A name in :data:`KINDS`, e.g. ``"betas"``.
    **entities : str
        Exactly the kind's entities (``KINDS[kind].entities``).

    Returns
    -------
    str
        ``/``-separated bucket key (a folder prefix ends in ``/``).

    Raises
    ------
    ValueError
        Unknown kind, missing or unexpected entities, or a value that is not a
        valid entity (e.g. ``../``).

    Examples
    --------
    >>> key("trials", subject="sub-03", session="ses-01").split("/")[-1]
    'sub-03_ses-01_task-images_desc-SingletrialBetas_trials.tsv'
    """
    spec = _kind(kind)
    if set(entities) != set(spec.entities):
        raise ValueError(
            f"A {kind!r} key needs the entities {', '.join(spec.entities) or 'none'}; got "
            f"{', '.join(sorted(entities)) or 'none'}."
        )
    for name, value in entities.items():
        if not isinstance(value, str) or not re.fullmatch(_ENTITY_VALUES[name], value):
            raise ValueError(f"{value!r} is not a valid {name} for a {kind!r} key.")
    return spec.template.format(**entities)


def pattern(kind: str, **entities: str) -> str:
    """A glob pattern of a file kind's *file name*, ``*`` for the entities not given.

    Parameters
    ----------
    kind : str
        A name in :data:`KINDS`.
    **entities : str
        The entities to fix.

    Returns
    -------
    str
        The last path part of the key with ``*`` wildcards.

    Examples
    --------
    >>> pattern("subject_nc", subject="sub-03")
    'sub-03_task-images_space-T1w_desc-*_statmap.nii.gz'
    """
    spec = _kind(kind)
    name = spec.template.rsplit("/", 1)[-1]
    return name.format(**{e: entities.get(e, "*") for e in spec.entities})


def _regex(spec: FileKind) -> re.Pattern[str]:
    seen: set[str] = set()

    def group(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in seen:
            return f"(?P={name})"
        seen.add(name)
        return f"(?P<{name}>{_ENTITY_VALUES[name]})"

    parts = re.split(r"(\{\w+\})", spec.template)
    body = "".join(
        re.sub(r"\{(\w+)\}", group, p) if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(body)


_PARSERS: dict[str, re.Pattern[str]] = {k: _regex(s) for k, s in KINDS.items() if not s.prefix}


def parse(key: str) -> tuple[str, dict[str, str]] | None:
    """The file kind and entities of a bucket key, or ``None`` if it is none of :data:`KINDS`.

    Parameters
    ----------
    key : str
        ``/``-separated bucket key (or data-dir-relative path).

    Returns
    -------
    tuple of (str, dict) or None

    Examples
    --------
    >>> parse("derivatives/rois/sub-03/face/sub-03_space-T1w_res-1pt8_label-FFA-1_mask.nii.gz")
    ('roi_volume', {'subject': 'sub-03', 'category': 'face', 'label': 'FFA-1'})
    """
    for kind, regex in _PARSERS.items():
        match = regex.fullmatch(key)
        if match:
            return kind, match.groupdict()
    return None


def _from_table(kind: str) -> Callable[[_F], _F]:
    """Write the docstring of a thin ``*_key`` wrapper from the table (one source of truth)."""
    spec = KINDS[kind]

    def decorate(func: _F) -> _F:
        params = "\n".join(f"{e} : str\n    {_ENTITY_DOCS[e]}" for e in spec.entities)
        args = ", ".join(repr(_EXAMPLE[e]) for e in spec.entities)
        example = spec.template.format(**_EXAMPLE)
        shown = example if spec.prefix else example.rsplit("/", 1)[-1]
        call = f"{func.__name__}({args})" + ("" if spec.prefix else '.split("/")[-1]')
        doc = (
            f"{spec.summary}: ``key({kind!r}, ...)``.\n\n"
            + (f"Parameters\n----------\n{params}\n\n" if params else "")
            + f"Returns\n-------\nstr\n    The bucket key{' prefix' if spec.prefix else ''}.\n\n"
            f"Examples\n--------\n>>> {call}\n{shown!r}\n"
        )
        func.__doc__ = textwrap.indent(doc, "    ").lstrip()
        return func

    return decorate


@_from_table("subject_glm_prefix")
def subject_glm_prefix(subject: str) -> str:
    return key("subject_glm_prefix", subject=subject)


@_from_table("session_func_prefix")
def session_func_prefix(subject: str, session: str) -> str:
    return key("session_func_prefix", subject=subject, session=session)


@_from_table("betas")
def betas_key(subject: str, session: str) -> str:
    return key("betas", subject=subject, session=session)


@_from_table("session_nc")
def session_nc_key(subject: str, session: str) -> str:
    return key("session_nc", subject=subject, session=session)


@_from_table("session_r2")
def session_r2_key(subject: str, session: str) -> str:
    return key("session_r2", subject=subject, session=session)


@_from_table("trials")
def trials_key(subject: str, session: str) -> str:
    return key("trials", subject=subject, session=session)


@_from_table("session_summary")
def session_summary_key(subject: str, session: str) -> str:
    return key("session_summary", subject=subject, session=session)


@_from_table("subject_nc")
def subject_nc_key(subject: str, desc: str) -> str:
    return key("subject_nc", subject=subject, desc=desc)


@_from_table("r2mean")
def r2mean_key(subject: str) -> str:
    return key("r2mean", subject=subject)


@_from_table("subject_summary")
def subject_summary_key(subject: str) -> str:
    return key("subject_summary", subject=subject)


@_from_table("snapshot_brain_mask")
def snapshot_brain_mask_key(subject: str) -> str:
    return key("snapshot_brain_mask", subject=subject)


@_from_table("roi_prefix")
def roi_prefix(subject: str) -> str:
    return key("roi_prefix", subject=subject)


@_from_table("snapshot_roi_prefix")
def snapshot_roi_prefix(subject: str) -> str:
    return key("snapshot_roi_prefix", subject=subject)


@_from_table("raw_subject_prefix")
def raw_subject_prefix(subject: str) -> str:
    return key("raw_subject_prefix", subject=subject)


@_from_table("roi_volume")
def roi_volume_key(subject: str, category: str, label: str) -> str:
    return key("roi_volume", subject=subject, category=category, label=label)


@_from_table("roi_surface")
def roi_surface_key(subject: str, category: str, label: str, hemi: str) -> str:
    return key("roi_surface", subject=subject, category=category, label=label, hemi=hemi)


@_from_table("roi_label")
def roi_label_key(subject: str, category: str, label: str, hemi: str) -> str:
    return key("roi_label", subject=subject, category=category, label=label, hemi=hemi)


@_from_table("embeddings")
def embeddings_key(model: str) -> str:
    return key("embeddings", model=model)


def brain_mask_keys(subject: str) -> tuple[str, ...]:
    """Keys the brain mask may come from, in download order.

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    tuple of str
        ``(r2mean_key, snapshot_brain_mask_key)``.

    Examples
    --------
    >>> [k.split("_desc-")[1] for k in brain_mask_keys("sub-03")]
    ['R2mean_statmap.nii.gz', 'meanR2gt15mask_mask.nii.gz']
    """
    return (r2mean_key(subject), snapshot_brain_mask_key(subject))


def parse_roi_volume_key(key: str) -> tuple[str, str, str] | None:
    """``(subject, category, label)`` of a volumetric ROI key, either layout, else ``None``.

    Parameters
    ----------
    key : str
        Bucket key or data-dir-relative path.

    Returns
    -------
    tuple of str or None
        The label de-hyphenated; category ``"uncategorized"`` for the snapshot layout.

    Examples
    --------
    >>> parse_roi_volume_key("derivatives/atlases/sub-03/rois/FFA1.nii.gz")
    ('sub-03', 'uncategorized', 'FFA1')
    """
    found = parse(key)
    if found is None or found[0] not in ("roi_volume", "snapshot_roi_volume"):
        return None
    kind, e = found
    category = e["category"] if kind == "roi_volume" else SNAPSHOT_ROI_CATEGORY
    return e["subject"], category, normalize_roi_label(e["label"])


def sidecar_key(key: str) -> str:
    """Key of the JSON sidecar of a NIfTI/TSV key (same stem, ``.json``).

    Parameters
    ----------
    key : str
        A data file key.

    Returns
    -------
    str

    Examples
    --------
    >>> sidecar_key("a/sub-03_x_statmap.nii.gz")
    'a/sub-03_x_statmap.json'
    """
    name = PurePosixPath(key).name
    stem = name.split(".", 1)[0]
    return str(PurePosixPath(key).with_name(stem + ".json"))


def public_stimulus_keys() -> tuple[str, ...]:
    """The stimulus keys anyone may download (embeddings, segmentations, captions).

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> CAPTIONS_KEY in public_stimulus_keys()
    True
    """
    return (
        *(embeddings_key(m) for m in EMBEDDING_MODELS),
        SEGMENTATIONS_KEY,
        SEGMENTATIONS_METADATA_KEY,
        CAPTIONS_KEY,
    )


__all__ = [
    "KINDS",
    "FileKind",
    "betas_key",
    "brain_mask_keys",
    "embeddings_key",
    "key",
    "parse",
    "parse_roi_volume_key",
    "pattern",
    "public_stimulus_keys",
    "r2mean_key",
    "raw_subject_prefix",
    "roi_label_key",
    "roi_prefix",
    "roi_surface_key",
    "roi_volume_key",
    "session_func_prefix",
    "session_nc_key",
    "session_r2_key",
    "session_summary_key",
    "sidecar_key",
    "snapshot_brain_mask_key",
    "snapshot_roi_prefix",
    "subject_glm_prefix",
    "subject_nc_key",
    "subject_summary_key",
    "trials_key",
]
