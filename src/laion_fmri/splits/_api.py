"""Public functions over the bundled splits: catalogue, ID lists and trial masks."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from laion_fmri.errors import SplitError
from laion_fmri.splits._bundle import bundled, render_text, variant_positions
from laion_fmri.splits._catalog import (
    check_name,
    check_version,
    normalize_ood_types,
    normalize_pool,
    ood_type,
)
from laion_fmri.splits._model import Split, SplitVariant

LABEL_COLUMNS: tuple[str, ...] = ("label", "image_name")


# --------------------------------------------------------------------------- catalogue
def list_pools() -> list[str]:
    """Pools with published splits: ``shared`` then each subject.

    Returns
    -------
    list of str

    Examples
    --------
    >>> list_pools()
    ['shared', 'sub-01', 'sub-03', 'sub-05', 'sub-06', 'sub-07']
    """
    return list(bundled().pools)


def list_splits() -> list[str]:
    """Split names, in catalogue order.

    Returns
    -------
    list of str

    Examples
    --------
    >>> list_splits()[:2], list_splits()[-2:]
    (['random_0', 'random_1'], ['tau', 'ood'])
    """
    return list(bundled().splits)


def list_ood_types() -> list[str]:
    """The OOD image types accepted by ``ood_types=``, sorted.

    Returns
    -------
    list of str

    Examples
    --------
    >>> list_ood_types()[:3]
    ['cropped', 'gabor', 'gaudy']
    """
    return list(bundled().ood_types)


def list_versions() -> dict[str, str]:
    """Bundled generations of the split files and what distinguishes them, the default first.

    ``"gen3"`` (default) is the current reference release: ``random_k`` is
    fold ``k`` of a shuffled 5-fold CV with duplicate images kept in one fold.
    ``"gen1"`` is the original release (independent 80/20 ``random_k`` draws).
    ``tau`` and ``ood`` are the same in both; ``cluster_k5_k`` has the same
    members with a newer header. Pass the name as ``version=`` to any split
    function and cite it with your results (``Split.version``).

    Returns
    -------
    dict of str to str
        Generation name to description.

    Examples
    --------
    >>> list(list_versions())
    ['gen3', 'gen1']
    """
    return dict(bundled().versions)


def _resolve(
    name: object, pool: object, version: object = None
) -> tuple[str, str, str, dict[str, Any]]:
    bundle = bundled()
    name = check_name(name, bundle.splits)
    pool = normalize_pool(pool, bundle.pools)
    version = check_version(version, list(bundle.versions))
    return name, pool, version, dict(bundle.headers[version][pool][name])


def _variant(header: dict[str, Any], name: str, pool: str, variant_id: object) -> dict[str, Any]:
    rows = {v["variant_id"]: v for v in header["variants"]}
    if isinstance(variant_id, bool) or not isinstance(variant_id, (int, np.integer)) or (
        int(variant_id) not in rows
    ):
        raise SplitError(
            f"Unknown variant_id {variant_id!r} for split {name!r} in pool {pool!r}; "
            f"valid variant_id values: {', '.join(map(str, rows))}."
        )
    return rows[int(variant_id)]


@lru_cache(maxsize=1)
def _ood_type_of_ids() -> np.ndarray:
    """OOD type (or ``None``) of every ID in the table, computed once."""
    return np.array([ood_type(i) for i in bundled().ids], dtype=object)


def _filter_ood(test: np.ndarray, ood_types: tuple[str, ...] | None) -> np.ndarray:
    if ood_types is None:
        return test
    return test[np.isin(_ood_type_of_ids()[test], list(ood_types))]


def _positions(
    name: object,
    pool: object,
    variant_id: object,
    ood_types: str | Iterable[str] | None,
    version: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    name, pool, version, header = _resolve(name, pool, version)
    bundle = bundled()
    selected = normalize_ood_types(name, ood_types, bundle.ood_types)
    train, test = variant_positions(bundle, pool, _variant(header, name, pool, variant_id))
    return train, _filter_ood(test, selected)


# --------------------------------------------------------------------------- splits
def load_split(name: str, pool: str | int, version: str | None = None) -> Split:
    """Load one published split.

    Parameters
    ----------
    name : str
        One of :func:`list_splits`.
    pool : str or int
        ``"shared"`` or a subject (``"sub-03"``, ``"03"``, ``3``).
    version : str, optional
        Generation of the split files (:func:`list_versions`); ``None`` is the
        current one, ``"gen3"``.

    Returns
    -------
    Split
        A fresh object; changing it does not affect later calls.

    Raises
    ------
    SplitError
        If the name, pool or version is unknown (the message lists the valid
        ones), or for the ``"pooled"`` pool, whose files are not available.

    Examples
    --------
    >>> split = load_split("random_0", "sub-01")
    >>> split.pool, split.version, split.n_train, len(split.variants[0].test_ids)
    ('sub-01', 'gen3', 4666, 1167)
    >>> load_split("random_0", "sub-01", version="gen1").params
    {'method': 'uniform_random', 'seed': 0}
    """
    name, pool, version, header = _resolve(name, pool, version)
    bundle = bundled()
    variants = []
    for variant in header["variants"]:
        train, test = variant_positions(bundle, pool, variant)
        variants.append(
            SplitVariant(
                variant_id=variant["variant_id"],
                train_ids=bundle.ids[train].tolist(),
                test_ids=bundle.ids[test].tolist(),
            )
        )
    return Split(
        name=header["name"],
        pool=pool,
        splitter=header["splitter"],
        params=_copy_json(header["params"]),
        n_train=header["n_train"],
        n_test=header["n_test"],
        variants=variants,
        pool_description=header["pool"],
        version=version,
    )


def published_text(name: str, pool: str | int, version: str | None = None) -> str:
    """One split exactly as the reference published it: the JSON text of its file.

    Parameters
    ----------
    name : str
        One of :func:`list_splits`.
    pool : str or int
        ``"shared"`` or a subject.
    version : str, optional
        Generation (:func:`list_versions`); ``None`` is the current one.

    Returns
    -------
    str
        The file's text, byte for byte (key order, indentation, ASCII escapes
        and final newline as published).

    Raises
    ------
    SplitError
        For an unknown name, pool or version.

    Examples
    --------
    >>> import json
    >>> json.loads(published_text("tau", "shared"))["n_test"]
    224
    """
    name, pool, version, header = _resolve(name, pool, version)
    split = load_split(name, pool, version)
    doc = {
        "name": split.name,
        "pool": split.pool_description,
        "splitter": split.splitter,
        "params": split.params,
        "n_train": split.n_train,
        "n_test": split.n_test,
        "variants": [
            {"variant_id": v.variant_id, "train_ids": v.train_ids, "test_ids": v.test_ids}
            for v in split.variants
        ],
    }
    return render_text(doc, header["text"]["indent"], header["text"]["newline"])


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def load_all_splits(pool: str | int, version: str | None = None) -> dict[str, Split]:
    """Load every split of one pool.

    Parameters
    ----------
    pool : str or int
        ``"shared"`` or a subject.
    version : str, optional
        Generation (:func:`list_versions`); ``None`` is the current one.

    Returns
    -------
    dict of str to Split
        Keyed by split name, in :func:`list_splits` order.

    Raises
    ------
    SplitError
        If the pool or version is unknown.

    Examples
    --------
    >>> list(load_all_splits("shared"))[-1]
    'ood'
    """
    pool = normalize_pool(pool, bundled().pools)
    version = check_version(version, list(bundled().versions))
    return {name: load_split(name, pool, version) for name in list_splits()}


def get_train_test_ids(
    name: str,
    pool: str | int,
    variant_id: int = 0,
    ood_types: str | Iterable[str] | None = None,
    version: str | None = None,
) -> tuple[list[str], list[str]]:
    """Train and test image IDs of one split.

    Parameters
    ----------
    name : str
        One of :func:`list_splits`.
    pool : str or int
        ``"shared"`` or a subject.
    variant_id : int
        The variant (the published files have only ``0``).
    ood_types : str or iterable of str, optional
        Only for ``name="ood"``: keep only test images of these types
        (:func:`list_ood_types`). The train side is unchanged.
    version : str, optional
        Generation (:func:`list_versions`); ``None`` is the current one.

    Returns
    -------
    (list of str, list of str)
        New lists in published order (code-point order, except the shuffled
        test folds of ``random_k`` in ``"gen3"``).

    Raises
    ------
    SplitError
        For an unknown name, pool, version, variant or OOD type, an empty
        ``ood_types``, or ``ood_types`` given for a split other than ``ood``.

    Examples
    --------
    >>> train, test = get_train_test_ids("ood", "shared", ood_types=["shape", "unusual"])
    >>> len(train), len(test)
    (1121, 146)
    """
    train, test = _positions(name, pool, variant_id, ood_types, version)
    ids = bundled().ids
    return ids[train].tolist(), ids[test].tolist()


# --------------------------------------------------------------------------- masks
def trial_labels(trials: Any) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """Extract image labels from a trial table, a Series, an array or a list.

    Parameters
    ----------
    trials : DataFrame, Series, ndarray or sequence
        A DataFrame must have a ``label`` (preferred) or ``image_name`` column.

    Returns
    -------
    numpy.ndarray or pandas ExtensionArray
        One-dimensional labels (a pandas column keeps its own array type, so a
        categorical column stays categorical).

    Raises
    ------
    SplitError
        For a DataFrame without a label column, a bare string, or a
        multi-dimensional array.

    Examples
    --------
    >>> trial_labels(pd.DataFrame({"label": ["a.jpg"]})).tolist()
    ['a.jpg']
    """
    if isinstance(trials, pd.DataFrame):
        for column in LABEL_COLUMNS:
            if column in trials.columns:
                return trials[column].array
        raise SplitError(
            f"The trial table has no {' or '.join(map(repr, LABEL_COLUMNS))} column "
            f"(columns: {', '.join(map(str, trials.columns))}); pass the table from "
            "`get_trial_info` / `Subject.metadata` or the labels themselves."
        )
    if isinstance(trials, pd.Series | pd.Index):
        return trials.array
    if isinstance(trials, str | bytes):
        raise SplitError("Pass a sequence of trial labels, not a single string.")
    labels = trials if isinstance(trials, np.ndarray) else np.asarray(list(trials), dtype=object)
    if labels.ndim != 1:
        raise SplitError(f"Trial labels must be one-dimensional, got shape {labels.shape}.")
    return labels


@lru_cache(maxsize=1)
def _id_index() -> pd.Index:
    return pd.Index(bundled().ids)


def label_positions(labels: Any) -> np.ndarray:
    """Position of each label in the sorted ID table, ``-1`` for unknown labels.

    Parameters
    ----------
    labels : sequence of str, ndarray, Series or Categorical
        Trial labels (exact, case-sensitive image IDs).

    Returns
    -------
    numpy.ndarray
        ``intp`` positions, one per label.

    Examples
    --------
    >>> label_positions(["not-an-image", "shared_12rep_LAION_cluster_1003_i0.jpg"]).tolist()
    [-1, 0]
    """
    if isinstance(labels, pd.Series | pd.Index):
        labels = labels.array
    if isinstance(labels, pd.Categorical):
        # Hash only the categories; rows reuse them through their integer codes.
        by_code = np.append(_id_index().get_indexer(labels.categories), -1)
        return by_code[labels.codes]
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind in "US":
            labels = labels.astype(object)
    elif not isinstance(labels, pd.api.extensions.ExtensionArray):
        labels = np.asarray(list(labels), dtype=object)
    if len(labels) == 0:
        return np.zeros(0, dtype=np.intp)
    # One C-level hash lookup per label; the ID table is unique, so this is exact.
    return np.asarray(_id_index().get_indexer(labels), dtype=np.intp)


def get_split_masks(
    trials: Any,
    name: str,
    pool: str | int,
    variant_id: int = 0,
    ood_types: str | Iterable[str] | None = None,
    version: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train/test masks over trials for one split.

    Parameters
    ----------
    trials : DataFrame, Series, ndarray or sequence
        Trials to classify: a DataFrame with a ``label`` (or ``image_name``)
        column, or the labels themselves.
    name : str
        One of :func:`list_splits`.
    pool : str or int
        ``"shared"`` or a subject.
    variant_id : int
        The variant (the published files have only ``0``).
    ood_types : str or iterable of str, optional
        Only for ``name="ood"``: restrict the test side to these OOD types.
    version : str, optional
        Generation (:func:`list_versions`); ``None`` is the current one.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``train_mask`` and ``test_mask``, boolean, one entry per trial. Labels
        in neither list (other pools, blanks, unknown names) are ``False`` in
        both; the masks never overlap.

    Raises
    ------
    SplitError
        For unknown split arguments or unusable ``trials``.

    Examples
    --------
    >>> labels = ["shared_4rep_OOD_gabor_gabor-01-top-left.jpg",
    ...           "shared_12rep_LAION_cluster_1003_i0.jpg", "unknown.jpg"]
    >>> train, test = get_split_masks(labels, "ood", "shared", ood_types="gabor")
    >>> train.tolist(), test.tolist()
    ([False, True, False], [True, False, False])
    """
    train, test = _positions(name, pool, variant_id, ood_types, version)
    labels = trial_labels(trials)
    n_ids = len(bundled().ids)
    # One extra False slot so position -1 (unknown label) looks up False.
    train_lookup = np.zeros(n_ids + 1, dtype=bool)
    test_lookup = np.zeros(n_ids + 1, dtype=bool)
    train_lookup[train] = True
    test_lookup[test] = True
    positions = label_positions(labels)
    return train_lookup[positions], test_lookup[positions]


__all__ = [
    "LABEL_COLUMNS",
    "get_split_masks",
    "get_train_test_ids",
    "label_positions",
    "list_ood_types",
    "list_pools",
    "list_splits",
    "load_all_splits",
    "load_split",
    "trial_labels",
]
