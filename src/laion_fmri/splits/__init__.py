"""The published re:vision train/test splits, bundled with the package.

Twelve splits (``random_0`` .. ``random_4``, ``cluster_k5_0`` .. ``cluster_k5_4``,
``tau``, ``ood``) for six pools (``shared`` and each subject). ``tau`` is
re:vision Method 1 (within distribution), ``cluster_k5_k`` Method 2 (held-out
CLIP cluster), ``ood`` Method 3 (out-of-distribution images, optionally by
type); ``random_k`` are 80/20 baselines. Two generations of the files are
bundled (:func:`list_versions`): ``"gen3"`` (default, the current reference
release, ``random_k`` = fold ``k`` of a shuffled 5-fold CV) and ``"gen1"`` (the
original release); every function takes ``version=``.

Examples
--------
>>> from laion_fmri.splits import get_split_masks
>>> train, test = get_split_masks(["shared_12rep_LAION_cluster_1003_i0.jpg"], "tau", "shared")
>>> bool(train[0] or test[0])
True
"""

from __future__ import annotations

from laion_fmri.splits._api import (
    get_split_masks,
    get_train_test_ids,
    label_positions,
    list_ood_types,
    list_pools,
    list_splits,
    list_versions,
    load_all_splits,
    load_split,
    published_text,
    trial_labels,
)
from laion_fmri.splits._model import Split, SplitVariant
from laion_fmri.splits._subject import subject_split

__all__ = [
    "Split",
    "SplitVariant",
    "get_split_masks",
    "get_train_test_ids",
    "label_positions",
    "list_ood_types",
    "list_pools",
    "list_splits",
    "list_versions",
    "load_all_splits",
    "load_split",
    "published_text",
    "subject_split",
    "trial_labels",
]
