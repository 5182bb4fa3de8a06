"""How ``download()`` takes in the scopes: the folders it lists and the pinned anatomical mask.

Pure: listings in, selections out (the scope rules themselves are in
:mod:`laion_fmri.download_scopes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from laion_fmri import layout
from laion_fmri.download_scopes import Listed, RawFilters, _key, scope_prefixes


def listing_prefixes(
    subject: str,
    *,
    include_anatomical: bool = False,
    include_freesurfer: bool = False,
    include_raw: bool = False,
) -> tuple[str, ...]:
    """The scope folders ``download()`` lists for one subject.

    The anatomical folder is always listed: it holds the anatomical brain
    mask (the default voxel axis), which comes with the subject's betas
    (:func:`pinned_anatomical`).

    Parameters
    ----------
    subject : str
        Canonical subject id.
    include_anatomical, include_freesurfer, include_raw : bool
        The scopes asked for.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> listing_prefixes("sub-03")
    ('derivatives/anatomical/sub-03/',)
    """
    return tuple(dict.fromkeys((
        layout.anatomical_prefix(subject),
        *scope_prefixes(subject, include_anatomical=include_anatomical,
                        include_freesurfer=include_freesurfer, include_raw=include_raw),
    )))


def fetches_betas(subject: str, keys: Iterable[str]) -> bool:
    """Whether ``keys`` hold a betas file of ``subject``.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    keys : iterable of str
        Planned keys.

    Returns
    -------
    bool

    Examples
    --------
    >>> fetches_betas("sub-03", [layout.betas_key("sub-03", "ses-01")])
    True
    >>> fetches_betas("sub-03", [layout.r2mean_key("sub-03")])
    False
    """
    for key in keys:
        parsed = layout.parse(key)
        if parsed is not None and parsed[0] == "betas" and parsed[1].get("subject") == subject:
            return True
    return False


def pinned_anatomical(subject: str, listing: Iterable[Listed],
                      planned_keys: Iterable[str]) -> list[Listed]:
    """The anatomical brain mask, when the plan fetches ``subject``'s betas.

    The mask defines the default voxel axis, so ``download()`` brings it
    with the betas (as it brings ``R2mean``), whatever the filters say.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    listing : iterable of ObjectInfo or str
        The listing of the anatomical folder (other keys are ignored).
    planned_keys : iterable of str
        Keys already selected for the subject.

    Returns
    -------
    list
        The mask item (empty when no betas are planned or the source lacks it).

    Examples
    --------
    >>> mask = layout.anatomical_brain_mask_key("sub-03")
    >>> pinned_anatomical("sub-03", [mask], [layout.betas_key("sub-03", "ses-01")]) == [mask]
    True
    >>> pinned_anatomical("sub-03", [mask], [layout.r2mean_key("sub-03")])
    []
    """
    if not fetches_betas(subject, planned_keys):
        return []
    mask = layout.anatomical_brain_mask_key(subject)
    return [item for item in listing if _key(item) == mask]


def raw_filters_for(ses: Sequence[str] | None, suffix: Sequence[str] | None,
                    extension: Sequence[str] | None) -> RawFilters | None:
    """The raw-tree filters of ``download(..., include_raw=True)``; ``None``: nothing passes.

    Parameters
    ----------
    ses : sequence of str, optional
        ``download``'s bare session values (may hold ``"averages"``).
    suffix, extension : sequence of str, optional
        ``download``'s exact suffixes and extensions.

    Returns
    -------
    RawFilters or None
        ``None`` when ``ses`` names only ``"averages"`` (the raw tree has none).

    Examples
    --------
    >>> raw_filters_for(("01", "averages"), None, None).ses
    ('ses-01',)
    >>> raw_filters_for(("averages",), None, None) is None
    True
    """
    sessions = None
    if ses is not None:
        sessions = tuple(f"ses-{v}" for v in ses if v != layout.AVERAGES)
        if not sessions:
            return None
    return RawFilters(ses=sessions, suffix=tuple(suffix) if suffix else None,
                      extension=tuple(extension) if extension else None)


__all__ = ["fetches_betas", "listing_prefixes", "pinned_anatomical", "raw_filters_for"]
