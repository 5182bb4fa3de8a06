"""The split data classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from laion_fmri.splits._catalog import split_family


@dataclass(frozen=True)
class SplitVariant:
    """One train/test partition of a split.

    Parameters
    ----------
    variant_id : int
        Variant number (the published splits have one variant, ``0``).
    train_ids, test_ids : list of str
        Image IDs, sorted by code point as published.

    Examples
    --------
    >>> v = SplitVariant(0, ["a.jpg"], ["b.jpg"])
    >>> v.all_ids()
    ['a.jpg', 'b.jpg']
    """

    variant_id: int
    train_ids: list[str]
    test_ids: list[str]

    def all_ids(self) -> list[str]:
        """Train then test IDs as one new list.

        Returns
        -------
        list of str
        """
        return [*self.train_ids, *self.test_ids]


@dataclass(frozen=True)
class Split:
    """A published split of one pool.

    Parameters
    ----------
    name : str
        Split name (``random_0`` .. ``random_4``, ``cluster_k5_0`` .. ``cluster_k5_4``,
        ``tau``, ``ood``).
    pool : str
        Pool id (``shared`` or ``sub-XX``).
    splitter : str
        Name of the method that made the split.
    params : dict
        The splitter's parameters as published.
    n_train, n_test : int
        Published list lengths.
    variants : list of SplitVariant
        The partitions (one in the published files).
    pool_description : str
        The free-text pool description inside the published file. It uses an
        internal subject numbering for some pools; rely on ``pool`` instead.
    version : str
        The generation of the published files this split comes from
        (``"gen3"`` current, ``"gen1"`` original; see
        :func:`laion_fmri.splits.list_versions`). Cite it with results.

    Examples
    --------
    >>> from laion_fmri.splits import load_split
    >>> split = load_split("tau", "shared")
    >>> split.split_family, split.n_train, split.n_test, split.version
    ('tau', 897, 224, 'gen3')
    """

    name: str
    pool: str
    splitter: str
    params: dict[str, Any]
    n_train: int
    n_test: int
    variants: list[SplitVariant] = field(default_factory=list)
    pool_description: str = ""
    version: str = ""

    @property
    def split_family(self) -> str:
        """``random``, ``cluster_k5``, ``tau``, ``ood`` or ``other``."""
        return split_family(self.name)


__all__ = [
    "Split",
    "SplitVariant",
]
