"""Pure decisions of the extra download scopes: anatomy, FreeSurfer and the raw BIDS tree.

``download(..., include_anatomical=, include_freesurfer=, include_raw=)`` and
``download_raw(subject, ses, run, echo, part, suffix, extension)`` of the
current reference release (DATASET.md 8.7). These functions take a listing
(:class:`~laion_fmri.remote.ObjectInfo` objects or plain keys) and return what
to fetch; they never touch the network or the disk.

Rules
-----
* The anatomical folder (``derivatives/anatomical/<sub>/``) and the FreeSurfer
  reconstruction (``derivatives/freesurfer/<sub>/``) are taken whole: BIDS
  filters do not apply to them.
* The raw tree (``<sub>/``) honours ``ses``, ``run``, ``echo``, ``part``,
  ``suffix`` and ``extension``:

  - ``ses`` is strict: a key inside a session folder passes only if its
    session was asked for; a session-less raw key (``<sub>/dwi/...``) only
    when no ``ses`` is given.
  - ``run``, ``echo`` and ``part`` reject keys carrying another value and keep
    keys without the entity, so ``run=1, echo=2`` still brings run 1's
    events table (no echo) and the session's field maps (no run).
  - ``suffix`` and ``extension`` are exact; a ``.json`` sidecar whose suffix
    matches passes regardless of ``extension``.
  - Held-out sessions never pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from laion_fmri import layout
from laion_fmri.errors import FilterError, NoMatchingDataError, SessionNotFoundError
from laion_fmri.stores import ObjectInfo

Listed = TypeVar("Listed", ObjectInfo, str)

RAW_ENTITY_FILTERS: tuple[str, ...] = ("run", "echo", "part")


def _key(item: ObjectInfo | str) -> str:
    return item.key if isinstance(item, ObjectInfo) else item


def _values(name: str, value: object) -> tuple[str, ...] | None:
    """One value or a list, bare or ``name-`` prefixed, as stripped strings."""
    if value is None:
        return None
    items = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple, set, frozenset)) or not items:
        raise FilterError(f"{name}= must be a value or a non-empty list of values, got {value!r}.")
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise FilterError(f"{name}= values must be strings or integers, got {item!r}.")
        text = str(item).strip()
        if text.startswith(f"{name}-"):
            text = text[len(name) + 1 :]
        if not text:
            raise FilterError(f"{name}= contains an empty value.")
        out.append(text)
    return tuple(dict.fromkeys(out))


def _numbers(name: str, value: object, valid: Sequence[int] | None = None) -> tuple[int, ...] | None:
    texts = _values(name, value)
    if texts is None:
        return None
    out = []
    for text in texts:
        if not text.isdigit() or not 1 <= int(text) <= 99:
            raise FilterError(f"{name}= takes numbers such as 1 or '01', got {text!r}.")
        number = int(text)
        if valid is not None and number not in valid:
            raise FilterError(
                f"{name}={number} does not exist; use one of {', '.join(map(str, valid))}."
            )
        out.append(number)
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class RawFilters:
    """Normalised filters of the raw BIDS tree (``None`` = no restriction).

    Build with :meth:`from_args`.

    Parameters
    ----------
    ses : tuple of str, optional
        Session ids (``ses-01``).
    run, echo : tuple of int, optional
        Run and echo numbers.
    part : tuple of str, optional
        ``mag`` and/or ``phase``.
    suffix, extension : tuple of str, optional
        Exact suffixes (``bold``, ``sbref``, ``events`` ...) and extensions
        without the leading dot (``nii.gz``, ``tsv``).

    Examples
    --------
    >>> f = RawFilters.from_args(ses=1, run=["01", 2], echo="echo-3", part="mag")
    >>> f.ses, f.run, f.echo, f.part
    (('ses-01',), (1, 2), (3,), ('mag',))
    """

    ses: tuple[str, ...] | None = None
    run: tuple[int, ...] | None = None
    echo: tuple[int, ...] | None = None
    part: tuple[str, ...] | None = None
    suffix: tuple[str, ...] | None = None
    extension: tuple[str, ...] | None = None

    @classmethod
    def from_args(
        cls,
        ses: object = None,
        run: object = None,
        echo: object = None,
        part: object = None,
        suffix: object = None,
        extension: object = None,
    ) -> RawFilters:
        """Validate and normalise user-facing raw filter values.

        Parameters
        ----------
        ses : str, int or list, optional
            Sessions (``"ses-01"``, ``"01"``, ``1``).
        run : int, str or list, optional
            Runs (``1``, ``"01"``, ``"run-01"``).
        echo : int, str or list, optional
            Echoes 1..3.
        part : str or list, optional
            ``"mag"`` and/or ``"phase"``.
        suffix, extension : str or list, optional
            Exact suffix / extension (a leading ``.`` is ignored).

        Returns
        -------
        RawFilters

        Raises
        ------
        FilterError
            For malformed values, an echo outside 1..3 or an unknown part.
        SessionNotFoundError
            For a malformed session.
        """
        sessions = _values("ses", ses)
        parts = _values("part", part)
        for value in parts or ():
            if value not in layout.RAW_PARTS:
                raise FilterError(
                    f"Unknown part {value!r}; use one of {', '.join(layout.RAW_PARTS)}."
                )
        extensions = _values("extension", extension)
        return cls(
            ses=None if sessions is None else tuple(
                dict.fromkeys(_raw_session(s) for s in sessions)
            ),
            run=_numbers("run", run),
            echo=_numbers("echo", echo, layout.RAW_ECHOES),
            part=parts,
            suffix=_values("suffix", suffix),
            extension=None if extensions is None else tuple(e.lstrip(".") for e in extensions),
        )

    def describe(self) -> str:
        """The active filters as ``name=value`` text, for messages.

        Returns
        -------
        str
        """
        parts = [f"{name}={','.join(map(str, value))}"
                 for name in ("ses", *RAW_ENTITY_FILTERS, "suffix", "extension")
                 if (value := getattr(self, name))]
        return " ".join(parts) or "no filters"


def _raw_session(value: str) -> str:
    try:
        return layout.normalize_session(value)
    except SessionNotFoundError as exc:
        raise SessionNotFoundError(f"{exc} Raw data exists for main sessions only.") from None


def _is_held_out(key: str) -> bool:
    session = layout.session_of(key)
    return session is not None and layout.is_held_out(session)


def raw_key_matches(key: str, filters: RawFilters) -> bool:
    """Whether a raw-tree key passes the raw filters (see the module rules).

    Parameters
    ----------
    key : str
        A key under ``<sub>/``.
    filters : RawFilters
        Normalised filters.

    Returns
    -------
    bool

    Examples
    --------
    >>> f = RawFilters.from_args(run=1, echo=2)
    >>> raw_key_matches(layout.raw_image_key("sub-03", "ses-01", 1, 2), f)
    True
    >>> raw_key_matches(layout.raw_image_key("sub-03", "ses-01", 1, 3), f)
    False
    >>> raw_key_matches(layout.raw_events_key("sub-03", "ses-01", 1), f)  # no echo: kept
    True
    """
    if _is_held_out(key):
        return False
    entities = layout.parse_entities(key)
    if filters.ses is not None:
        session = layout.session_of(key)
        if session is None or session not in filters.ses:
            return False
    for name in ("run", "echo"):
        wanted = getattr(filters, name)
        value = entities.get(name)
        if wanted is not None and value is not None and (
            not value.isdigit() or int(value) not in wanted
        ):
            return False
    part = entities.get("part")
    if filters.part is not None and part is not None and part not in filters.part:
        return False
    if filters.suffix is not None and entities.get("suffix") not in filters.suffix:
        return False
    extension = entities.get("extension")
    if filters.extension is not None and extension not in filters.extension:
        return extension == "json" and filters.suffix is not None
    return True


def scope_prefixes(
    subject: str,
    *,
    include_anatomical: bool = False,
    include_freesurfer: bool = False,
    include_raw: bool = False,
) -> tuple[str, ...]:
    """The extra folders a download lists for one subject.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    include_anatomical, include_freesurfer, include_raw : bool
        The scopes asked for.

    Returns
    -------
    tuple of str
        Prefixes in this order: anatomical, FreeSurfer, raw.

    Examples
    --------
    >>> scope_prefixes("sub-03", include_anatomical=True, include_raw=True)
    ('derivatives/anatomical/sub-03/', 'sub-03/')
    """
    prefixes = []
    if include_anatomical:
        prefixes.append(layout.anatomical_prefix(subject))
    if include_freesurfer:
        prefixes.append(layout.freesurfer_prefix(subject))
    if include_raw:
        prefixes.append(layout.raw_subject_prefix(subject))
    return tuple(prefixes)


def select_anatomical(subject: str, listing: Iterable[Listed]) -> list[Listed]:
    """Everything under the subject's anatomical folder (filters do not apply).

    Parameters
    ----------
    subject : str
        Canonical subject id.
    listing : iterable of ObjectInfo or str
        Any listing; other keys are ignored.

    Returns
    -------
    list
        The matching items, in listing order.

    Examples
    --------
    >>> select_anatomical("sub-03", [layout.anatomical_key("sub-03", "T1w", "0pt8"), "README"])
    ['derivatives/anatomical/sub-03/ses-PrismaAnat/anat/sub-03_ses-PrismaAnat_space-T1w_T1w.nii.gz']
    """
    prefix = layout.anatomical_prefix(subject)
    return [item for item in listing if _key(item).startswith(prefix)]


def select_freesurfer(subject: str, listing: Iterable[Listed]) -> list[Listed]:
    """Everything under the subject's FreeSurfer folder (filters do not apply).

    Parameters
    ----------
    subject : str
        Canonical subject id.
    listing : iterable of ObjectInfo or str
        Any listing; other keys are ignored.

    Returns
    -------
    list
        The matching items, in listing order.

    Examples
    --------
    >>> select_freesurfer("sub-03", ["derivatives/freesurfer/sub-03/surf/lh.white", "README"])
    ['derivatives/freesurfer/sub-03/surf/lh.white']
    """
    prefix = layout.freesurfer_prefix(subject)
    return [item for item in listing if _key(item).startswith(prefix)]


def select_raw(subject: str, listing: Iterable[Listed], filters: RawFilters) -> list[Listed]:
    """The raw-tree items of one subject that pass the raw filters.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    listing : iterable of ObjectInfo or str
        Any listing; keys outside ``<sub>/`` are ignored.
    filters : RawFilters
        Normalised filters.

    Returns
    -------
    list
        The matching items, in listing order.

    Examples
    --------
    >>> keys = [layout.raw_image_key("sub-03", "ses-01", 1, e, "mag") for e in (1, 2, 3)]
    >>> select_raw("sub-03", keys, RawFilters.from_args(echo=3)) == keys[2:]
    True
    """
    prefix = layout.raw_subject_prefix(subject)
    return [item for item in listing
            if _key(item).startswith(prefix) and raw_key_matches(_key(item), filters)]


def plan_scopes(
    subject: str,
    listing: Iterable[Listed],
    *,
    include_anatomical: bool = False,
    include_freesurfer: bool = False,
    include_raw: bool = False,
    raw_filters: RawFilters | None = None,
) -> list[Listed]:
    """What ``download(..., include_anatomical/freesurfer/raw=True)`` adds for one subject.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    listing : iterable of ObjectInfo or str
        The listing of :func:`scope_prefixes` (other keys are ignored).
    include_anatomical, include_freesurfer, include_raw : bool
        The scopes asked for.
    raw_filters : RawFilters, optional
        For the raw tree: ``download``'s ``ses``, ``suffix`` and
        ``extension`` (``None``: the whole raw tree).

    Returns
    -------
    list
        Selected items, de-duplicated, in listing order.

    Examples
    --------
    >>> keys = [layout.anatomical_brain_mask_key("sub-03"),
    ...         layout.raw_events_key("sub-03", "ses-01", 1), "sub-03/ses-31/func/x_bold.nii.gz"]
    >>> plan_scopes("sub-03", keys, include_anatomical=True, include_raw=True) == keys[:2]
    True
    """
    items = list(listing)
    chosen: list[Listed] = []
    if include_anatomical:
        chosen += select_anatomical(subject, items)
    if include_freesurfer:
        chosen += select_freesurfer(subject, items)
    if include_raw:
        chosen += select_raw(subject, items, raw_filters or RawFilters())
    seen: set[str] = set()
    out = []
    for item in chosen:
        if _key(item) not in seen:
            seen.add(_key(item))
            out.append(item)
    return out


def plan_download_raw(
    subject: str,
    listing: Iterable[Listed],
    ses: object = None,
    run: object = None,
    echo: object = None,
    part: object = None,
    suffix: object = None,
    extension: object = None,
) -> list[Listed]:
    """What ``download_raw(subject, ses, run, echo, part, suffix, extension)`` fetches.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    listing : iterable of ObjectInfo or str
        The listing of ``<sub>/`` (other keys are ignored).
    ses, run, echo, part, suffix, extension : optional
        Raw filters (:meth:`RawFilters.from_args`).

    Returns
    -------
    list
        Selected items in listing order.

    Raises
    ------
    NoMatchingDataError
        If the source has no raw data for the subject, or none passes the
        filters (the message names the filters and what exists).
    FilterError, SessionNotFoundError
        For malformed filter values.

    Examples
    --------
    >>> keys = [layout.raw_image_key("sub-03", "ses-01", r, e, p)
    ...         for r in (1, 2) for e in (1, 2, 3) for p in ("mag", "phase")]
    >>> len(plan_download_raw("sub-03", keys, run=2, echo=[1, 3], part="mag"))
    2
    """
    filters = RawFilters.from_args(ses, run, echo, part, suffix, extension)
    prefix = layout.raw_subject_prefix(subject)
    raw = [item for item in listing if _key(item).startswith(prefix) and not _is_held_out(_key(item))]
    if not raw:
        raise NoMatchingDataError(
            f"The source has no raw BIDS data for {subject} (nothing under {prefix!r})."
        )
    chosen = select_raw(subject, raw, filters)
    if not chosen:
        existing = sorted({f"{name}={v}" for item in raw
                           for name, v in layout.parse_entities(_key(item)).items()
                           if name in ("ses", *RAW_ENTITY_FILTERS, "suffix")})
        raise NoMatchingDataError(
            f"No raw file of {subject} matches {filters.describe()}. Values that exist: "
            f"{', '.join(existing)}."
        )
    return chosen


__all__ = [
    "RawFilters",
    "plan_download_raw",
    "plan_scopes",
    "raw_key_matches",
    "scope_prefixes",
    "select_anatomical",
    "select_freesurfer",
    "select_raw",
]
