"""Pure decisions of a download: which keys to fetch and which to skip.

Nothing here touches the network or the disk; the functions take listings
(:class:`~laion_fmri.remote.ObjectInfo`), manifest records and ``stat``
results and return decisions, so every rule is unit-testable on synthetic
key lists.

Rules (``docs``: DATASET.md section 8, later revision):

* entity filters (``ses``, ``task``, ``space``, ``desc``, ``stat``) accept one
  value or a list, bare (``"01"``) or prefixed (``"ses-01"``); AND across
  entities, OR within one;
* ``task``/``space``/``desc``/``stat``/``datatype`` are permissive: a key
  without the entity passes;
* ``ses`` is strict: a key with a session passes only if its session was asked
  for, a key without one only if ``"averages"`` was asked for;
* ``suffix`` and ``extension`` are compared exactly; a ``.json`` sidecar whose
  suffix matches passes regardless of ``extension``;
* ``include``/``exclude`` are shell globs on the key;
* dataset-level keys always come; the brain-mask keys are pinned when ``ses``
  names a real session; ROI folders are filtered without ``ses``;
* held-out sessions are removed before anything else.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from laion_fmri import layout
from laion_fmri.download._decide import Action, decide, format_bytes, validate_n_jobs
from laion_fmri.errors import FilterError, NoMatchingDataError, SessionNotFoundError
from laion_fmri.stores import ObjectInfo

ENTITY_FILTERS: tuple[str, ...] = ("ses", "task", "space", "desc", "stat")
PERMISSIVE_ENTITIES: tuple[str, ...] = ("task", "space", "desc", "stat")
#: Filters whose values must appear on at least one listed key (typo guard).
VALUE_FILTERS: tuple[str, ...] = (*PERMISSIVE_ENTITIES, "suffix", "extension", "datatype")



def _as_values(name: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(values, (list, tuple, set, frozenset)) or not values:
        raise FilterError(
            f"{name}= must be a string or a non-empty list of strings, got {value!r}."
        )
    out: list[str] = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise FilterError(f"{name}= values must be strings, got {item!r}.")
        text = str(item).strip()
        if text.startswith(f"{name}-"):
            text = text[len(name) + 1 :]
        if not text:
            raise FilterError(f"{name}= contains an empty value.")
        out.append(text)
    return tuple(dict.fromkeys(out))


def _session_values(value: object) -> tuple[str, ...] | None:
    values = _as_values("ses", value)
    if values is None:
        return None
    out = []
    for item in values:
        if item == layout.AVERAGES:
            out.append(item)
            continue
        try:
            out.append(layout.normalize_session(item)[len("ses-") :])
        except SessionNotFoundError as exc:
            raise SessionNotFoundError(
                f"{exc} Use ses='averages' for the subject-level maps."
            ) from None
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Filters:
    """Normalised download filters (every field ``None`` = no restriction).

    Build with :meth:`from_args`, which accepts the user-facing forms.

    Parameters
    ----------
    ses, task, space, desc, stat : tuple of str, optional
        Bare entity values (``ses`` may hold ``"averages"``).
    suffix, extension, datatype : tuple of str, optional
        Exact values.
    include, exclude : tuple of str
        Shell globs on the key.

    Examples
    --------
    >>> f = Filters.from_args(ses=["ses-1", "averages"], desc="SingletrialBetas")
    >>> f.ses, f.desc
    (('01', 'averages'), ('SingletrialBetas',))
    """

    ses: tuple[str, ...] | None = None
    task: tuple[str, ...] | None = None
    space: tuple[str, ...] | None = None
    desc: tuple[str, ...] | None = None
    stat: tuple[str, ...] | None = None
    suffix: tuple[str, ...] | None = None
    extension: tuple[str, ...] | None = None
    datatype: tuple[str, ...] | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def from_args(
        cls,
        ses: object = None,
        task: object = None,
        space: object = None,
        desc: object = None,
        stat: object = None,
        suffix: object = None,
        extension: object = None,
        datatype: object = None,
        include: object = None,
        exclude: object = None,
    ) -> Filters:
        """Validate and normalise user-facing filter values.

        Parameters
        ----------
        ses, task, space, desc, stat : str or list of str, optional
            Entity values, bare or prefixed; ``ses`` also takes ``"averages"``.
        suffix, extension : str or list of str, optional
            Exact suffix / extension (a leading ``.`` is ignored).
        datatype : str or list of str, optional
            ``func``, ``anat``, ``dwi`` or ``fmap``.
        include, exclude : str or list of str, optional
            Shell globs matched against the key.

        Returns
        -------
        Filters

        Raises
        ------
        FilterError
            For malformed values or an unknown datatype.
        SessionNotFoundError
            For a malformed session.
        """
        extensions = _as_values("extension", extension)
        datatypes = _as_values("datatype", datatype)
        for dt in datatypes or ():
            if dt not in layout.DATATYPES:
                raise FilterError(
                    f"Unknown datatype {dt!r}; use one of {', '.join(layout.DATATYPES)}."
                )
        return cls(
            ses=_session_values(ses),
            task=_as_values("task", task),
            space=_as_values("space", space),
            desc=_as_values("desc", desc),
            stat=_as_values("stat", stat),
            suffix=_as_values("suffix", suffix),
            extension=tuple(e.lstrip(".") for e in extensions) if extensions else None,
            datatype=datatypes,
            include=_as_values("include", include) or (),
            exclude=_as_values("exclude", exclude) or (),
        )

    @property
    def narrows_sessions(self) -> bool:
        """True when ``ses`` names at least one real session (pins the brain mask)."""
        return self.ses is not None and any(v != layout.AVERAGES for v in self.ses)

    def describe(self) -> str:
        """The active filters as ``name=value`` text, for messages.

        Returns
        -------
        str
        """
        parts = []
        for name in (*ENTITY_FILTERS, "suffix", "extension", "datatype", "include", "exclude"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={','.join(value)}")
        return " ".join(parts) or "no filters"


def key_matches(key: str, filters: Filters, use_ses: bool = True) -> bool:
    """Whether a key passes the filters.

    Parameters
    ----------
    key : str
        Bucket key.
    filters : Filters
        Normalised filters.
    use_ses : bool
        ``False`` for ROI folders, which come along whatever the sessions.

    Returns
    -------
    bool

    Examples
    --------
    >>> f = Filters.from_args(ses="averages")
    >>> key_matches("derivatives/glmsingle-tedana/sub-03/sub-03_task-images_desc-R2mean_statmap.nii.gz", f)
    True
    >>> key_matches("derivatives/glmsingle-tedana/sub-03/ses-01/func/x_ses-01_trials.tsv", f)
    False
    """
    ents = layout.parse_entities(key)
    for name in PERMISSIVE_ENTITIES:
        wanted = getattr(filters, name)
        if wanted is not None and name in ents and ents[name] not in wanted:
            return False
    if use_ses and filters.ses is not None:
        if "ses" in ents:
            if ents["ses"] not in filters.ses:
                return False
        elif layout.AVERAGES not in filters.ses:
            return False
    if filters.datatype is not None and "datatype" in ents and ents["datatype"] not in filters.datatype:
        return False
    suffix_ok = filters.suffix is None or ents.get("suffix") in filters.suffix
    if not suffix_ok:
        return False
    if filters.extension is not None and ents.get("extension") not in filters.extension:
        sidecar = filters.suffix is not None and ents.get("extension") == "json"
        if not sidecar:
            return False
    if filters.include and not any(fnmatch.fnmatchcase(key, g) for g in filters.include):
        return False
    return not any(fnmatch.fnmatchcase(key, g) for g in filters.exclude)


def _suggestion(value: str, existing: Sequence[str]) -> str | None:
    """The existing value closest to ``value`` (case-insensitive), or ``None``."""
    by_lower = {v.lower(): v for v in existing}
    if value.lower() in by_lower:
        return by_lower[value.lower()]
    starts = [v for v in existing if v.lower().startswith(value.lower())]
    if len(starts) == 1:
        return starts[0]
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def check_filter_values(filters: Filters, keys: Iterable[str], where: str) -> None:
    """Raise when a filter value appears on none of the listed keys.

    A value that matches nothing would otherwise silently leave only the
    dataset-level files and ROI masks in the plan.

    Parameters
    ----------
    filters : Filters
        Normalised filters.
    keys : iterable of str
        Every key listed for the requested subjects.
    where : str
        What was listed (subjects and source), for the message.

    Raises
    ------
    NoMatchingDataError
        Naming the value, a close match and the values that exist.

    Examples
    --------
    >>> keys = ["derivatives/glmsingle-tedana/sub-03/sub-03_desc-R2mean_statmap.nii.gz"]
    >>> check_filter_values(Filters.from_args(desc="R2mean"), keys, "sub-03")
    >>> try:
    ...     check_filter_values(Filters.from_args(desc="r2"), keys, "sub-03")
    ... except NoMatchingDataError as exc:
    ...     print(str(exc).split(";")[1])
     did you mean 'R2mean'? Values of desc there: R2mean.
    """
    wanted = {name: getattr(filters, name) for name in VALUE_FILTERS if getattr(filters, name)}
    if not wanted:
        return
    present: dict[str, set[str]] = {name: set() for name in wanted}
    for key in keys:
        ents = layout.parse_entities(key)
        for name, seen in present.items():
            if name in ents:
                seen.add(ents[name])
    for name, values in wanted.items():
        existing = sorted(present[name], key=str.lower)
        for value in values:
            if value in present[name]:
                continue
            hint = _suggestion(value, existing)
            raise NoMatchingDataError(
                f"{name}={value!r} appears on no file of {where}"
                + (f"; did you mean {hint!r}?" if hint else ".")
                + f" Values of {name} there: {', '.join(existing) or 'none'}."
            )


def is_held_out_key(key: str) -> bool:
    """True for keys of a held-out session (the bucket refuses them).

    Parameters
    ----------
    key : str
        Object key.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_held_out_key("derivatives/glmsingle-tedana/sub-03/ses-31/func/x.tsv")
    True
    """
    return any(f"/{ses}/" in f"/{key}/" or f"_{ses}_" in key for ses in layout.HELD_OUT_SESSIONS)


def subject_prefixes(subject: str, filters: Filters) -> tuple[str, ...]:
    """Folders listed for one subject (raw BIDS only when ``datatype`` is given).

    The filters apply to everything under them; the scope folders
    (anatomy, FreeSurfer, raw) are :func:`laion_fmri.download_scopes.listing_prefixes`.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    filters : Filters
        Normalised filters.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> subject_prefixes("sub-03", Filters())[0]
    'derivatives/glmsingle-tedana/sub-03/'
    """
    prefixes = [
        layout.subject_glm_prefix(subject),
        layout.roi_prefix(subject),
        layout.snapshot_roi_prefix(subject),
        layout.localizer_prefix(subject),
    ]
    if filters.datatype is not None:
        prefixes.append(layout.raw_subject_prefix(subject))
    return tuple(prefixes)


@dataclass
class Plan:
    """What a download will fetch.

    Parameters
    ----------
    objects : list of ObjectInfo
        Initial objects.
    held_out : list of ObjectInfo
        Initial held-out objects.
    n_matched : int
        Initial match count.
    gated : list of ObjectInfo
        Initial gated stimulus objects.

    Attributes
    ----------
    objects : list of ObjectInfo
        Selected objects, de-duplicated, in listing order.
    held_out : list of ObjectInfo
        Objects of held-out sessions that were dropped up front.
    n_matched : int
        Subject data objects that matched the filters (excludes dataset-level
        keys, pinned keys and stimuli, and ROI masks when ``ses`` is given).
    gated : list of ObjectInfo
        Stimulus files behind the data-use agreement that ``include_stimuli``
        adds (fetched by :func:`~laion_fmri.download.stimuli.download_stimuli`).

    Examples
    --------
    >>> p = Plan()
    >>> p.add(ObjectInfo("README", 10, None, None))
    >>> p.keys, p.total_bytes
    (['README'], 10)
    """

    objects: list[ObjectInfo] = field(default_factory=list)
    held_out: list[ObjectInfo] = field(default_factory=list)
    n_matched: int = 0
    gated: list[ObjectInfo] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        """Selected keys."""
        return [o.key for o in self.objects]

    @property
    def sizes(self) -> dict[str, int]:
        """Size in bytes per selected key."""
        return {o.key: o.size for o in self.objects}

    @property
    def total_bytes(self) -> int:
        """Sum of selected sizes."""
        return sum(o.size for o in self.objects)

    def add(self, obj: ObjectInfo) -> None:
        """Add an object unless its key is already planned.

        Parameters
        ----------
        obj : ObjectInfo
            The object.
        """
        if obj.key not in self._seen:
            self._seen.add(obj.key)
            self.objects.append(obj)

    def __post_init__(self) -> None:
        self._seen = {o.key for o in self.objects}

    def held_out_summary(self) -> str | None:
        """One line naming the held-out sessions skipped.

        Returns
        -------
        str or None
            ``None`` when nothing was held out.
        """
        if not self.held_out:
            return None
        sessions = sorted({s for o in self.held_out if (s := layout.session_of(o.key))})
        return (
            f"Skipping {len(self.held_out)} file(s) of held-out session(s) "
            f"{', '.join(sessions) or '?'}: they are withheld from public download."
        )

    def __str__(self) -> str:
        return f"{len(self.objects)} file(s), {format_bytes(self.total_bytes)}"


def select_subject(
    subject: str, listing: Iterable[ObjectInfo], filters: Filters, plan: Plan | None = None
) -> Plan:
    """Apply held-out removal, filters and pinning to one subject's listing.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    listing : iterable of ObjectInfo
        Objects under :func:`subject_prefixes`.
    filters : Filters
        Normalised filters.
    plan : Plan, optional
        A plan to extend (for several subjects).

    Returns
    -------
    Plan

    Examples
    --------
    >>> from laion_fmri.stores import ObjectInfo
    >>> objs = [ObjectInfo(k, 1, None, None) for k in (
    ...     "derivatives/glmsingle-tedana/sub-03/ses-31/func/sub-03_ses-31_trials.tsv",
    ...     "derivatives/glmsingle-tedana/sub-03/ses-01/func/sub-03_ses-01_trials.tsv")]
    >>> p = select_subject("sub-03", objs, Filters())
    >>> len(p.objects), len(p.held_out)
    (1, 1)
    """
    plan = plan if plan is not None else Plan()
    pinned = set(layout.brain_mask_keys(subject)) if filters.narrows_sessions else set()
    roi_prefixes = (layout.roi_prefix(subject), layout.snapshot_roi_prefix(subject))
    for obj in listing:
        if is_held_out_key(obj.key):
            # Only worth a mention when the filters would have selected it.
            if key_matches(obj.key, filters):
                plan.held_out.append(obj)
            continue
        if obj.key in pinned:
            plan.add(obj)
            continue
        is_roi = obj.key.startswith(roi_prefixes)
        if key_matches(obj.key, filters, use_ses=not is_roi):
            # ROIs ignore ``ses``, so they do not prove that a session filter matched.
            plan.n_matched += 0 if is_roi and filters.ses is not None else 1
            plan.add(obj)
    return plan


__all__ = [
    "Action",
    "Filters",
    "Plan",
    "check_filter_values",
    "decide",
    "format_bytes",
    "is_held_out_key",
    "key_matches",
    "select_subject",
    "subject_prefixes",
    "validate_n_jobs",
]
