"""The compact on-disk form of the bundled splits: encode (used by the converter) and decode.

Format (two flat files in ``laion_fmri/splits/data/``)
------------------------------------------------------
``splits.npz`` (a zip of ``.npy`` arrays, no pickled objects):

* ``ids``: ``uint8`` UTF-8 bytes of every distinct image ID, sorted by code
  point and joined by ``"\\n"`` (IDs never contain a newline).
* ``members_<pool>``: ``uint16`` positions (ascending) into the ID table of
  every image that occurs in any split of that pool.
* ``codes_<pool>``: ``uint8`` array ``(n_rows, n_members)``; row ``r`` is one
  split variant, ``0`` = not in the variant, ``1`` = train, ``2`` = test.

``splits.json``: ``format``, ``pools``, ``splits``, ``ood_types`` and, per
pool and split, the header (``name``, ``pool`` text, ``splitter``, ``params``,
``n_train``, ``n_test``) plus ``variants`` as ``[{"variant_id", "row"}]``.

Published ID lists are sorted by code point, exactly like the ID table, so an
ascending selection of table positions reproduces each list in its order.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import pairwise
from typing import Any

import numpy as np

FORMAT_VERSION = 1
NPZ_NAME = "splits.npz"
JSON_NAME = "splits.json"

ABSENT, TRAIN, TEST = 0, 1, 2
HEADER_KEYS: tuple[str, ...] = ("name", "pool", "splitter", "params", "n_train", "n_test")
# A fixed zip timestamp keeps the converter's output byte-for-byte reproducible.
_ZIP_DATE = (2025, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class PoolTable:
    """Decoded membership of one pool: table positions and one code row per variant."""

    members: np.ndarray  # (n_members,) int64 positions into the ID table
    codes: np.ndarray  # (n_rows, n_members) uint8


@dataclass(frozen=True)
class Bundle:
    """Every bundled split, decoded once per process."""

    ids: np.ndarray  # (n_ids,) object array of str, sorted by code point
    pools: tuple[str, ...]
    splits: tuple[str, ...]
    ood_types: tuple[str, ...]
    headers: Mapping[str, Mapping[str, Mapping[str, Any]]]
    tables: Mapping[str, PoolTable]


# --------------------------------------------------------------------------- encode
def encode(
    published: Sequence[tuple[str, Mapping[str, Any]]],
    pools: Sequence[str],
    splits: Sequence[str],
    ood_types: Sequence[str],
) -> tuple[bytes, str]:
    """Encode published split documents into the bundled ``(npz bytes, json text)``.

    Parameters
    ----------
    published : sequence of (pool, document)
        Each parsed split JSON with the pool id it was published under.
    pools, splits, ood_types : sequence of str
        Catalogue order to record.

    Returns
    -------
    tuple of (bytes, str)
        Contents of ``splits.npz`` and ``splits.json``.

    Raises
    ------
    ValueError
        If a document is malformed (unsorted or duplicated IDs, overlapping
        train/test, counts that disagree with the lists, missing files).

    Examples
    --------
    >>> doc = {"name": "s", "pool": "p", "splitter": "x", "params": {}, "n_train": 1,
    ...        "n_test": 1, "variants": [{"variant_id": 0, "train_ids": ["a"], "test_ids": ["b"]}]}
    >>> npz, text = encode([("shared", doc)], ["shared"], ["s"], [])
    >>> json.loads(text)["headers"]["shared"]["s"]["n_train"]
    1
    """
    ids = sorted({i for _, doc in published for v in doc["variants"]
                  for key in ("train_ids", "test_ids") for i in v[key]})
    if len(ids) > np.iinfo(np.uint16).max:
        raise ValueError(f"{len(ids)} IDs do not fit the uint16 position arrays.")
    if any("\n" in i for i in ids):
        raise ValueError("An image ID contains a newline; the ID table cannot store it.")
    position = {name: k for k, name in enumerate(ids)}
    headers: dict[str, dict[str, Any]] = {p: {} for p in pools}
    rows: dict[str, list[tuple[list[int], list[int]]]] = {p: [] for p in pools}
    for pool, doc in published:
        if pool not in headers:
            raise ValueError(f"Document for unknown pool {pool!r}.")
        variants = []
        for variant in doc["variants"]:
            train = _positions(variant["train_ids"], position, f"{pool}/{doc['name']} train")
            test = _positions(variant["test_ids"], position, f"{pool}/{doc['name']} test")
            if set(train) & set(test):
                raise ValueError(f"{pool}/{doc['name']}: train and test overlap.")
            variants.append({"variant_id": int(variant["variant_id"]), "row": len(rows[pool])})
            rows[pool].append((train, test))
        if len(doc["variants"]) == 1:
            n_train, n_test = (len(x) for x in rows[pool][-1])
            if (n_train, n_test) != (doc["n_train"], doc["n_test"]):
                raise ValueError(f"{pool}/{doc['name']}: n_train/n_test disagree with the lists.")
        headers[pool][doc["name"]] = {**{k: doc[k] for k in HEADER_KEYS}, "variants": variants}
    for pool in pools:
        missing = [s for s in splits if s not in headers[pool]]
        if missing:
            raise ValueError(f"Pool {pool!r} lacks the splits {missing}.")

    arrays: dict[str, np.ndarray] = {
        "ids": np.frombuffer("\n".join(ids).encode("utf-8"), dtype=np.uint8)
    }
    for pool in pools:
        members = sorted({k for train, test in rows[pool] for k in (*train, *test)})
        column = {k: c for c, k in enumerate(members)}
        codes = np.zeros((len(rows[pool]), len(members)), dtype=np.uint8)
        for r, (train, test) in enumerate(rows[pool]):
            codes[r, [column[k] for k in train]] = TRAIN
            codes[r, [column[k] for k in test]] = TEST
        arrays[f"members_{pool}"] = np.asarray(members, dtype=np.uint16)
        arrays[f"codes_{pool}"] = codes
    meta = {
        "format": FORMAT_VERSION,
        "n_ids": len(ids),
        "pools": list(pools),
        "splits": list(splits),
        "ood_types": list(ood_types),
        "headers": {p: {s: headers[p][s] for s in splits} for p in pools},
    }
    return _write_npz(arrays), json.dumps(meta, indent=1, sort_keys=False) + "\n"


def _positions(names: Sequence[str], position: Mapping[str, int], where: str) -> list[int]:
    out = [position[n] for n in names]
    if any(b <= a for a, b in pairwise(out)):
        raise ValueError(f"{where}: IDs are not sorted by code point or contain duplicates.")
    return out


def _write_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


# --------------------------------------------------------------------------- decode
def decode(npz: bytes, text: str) -> Bundle:
    """Decode the bundled ``(npz bytes, json text)`` into a :class:`Bundle`.

    Parameters
    ----------
    npz : bytes
        Contents of ``splits.npz``.
    text : str
        Contents of ``splits.json``.

    Returns
    -------
    Bundle

    Raises
    ------
    ValueError
        If the format version is unknown.

    Examples
    --------
    >>> bundle = decode(*encode([("shared", {"name": "s", "pool": "p", "splitter": "x",
    ...     "params": {}, "n_train": 1, "n_test": 0, "variants": [{"variant_id": 0,
    ...     "train_ids": ["a"], "test_ids": []}]})], ["shared"], ["s"], []))
    >>> bundle.ids.tolist()
    ['a']
    """
    meta = json.loads(text)
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"Unsupported split bundle format {meta.get('format')!r}.")
    with np.load(io.BytesIO(npz), allow_pickle=False) as archive:
        ids = np.array(archive["ids"].tobytes().decode("utf-8").split("\n"), dtype=object)
        tables = {
            pool: PoolTable(
                members=archive[f"members_{pool}"].astype(np.int64),
                codes=archive[f"codes_{pool}"],
            )
            for pool in meta["pools"]
        }
    if len(ids) != meta["n_ids"]:
        raise ValueError("The split bundle's ID table is truncated.")
    return Bundle(
        ids=ids,
        pools=tuple(meta["pools"]),
        splits=tuple(meta["splits"]),
        ood_types=tuple(meta["ood_types"]),
        headers=meta["headers"],
        tables=tables,
    )


@lru_cache(maxsize=1)
def bundled() -> Bundle:
    """The bundled splits shipped in ``laion_fmri/splits/data`` (decoded once)."""
    folder = resources.files("laion_fmri.splits") / "data"
    return decode((folder / NPZ_NAME).read_bytes(), (folder / JSON_NAME).read_text("utf-8"))


__all__ = [
    "FORMAT_VERSION",
    "HEADER_KEYS",
    "JSON_NAME",
    "NPZ_NAME",
    "Bundle",
    "PoolTable",
    "bundled",
    "decode",
    "encode",
]
