"""The words users type and the words errors answer with.

The dataset's identifiers (subjects, sessions, embedding models, noise-ceiling
descs, ROI categories) and their normalisation, one "did you mean" helper
(:func:`suggest`) used by every error that offers one, the download call an
error names (:func:`download_hint`), and the brain-mask sources a voxel axis
can be built from (:data:`MASK_SOURCES`). File names are :mod:`laion_fmri.layout`'s.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from laion_fmri.errors import SessionNotFoundError, SubjectNotFoundError

SUBJECTS: tuple[str, ...] = ("sub-01", "sub-03", "sub-05", "sub-06", "sub-07")
HELD_OUT_SESSIONS: tuple[str, ...] = ("ses-31", "ses-32", "ses-33", "ses-34")
#: The pseudo-session naming a subject's cross-session maps in download filters.
AVERAGES = "averages"
SUBJECT_NC_DESCS: tuple[str, ...] = ("Noiseceiling4rep", "Noiseceiling12rep", "NoiseceilingAllrep")
EMBEDDING_MODELS: tuple[str, ...] = ("CLIP", "DINOv2", "PEcore", "SigLIP2")
EMBEDDING_DIMS: dict[str, int] = {"CLIP": 1024, "DINOv2": 1024, "PEcore": 1024, "SigLIP2": 1152}

#: Where the brain mask (the voxel axis) comes from. ``"anatomical"`` (the
#: default, as in the current reference release): the subject's anatomical
#: ``res-1pt8`` ``desc-brain`` mask on the betas grid. ``"rsquare"``: voxels with
#: a non-zero mean R² (``R2mean != 0``), or the snapshot ``meanR2gt15mask`` file.
MASK_SOURCES: tuple[str, ...] = ("anatomical", "rsquare")
DEFAULT_MASK_SOURCE = "anatomical"

# Above this many options the pool is narrowed before difflib (which is quadratic).
_NARROW_ABOVE = 500


def close_matches(word: object, options: Iterable[object], n: int = 3) -> list[str]:
    """Up to ``n`` valid names close to ``word``, best first (a case-only typo counts).

    Parameters
    ----------
    word : object
        What the caller typed (compared as text).
    options : iterable
        The valid names.
    n : int
        At most this many matches.

    Returns
    -------
    list of str

    Examples
    --------
    >>> close_matches("ffa1", ["FFA1", "PPA"])
    ['FFA1']
    """
    text = str(word)
    pool = [str(o) for o in options]
    if len(pool) > _NARROW_ABOVE:
        width = max(3, len(text) // 5)
        pool = [v for v in pool if abs(len(v) - len(text)) <= width]
        same_start = [v for v in pool if v[:8] == text[:8]]
        pool = same_start if same_start else pool[:5000]
    close = difflib.get_close_matches(text, pool, n=n, cutoff=0.6)
    if not close:
        lowered = {o.lower(): o for o in pool}
        close = [lowered[text.lower()]] if text.lower() in lowered else []
    return close


def suggest(word: object, options: Iterable[object], n: int = 3) -> str:
    """`` Did you mean ...?`` text for close matches of ``word`` (empty if none).

    Parameters
    ----------
    word : object
        What the caller typed.
    options : iterable
        Valid names.
    n : int
        At most this many suggestions.

    Returns
    -------
    str
        Starts with a space, so it can follow a sentence directly.

    Examples
    --------
    >>> suggest("FFA2", ["FFA1", "PPA"])
    " Did you mean 'FFA1'?"
    """
    close = close_matches(word, options, n)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


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


def canonical_model(model: object) -> str | None:
    """The canonical spelling of an embedding model name (case-insensitive), or ``None``.

    Parameters
    ----------
    model : object
        A model name such as ``"clip"``.

    Returns
    -------
    str or None

    Examples
    --------
    >>> canonical_model("dinov2"), canonical_model("ResNet")
    ('DINOv2', None)
    """
    if not isinstance(model, str):
        return None
    return {m.lower(): m for m in EMBEDDING_MODELS}.get(model.strip().lower())


def normalize_model(model: object, error: type[Exception] = ValueError) -> str:
    """The canonical embedding model name, or ``error`` naming the valid ones.

    Parameters
    ----------
    model : object
        A model name, any case.
    error : type of Exception
        The exception class to raise for an unknown name.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        ``model`` is not a string.
    Exception
        ``error`` for an unknown model (suggests close names).

    Examples
    --------
    >>> normalize_model("siglip2")
    'SigLIP2'
    """
    if not isinstance(model, str):
        raise TypeError(f"The model must be a str, not {type(model).__name__}.")
    found = canonical_model(model)
    if found is None:
        raise error(
            f"Unknown embedding model {model!r}.{suggest(model, EMBEDDING_MODELS)} Valid: "
            f"{', '.join(EMBEDDING_MODELS)}."
        )
    return found


def normalize_roi_label(label: str) -> str:
    """The package's spelling of an ROI label: the bucket's, hyphens removed (BIDS-valid).

    Parameters
    ----------
    label : str
        A label as the bucket spells it, e.g. ``"FFA-1"``.

    Returns
    -------
    str

    Examples
    --------
    >>> normalize_roi_label("FFA-1")
    'FFA1'
    """
    return label.replace("-", "")


def download_hint(subject: str, session: str | None = None) -> str:
    """The download call that fetches a subject's (or one session's) files.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    session : str, optional
        A session id, ``"averages"`` or a placeholder such as ``"ses-NN"``.

    Returns
    -------
    str

    Examples
    --------
    >>> download_hint("sub-03", "ses-01")
    'laion_fmri.download.download(subject="sub-03", ses="ses-01")'
    """
    ses = f', ses="{session}"' if session else ""
    return f'laion_fmri.download.download(subject="{subject}"{ses})'


def normalize_mask_source(mask_source: object) -> str:
    """The canonical brain-mask source name; ``None`` gives the default.

    Parameters
    ----------
    mask_source : str or None
        One of :data:`MASK_SOURCES` (case-insensitive).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an unknown source (lists the valid ones).

    Examples
    --------
    >>> normalize_mask_source(None)
    'anatomical'
    >>> normalize_mask_source("RSquare")
    'rsquare'
    """
    if mask_source is None:
        return DEFAULT_MASK_SOURCE
    if isinstance(mask_source, str) and mask_source.strip().lower() in MASK_SOURCES:
        return mask_source.strip().lower()
    raise ValueError(
        f"Unknown mask_source {mask_source!r}.{suggest(mask_source, MASK_SOURCES)} "
        f"Valid: {', '.join(MASK_SOURCES)}."
    )


__all__ = [
    "AVERAGES",
    "DEFAULT_MASK_SOURCE",
    "EMBEDDING_DIMS",
    "EMBEDDING_MODELS",
    "HELD_OUT_SESSIONS",
    "MASK_SOURCES",
    "SUBJECTS",
    "SUBJECT_NC_DESCS",
    "canonical_model",
    "close_matches",
    "download_hint",
    "is_held_out",
    "normalize_mask_source",
    "normalize_model",
    "normalize_roi_label",
    "normalize_session",
    "normalize_subject",
    "suggest",
]
