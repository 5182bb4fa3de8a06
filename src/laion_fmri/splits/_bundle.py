"""The compact on-disk form of the bundled splits: encode (used by the converter) and decode.

Several *generations* (versions) of the published files are bundled; they share
one ID table and one membership table per pool, so a split that did not change
between generations is stored once.

Format (two flat files in ``laion_fmri/splits/data/``)
------------------------------------------------------
``splits.npz`` (a zip of ``.npy`` arrays, no pickled objects):

* ``ids``: ``uint8`` UTF-8 bytes of every distinct image ID, sorted by code
  point and joined by ``"\\n"`` (IDs never contain a newline).
* ``members_<pool>``: ``uint16`` positions (ascending) into the ID table of
  every image that occurs in any split of that pool.
* ``codes_<pool>``: ``uint8`` array ``(n_rows, n_members)``; row ``r`` is one
  distinct split variant, ``0`` = not in the variant, ``1`` = train, ``2`` = test.
* ``order_<pool>``: ``uint16`` member columns of the ID lists that are not
  published in code-point order (the shuffled test folds of the 5-fold
  generation), concatenated; a variant names its ``[start, stop)`` slice.

``splits.json``: ``format``, ``versions`` (name and description, the default
first), ``pools``, ``splits``, ``ood_types`` and, per version, pool and split,
the header (``name``, ``pool`` text, ``splitter``, ``params``, ``n_train``,
``n_test``), the text layout of the published file (``indent``, ``newline``)
and ``variants`` as ``[{"variant_id", "row", "train_order"?, "test_order"?}]``.

ID lists in code-point order are an ascending selection of table positions;
the others are read through their ``order`` slice, so every list comes back
in its published order.
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

FORMAT_VERSION = 2
NPZ_NAME = "splits.npz"
JSON_NAME = "splits.json"

ABSENT, TRAIN, TEST = 0, 1, 2
HEADER_KEYS: tuple[str, ...] = ("name", "pool", "splitter", "params", "n_train", "n_test")
LIST_KEYS: tuple[str, ...] = ("train_ids", "test_ids")
# A fixed zip timestamp keeps the converter's output byte-for-byte reproducible.
_ZIP_DATE = (2025, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Published:
    """One published split file, as the converter reads it.

    Parameters
    ----------
    version : str
        The generation the file belongs to.
    pool : str
        The pool id it was published under.
    doc : mapping
        The parsed JSON document.
    text : str, optional
        The file's exact text; when given, its layout is recorded and the
        encoder checks that it can reproduce the text.
    """

    version: str
    pool: str
    doc: Mapping[str, Any]
    text: str | None = None


@dataclass(frozen=True)
class PoolTable:
    """Decoded membership of one pool: table positions, one code row per variant, list orders."""

    members: np.ndarray  # (n_members,) int64 positions into the ID table
    codes: np.ndarray  # (n_rows, n_members) uint8
    order: np.ndarray  # (n_ordered,) int64 member columns of unsorted lists


@dataclass(frozen=True)
class Bundle:
    """Every bundled split of every generation, decoded once per process."""

    ids: np.ndarray  # (n_ids,) object array of str, sorted by code point
    versions: Mapping[str, str]  # name -> description, default first
    pools: tuple[str, ...]
    splits: tuple[str, ...]
    ood_types: tuple[str, ...]
    headers: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]]  # version/pool/split
    tables: Mapping[str, PoolTable]

    @property
    def default_version(self) -> str:
        """The generation used when none is asked for."""
        return next(iter(self.versions))


def render_text(doc: Mapping[str, Any], indent: int | None, newline: bool) -> str:
    """A split document as JSON text in one of the published layouts.

    Examples
    --------
    >>> render_text({"name": "s"}, None, False)
    '{"name": "s"}'
    >>> render_text({"name": "s"}, 2, True)
    '{\\n  "name": "s"\\n}\\n'
    """
    return json.dumps(doc, indent=indent) + ("\n" if newline else "")


def _layout(published: Published) -> dict[str, Any]:
    if published.text is None:
        return {"indent": 2, "newline": False}
    for indent in (2, None):
        for newline in (False, True):
            if render_text(published.doc, indent, newline) == published.text:
                return {"indent": indent, "newline": newline}
    raise ValueError(
        f"{published.version}/{published.pool}/{published.doc['name']}: the text is in no known "
        "JSON layout (2-space or compact, with or without a final newline)."
    )


# --------------------------------------------------------------------------- encode
def encode(
    published: Sequence[Published],
    versions: Mapping[str, str],
    pools: Sequence[str],
    splits: Sequence[str],
    ood_types: Sequence[str],
) -> tuple[bytes, str]:
    """Encode published split documents into the bundled ``(npz bytes, json text)``.

    Parameters
    ----------
    published : sequence of Published
        Every split file of every generation.
    versions : mapping of str to str
        Generation names and descriptions; the first is the default.
    pools, splits, ood_types : sequence of str
        Catalogue order to record.

    Returns
    -------
    tuple of (bytes, str)
        Contents of ``splits.npz`` and ``splits.json``.

    Raises
    ------
    ValueError
        If a document is malformed (duplicated IDs, overlapping train/test,
        counts that disagree with the lists, missing files, unknown version or
        pool, text in an unknown layout).

    Examples
    --------
    >>> doc = {"name": "s", "pool": "p", "splitter": "x", "params": {}, "n_train": 1,
    ...        "n_test": 1, "variants": [{"variant_id": 0, "train_ids": ["a"], "test_ids": ["b"]}]}
    >>> npz, text = encode([Published("g1", "shared", doc)], {"g1": "first"}, ["shared"], ["s"], [])
    >>> json.loads(text)["headers"]["g1"]["shared"]["s"]["n_train"]
    1
    """
    ids = sorted({i for item in published for v in item.doc["variants"]
                  for key in LIST_KEYS for i in v[key]})
    if len(ids) > np.iinfo(np.uint16).max:
        raise ValueError(f"{len(ids)} IDs do not fit the uint16 position arrays.")
    if any("\n" in i for i in ids):
        raise ValueError("An image ID contains a newline; the ID table cannot store it.")
    position = {name: k for k, name in enumerate(ids)}
    headers: dict[str, dict[str, dict[str, Any]]] = {v: {p: {} for p in pools} for v in versions}
    # Per pool: distinct (train, test) position tuples -> row, and the ordered lists.
    rows: dict[str, dict[tuple[tuple[int, ...], tuple[int, ...]], int]] = {p: {} for p in pools}
    ordered: dict[str, list[tuple[int, ...]]] = {p: [] for p in pools}
    for item in published:
        version, pool, doc = item.version, item.pool, item.doc
        where = f"{version}/{pool}/{doc['name']}"
        if version not in headers:
            raise ValueError(f"{where}: unknown version {version!r}.")
        if pool not in headers[version]:
            raise ValueError(f"Document for unknown pool {pool!r}.")
        variants = []
        for variant in doc["variants"]:
            lists = [_positions(variant[key], position, f"{where} {key[:-4]}") for key in LIST_KEYS]
            train, test = lists
            if set(train) & set(test):
                raise ValueError(f"{where}: train and test overlap.")
            key = (tuple(sorted(train)), tuple(sorted(test)))
            row = rows[pool].setdefault(key, len(rows[pool]))
            entry: dict[str, Any] = {"variant_id": int(variant["variant_id"]), "row": row}
            for name, values in zip(LIST_KEYS, lists, strict=True):
                if any(b < a for a, b in pairwise(values)):
                    entry[name.replace("_ids", "_order")] = len(ordered[pool])
                    ordered[pool].append(tuple(values))
            variants.append(entry)
            if len(doc["variants"]) == 1 and (len(train), len(test)) != (
                doc["n_train"], doc["n_test"]
            ):
                raise ValueError(f"{where}: n_train/n_test disagree with the lists.")
        headers[version][pool][doc["name"]] = {
            **{k: doc[k] for k in HEADER_KEYS}, "text": _layout(item), "variants": variants
        }
    for version in versions:
        for pool in pools:
            missing = [s for s in splits if s not in headers[version][pool]]
            if missing:
                raise ValueError(f"Version {version!r}, pool {pool!r} lacks the splits {missing}.")

    arrays: dict[str, np.ndarray] = {
        "ids": np.frombuffer("\n".join(ids).encode("utf-8"), dtype=np.uint8)
    }
    for pool in pools:
        members = sorted({k for train, test in rows[pool] for k in (*train, *test)})
        column = {k: c for c, k in enumerate(members)}
        codes = np.zeros((len(rows[pool]), len(members)), dtype=np.uint8)
        for (train, test), r in rows[pool].items():
            codes[r, [column[k] for k in train]] = TRAIN
            codes[r, [column[k] for k in test]] = TEST
        # Replace each ordered-list index by its [start, stop) slice of order_<pool>.
        bounds, order, start = [], [], 0
        for values in ordered[pool]:
            order.extend(column[k] for k in values)
            bounds.append([start, start + len(values)])
            start += len(values)
        for version in versions:
            for header in headers[version][pool].values():
                for entry in header["variants"]:
                    for name in ("train_order", "test_order"):
                        if name in entry:
                            entry[name] = bounds[entry[name]]
        arrays[f"members_{pool}"] = np.asarray(members, dtype=np.uint16)
        arrays[f"codes_{pool}"] = codes
        arrays[f"order_{pool}"] = np.asarray(order, dtype=np.uint16)
    meta = {
        "format": FORMAT_VERSION,
        "n_ids": len(ids),
        "versions": dict(versions),
        "pools": list(pools),
        "splits": list(splits),
        "ood_types": list(ood_types),
        "headers": {
            v: {p: {s: headers[v][p][s] for s in splits} for p in pools} for v in versions
        },
    }
    return _write_npz(arrays), json.dumps(meta, indent=1, sort_keys=False) + "\n"


def _positions(names: Sequence[str], position: Mapping[str, int], where: str) -> list[int]:
    out = [position[n] for n in names]
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: IDs contain duplicates.")
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
    >>> doc = {"name": "s", "pool": "p", "splitter": "x", "params": {}, "n_train": 1,
    ...        "n_test": 0, "variants": [{"variant_id": 0, "train_ids": ["a"], "test_ids": []}]}
    >>> bundle = decode(*encode([Published("g1", "shared", doc)], {"g1": "first"},
    ...                         ["shared"], ["s"], []))
    >>> bundle.ids.tolist(), bundle.default_version
    (['a'], 'g1')
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
                order=archive[f"order_{pool}"].astype(np.int64),
            )
            for pool in meta["pools"]
        }
    if len(ids) != meta["n_ids"]:
        raise ValueError("The split bundle's ID table is truncated.")
    return Bundle(
        ids=ids,
        versions=meta["versions"],
        pools=tuple(meta["pools"]),
        splits=tuple(meta["splits"]),
        ood_types=tuple(meta["ood_types"]),
        headers=meta["headers"],
        tables=tables,
    )


def variant_positions(
    bundle: Bundle, pool: str, variant: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """ID-table positions of the train and test lists of one variant, in published order.

    Parameters
    ----------
    bundle : Bundle
        The decoded bundle.
    pool : str
        Pool id.
    variant : mapping
        One ``variants`` entry of a header (``row`` and optional orders).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``int64`` positions of the train and test IDs.
    """
    table = bundle.tables[pool]
    codes = table.codes[variant["row"]]
    out = []
    for code, name in ((TRAIN, "train_order"), (TEST, "test_order")):
        if name in variant:
            start, stop = variant[name]
            out.append(table.members[table.order[start:stop]])
        else:
            out.append(table.members[codes == code])
    return out[0], out[1]


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
