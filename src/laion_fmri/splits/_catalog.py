"""Split catalogue facts and argument validation (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from laion_fmri.errors import SplitError, SubjectNotFoundError
from laion_fmri.layout import SUBJECTS, normalize_subject
from laion_fmri.vocab import suggest

SHARED_POOL = "shared"
POOLS: tuple[str, ...] = (SHARED_POOL, *SUBJECTS)
SPLIT_NAMES: tuple[str, ...] = (
    *(f"random_{k}" for k in range(5)),
    *(f"cluster_k5_{k}" for k in range(5)),
    "tau",
    "ood",
)
OOD_SPLIT = "ood"
# Group 1 is the OOD type; IDs that do not match have no type.
OOD_TYPE_RE = re.compile(r"^shared_4rep_OOD_([a-zA-Z0-9-]+)_.+\.(png|jpg)$")
FAMILIES: tuple[str, ...] = ("random", "cluster_k5", "tau", "ood")

# Generations of the published split files, the default first. The names follow
# the three generations of the published random splits; generation 2 (5-fold
# CV before the duplicate moves) is not bundled.
VERSIONS: dict[str, str] = {
    "gen3": (
        "current release (default): random_k = shuffled 5-fold CV, fold k (seed 42); in the "
        "subject pools 66 duplicate images moved so duplicates share a fold (params "
        "'revision': 2); tau and ood unchanged; cluster_k5_k same members under the "
        "current header (kmeans_cluster_holdout)"
    ),
    "gen1": (
        "original release: random_k = independent uniform 80/20 draws (seed k), "
        "not folds; tau, cluster_k5_k and ood as first published"
    ),
}
# Upstream has a seventh pool whose files were never made available to this package.
UNAVAILABLE_POOLS: dict[str, str] = {
    "pooled": "all 24,681 regular images of every subject; tau and cluster_k5_0..4 only",
}


def ood_type(image_id: str) -> str | None:
    """Return the OOD type of an image ID, or ``None`` for regular images.

    Examples
    --------
    >>> ood_type("shared_4rep_OOD_cropped_air_pump.png")
    'cropped'
    >>> ood_type("shared_12rep_LAION_cluster_1003_i0.jpg") is None
    True
    """
    match = OOD_TYPE_RE.match(image_id)
    return match.group(1) if match else None


def split_family(name: str) -> str:
    """Family of a split name: ``random``, ``cluster_k5``, ``tau``, ``ood`` or ``other``.

    Examples
    --------
    >>> split_family("cluster_k5_3")
    'cluster_k5'
    """
    for family in FAMILIES:
        if name == family or name.startswith(family + "_"):
            return family
    return "other"


def _unknown(kind: str, value: object, valid: Sequence[str], hint: str = "") -> SplitError:
    return SplitError(
        f"Unknown {kind} {value!r}.{suggest(value, valid)} Valid {kind}s: "
        f"{', '.join(map(str, valid))}.{hint}"
    )


def check_name(name: object, valid: Sequence[str] = SPLIT_NAMES) -> str:
    """Return ``name`` if it is a known split name.

    Raises
    ------
    SplitError
        Naming the valid splits and the closest matches.

    Examples
    --------
    >>> check_name("tau")
    'tau'
    """
    if not isinstance(name, str) or name not in valid:
        raise _unknown("split", name, valid)
    return name


def normalize_pool(pool: object, valid: Sequence[str] = POOLS) -> str:
    """Return the canonical pool id for ``"shared"``, ``"sub-03"``, ``"03"`` or ``3``.

    Raises
    ------
    SplitError
        Naming the valid pools and the closest matches; for ``"pooled"``,
        saying that its files are not available.

    Examples
    --------
    >>> normalize_pool(3)
    'sub-03'
    """
    if isinstance(pool, str) and pool.strip().lower() == SHARED_POOL:
        return SHARED_POOL
    if isinstance(pool, str) and pool.strip().lower() in UNAVAILABLE_POOLS:
        key = pool.strip().lower()
        raise SplitError(
            f"The {key!r} pool ({UNAVAILABLE_POOLS[key]}) exists in the reference release, but "
            "its split files are not available to this package, so it is not bundled and "
            "nothing is substituted for it. Use 'shared' or a subject pool "
            f"({', '.join(valid)})."
        )
    subjects = [p for p in valid if p != SHARED_POOL]
    try:
        return normalize_subject(pool, subjects)
    except SubjectNotFoundError:
        raise _unknown(
            "pool", pool, valid, " Subject pools also accept '03' or 3."
        ) from None


def normalize_ood_types(
    name: str, ood_types: str | Iterable[str] | None, valid: Sequence[str]
) -> tuple[str, ...] | None:
    """Validate an ``ood_types`` selection; return it as a tuple (``None`` keeps all).

    Parameters
    ----------
    name : str
        The split name; a selection is only valid for ``"ood"``.
    ood_types : str, iterable of str or None
        One type or several.
    valid : sequence of str
        The known OOD types.

    Returns
    -------
    tuple of str or None

    Raises
    ------
    SplitError
        For a non-``ood`` split, an unknown type or an empty selection.

    Examples
    --------
    >>> normalize_ood_types("ood", "gabor", ["gabor", "shape"])
    ('gabor',)
    """
    if ood_types is None:
        return None
    if name != OOD_SPLIT:
        raise SplitError(
            f"`ood_types` is only valid for the 'ood' split, not {name!r}; "
            "drop the argument or use name='ood'."
        )
    selected = (ood_types,) if isinstance(ood_types, str) else tuple(ood_types)
    for value in selected:
        if not isinstance(value, str) or value not in valid:
            raise _unknown("OOD type", value, valid)
    if not selected:
        raise SplitError(
            f"`ood_types` selects no OOD type; pass None for all or some of: {', '.join(valid)}."
        )
    return tuple(dict.fromkeys(selected))


def check_version(version: object, valid: Sequence[str]) -> str:
    """Return the generation name for ``version`` (``None`` = the default, ``valid[0]``).

    Raises
    ------
    SplitError
        Naming the valid generations and the closest matches.

    Examples
    --------
    >>> check_version(None, ["gen3", "gen1"])
    'gen3'
    >>> check_version("gen1", ["gen3", "gen1"])
    'gen1'
    """
    if version is None:
        return valid[0]
    if not isinstance(version, str) or version not in valid:
        raise _unknown(
            "split version", version, valid,
            " Generation 2 (5-fold CV before the duplicate moves) is not bundled. See "
            "`laion_fmri.splits.list_versions()` or `laion-fmri splits list`.",
        )
    return version


__all__ = [
    "FAMILIES",
    "OOD_SPLIT",
    "OOD_TYPE_RE",
    "POOLS",
    "SHARED_POOL",
    "SPLIT_NAMES",
    "check_name",
    "check_version",
    "normalize_ood_types",
    "normalize_pool",
    "ood_type",
    "split_family",
]
