"""The bundled splits: exact reproduction of the published files, API, masks, errors, CLI."""

from __future__ import annotations

import gzip
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laion_fmri import splits
from laion_fmri.errors import LaionFMRIError, SplitError
from laion_fmri.splits import _bundle
from laion_fmri.splits._catalog import OOD_TYPE_RE

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "laion_fmri" / "splits" / "data"
_REFERENCE_CANDIDATES = (
    REPO.parent / "shared" / "reference",
    Path("/work/shared/reference"),
)
REFERENCE = next((p for p in _REFERENCE_CANDIDATES if (p / "splits").is_dir()), None)
needs_reference = pytest.mark.skipif(
    REFERENCE is None,
    reason="published split files not found at ../shared/reference/splits (relative to the "
    "repository) or /work/shared/reference/splits",
)
SUBJECT_POOLS = [p for p in splits.list_pools() if p != "shared"]
OOD_RE = re.compile(OOD_TYPE_RE.pattern)


def _published(pool: str, name: str) -> dict:
    assert REFERENCE is not None
    return json.loads(gzip.decompress((REFERENCE / "splits" / pool / f"{name}.json.gz").read_bytes()))


# --------------------------------------------------------------------------- bundled data
def _reference_text(folder: str, pool: str, name: str) -> str:
    assert REFERENCE is not None
    return gzip.decompress((REFERENCE / folder / pool / f"{name}.json.gz").read_bytes()).decode()


@needs_reference
@pytest.mark.parametrize(("folder", "version", "n_files"),
                         [("splits", "gen1", 72), ("splits-later", "gen3", 30)])
def test_both_generations_reproduce_the_published_files_byte_for_byte(
    folder: str, version: str, n_files: int
) -> None:
    files = sorted((REFERENCE / folder).glob("*/*.json.gz"))
    assert len(files) == n_files
    assert {f.parent.name for f in files} == set(splits.list_pools())
    for path in files:
        pool, name = path.parent.name, path.name.removesuffix(".json.gz")
        text = _reference_text(folder, pool, name)
        assert splits.published_text(name, pool, version=version) == text, (folder, pool, name)
        doc = json.loads(text)
        split = splits.load_split(name, pool, version=version)
        assert split.version == version and split.pool == pool
        assert (split.name, split.pool_description, split.splitter) == (
            doc["name"], doc["pool"], doc["splitter"])
        assert json.dumps(split.params) == json.dumps(doc["params"])  # key order too
        for ours, theirs in zip(split.variants, doc["variants"], strict=True):
            assert ours.train_ids == theirs["train_ids"]  # same order, same bytes
            assert ours.test_ids == theirs["test_ids"]  # gen3 folds keep their shuffled order
        train, test = splits.get_train_test_ids(name, pool, version=version)
        assert (train, test) == (doc["variants"][0]["train_ids"], doc["variants"][0]["test_ids"])


@needs_reference
def test_current_generation_is_the_default_and_shares_unchanged_splits() -> None:
    assert list(splits.list_versions()) == ["gen3", "gen1"]
    for pool in splits.list_pools():
        for name in splits.list_splits():
            default = splits.load_split(name, pool)
            assert default == splits.load_split(name, pool, version="gen3")
            old = splits.load_split(name, pool, version="gen1")
            assert old.version == "gen1" and default.version == "gen3"
            if name in ("tau", "ood"):  # unchanged upstream: the very same file
                assert splits.published_text(name, pool) == _reference_text("splits", pool, name)
            elif name.startswith("cluster_k5_"):  # same members, current header
                k = int(name[-1])
                assert old.variants == default.variants
                assert default.splitter == "kmeans_cluster_holdout"
                assert default.params == {"method": "kmeans_clip_k5_holdout",
                                          "feature_space": "CLIP", "n_clusters": 5,
                                          "seed": 2026, "n_init": 10, "held_out_cluster": k}
                assert splits.published_text(name, pool).endswith("]\n    }\n  ]\n}\n")
            else:  # random_k: entirely new members
                assert set(old.variants[0].test_ids) != set(default.variants[0].test_ids)
    # gen3 random folds are disjoint and cover the pool; duplicates' revision only in subjects
    for pool in splits.list_pools():
        folds = [set(splits.get_train_test_ids(f"random_{k}", pool)[1]) for k in range(5)]
        pool_ids = set(splits.get_train_test_ids("ood", pool)[0])
        assert sum(map(len, folds)) == len(set().union(*folds)) == len(pool_ids)
        revision = splits.load_split("random_2", pool).params.get("revision")
        assert revision == (None if pool == "shared" else 2)


@needs_reference
def test_converter_rebuilds_the_bundled_bytes(tmp_path: Path) -> None:
    import runpy

    convert = runpy.run_path(str(REPO / "scripts" / "convert_splits.py"))["convert"]
    npz_path, json_path = convert(REFERENCE / "splits", REFERENCE / "splits-later", tmp_path)
    assert npz_path.read_bytes() == (DATA / _bundle.NPZ_NAME).read_bytes()
    assert json_path.read_text("utf-8") == (DATA / _bundle.JSON_NAME).read_text("utf-8")


@needs_reference
def test_id_table_equals_the_published_label_list() -> None:
    labels = gzip.decompress((REFERENCE / "stimulus_labels.txt.gz").read_bytes())
    expected = labels.decode("utf-8").split("\n")[:-1]
    assert _bundle.bundled().ids.tolist() == expected


def test_bundle_is_compact_flat_and_pickle_free() -> None:
    entries = list(DATA.iterdir())
    # pyproject ships `splits/data/*`: nested folders would be left out of the wheel.
    assert all(p.is_file() for p in entries)
    assert {p.name for p in entries} >= {_bundle.NPZ_NAME, _bundle.JSON_NAME}
    assert sum(p.stat().st_size for p in entries) < 1_000_000
    with np.load(DATA / _bundle.NPZ_NAME, allow_pickle=False) as archive:
        for key in archive.files:
            assert archive[key].dtype != object, key
    with zipfile.ZipFile(DATA / _bundle.NPZ_NAME) as archive:
        assert all(info.filename.endswith(".npy") for info in archive.infolist())


def test_unchanged_splits_are_stored_once() -> None:
    bundle = _bundle.bundled()
    for pool in splits.list_pools():
        rows = {v["row"] for version in bundle.versions
                for header in bundle.headers[version][pool].values() for v in header["variants"]}
        # 12 gen1 splits + 5 new gen3 random folds; tau, ood and cluster_k5 are shared
        assert len(rows) == bundle.tables[pool].codes.shape[0] == 17


def test_encode_refuses_malformed_documents() -> None:
    def doc(train: list[str], test: list[str], n_train: int | None = None) -> dict:
        return {"name": "s", "pool": "p", "splitter": "x", "params": {},
                "n_train": len(train) if n_train is None else n_train, "n_test": len(test),
                "variants": [{"variant_id": 0, "train_ids": train, "test_ids": test}]}

    def enc(*docs: dict, splits_: tuple[str, ...] = ("s",), text: str | None = None):
        published = [_bundle.Published("g", "shared", d, text) for d in docs]
        return _bundle.encode(published, {"g": "only"}, ["shared"], list(splits_), [])

    with pytest.raises(ValueError, match="duplicates"):
        enc(doc(["a", "a"], []))
    with pytest.raises(ValueError, match="overlap"):
        enc(doc(["a"], ["a"]))
    with pytest.raises(ValueError, match="disagree"):
        enc(doc(["a"], ["b"], n_train=2))
    with pytest.raises(ValueError, match="lacks"):
        enc(doc(["a"], ["b"]), splits_=("s", "t"))
    with pytest.raises(ValueError, match="layout"):
        enc(doc(["a"], ["b"]), text="{ }")
    with pytest.raises(ValueError, match="unknown version"):
        _bundle.encode([_bundle.Published("h", "shared", doc(["a"], ["b"]))], {"g": "x"},
                       ["shared"], ["s"], [])
    # Unsorted lists are kept in their published order.
    unsorted = doc(["c", "a"], ["d", "b"])
    bundle = _bundle.decode(*enc(unsorted))
    header = bundle.headers["g"]["shared"]["s"]
    train, test = _bundle.variant_positions(bundle, "shared", header["variants"][0])
    assert bundle.ids[train].tolist() == ["c", "a"] and bundle.ids[test].tolist() == ["d", "b"]
    npz, text = enc(doc(["a", "c"], ["b"]))
    with pytest.raises(ValueError, match="format"):
        _bundle.decode(npz, json.dumps({**json.loads(text), "format": 99}))


# --------------------------------------------------------------------------- catalogue
def test_catalogue_order_and_types() -> None:
    assert splits.list_pools() == ["shared", "sub-01", "sub-03", "sub-05", "sub-06", "sub-07"]
    assert splits.list_splits() == [
        *(f"random_{k}" for k in range(5)),
        *(f"cluster_k5_{k}" for k in range(5)),
        "tau",
        "ood",
    ]
    types = splits.list_ood_types()
    assert types == sorted(types) and len(types) == 9
    _, ood_test = splits.get_train_test_ids("ood", "shared")
    assert set(types) == {OOD_RE.match(i).group(1) for i in ood_test}
    assert splits.load_split("ood", "shared").params["ood_types"] == types


@pytest.mark.parametrize(
    ("name", "family"),
    [("random_3", "random"), ("cluster_k5_0", "cluster_k5"), ("tau", "tau"), ("ood", "ood")],
)
def test_split_family(name: str, family: str) -> None:
    assert splits.load_split(name, "shared").split_family == family


def test_documented_counts() -> None:
    pools = {p: set(splits.load_split("ood", p).variants[0].train_ids) for p in splits.list_pools()}
    assert len(pools["shared"]) == 1121
    for pool in SUBJECT_POOLS:
        assert len(pools[pool]) == 5833
        assert pools["shared"] <= pools[pool]
    for a in SUBJECT_POOLS:
        for b in SUBJECT_POOLS:
            if a < b:
                assert pools[a] & pools[b] == pools["shared"]  # unique images are disjoint
    ood_tests = {tuple(splits.get_train_test_ids("ood", p)[1]) for p in splits.list_pools()}
    assert len(ood_tests) == 1 and len(next(iter(ood_tests))) == 371
    assert len(splits.get_train_test_ids("ood", "sub-01", ood_types=["shape"])[1]) == 82
    assert len(splits.get_train_test_ids("ood", "sub-01", ood_types=["shape", "unusual"])[1]) == 146
    assert len(splits.get_train_test_ids("ood", "shared", ood_types="gabor")[1]) == 10
    for name in ("random_0", "tau"):
        split = splits.load_split(name, "sub-01")
        assert (split.n_train, split.n_test) == (4666, 1167)
    everything = {i for p in splits.list_pools() for s in splits.load_all_splits(p).values()
                  for i in s.variants[0].all_ids()}
    assert len(everything) == 25052


def test_split_structure_invariants() -> None:
    for pool in splits.list_pools():
        loaded = splits.load_all_splits(pool)
        assert list(loaded) == splits.list_splits()
        pool_ids = set(loaded["ood"].variants[0].train_ids)
        folds = []
        for name, split in loaded.items():
            variant = split.variants[0]
            assert (len(variant.train_ids), len(variant.test_ids)) == (split.n_train, split.n_test)
            assert not set(variant.train_ids) & set(variant.test_ids)
            if name != "ood":
                assert set(variant.all_ids()) == pool_ids
            if split.split_family == "cluster_k5":
                folds.append(set(variant.test_ids))
        assert sum(map(len, folds)) == len(set().union(*folds)) == len(pool_ids)


def test_ood_type_filter_partitions_the_ood_test_set() -> None:
    train_all, test_all = splits.get_train_test_ids("ood", "sub-05")
    seen: list[str] = []
    for kind in splits.list_ood_types():
        train, test = splits.get_train_test_ids("ood", "sub-05", ood_types=kind)
        assert train == train_all  # only the test side is filtered
        assert test and all(OOD_RE.match(i).group(1) == kind for i in test)
        seen += test
    assert sorted(seen) == test_all
    both = splits.get_train_test_ids("ood", "sub-05", ood_types=("gabor", "shape", "gabor"))[1]
    assert both == sorted(i for i in test_all if OOD_RE.match(i).group(1) in {"gabor", "shape"})


def test_pool_spellings_and_fresh_copies() -> None:
    reference = splits.load_split("tau", "sub-03")
    for spelling in ("sub-03", "03", "3", 3, " sub-03 "):
        assert splits.load_split("tau", spelling) == reference
    assert splits.load_split("tau", "SHARED").pool == "shared"
    reference.variants[0].train_ids.clear()
    reference.params["method"] = "changed"
    again = splits.load_split("tau", "sub-03")
    assert len(again.variants[0].train_ids) == again.n_train
    assert again.params["method"] != "changed"
    train, test = splits.get_train_test_ids("tau", 3)
    assert (train, test) == (again.variants[0].train_ids, again.variants[0].test_ids)
    variant = again.variants[0]
    assert variant.all_ids() == variant.train_ids + variant.test_ids


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: splits.load_split("tua", "shared"), r"Unknown split 'tua'.*'tau'.*random_0"),
        (lambda: splits.load_split(None, "shared"), r"Unknown split None"),
        (lambda: splits.load_split("tau", "sub-02"), r"Unknown pool 'sub-02'.*shared, sub-01"),
        (lambda: splits.load_split("tau", "shraed"), r"Did you mean 'shared'"),
        (lambda: splits.load_split("tau", 2.5), r"Unknown pool 2\.5"),
        (lambda: splits.load_all_splits("pooled"), r"'pooled' pool .* not available"),
        (lambda: splits.get_split_masks(["x"], "tau", "Pooled"), r"'pooled' pool .* not available"),
        (lambda: splits.load_split("tau", "shared", version="gen2"),
         r"Unknown split version 'gen2'.*Generation 2 .* not bundled"),
        (lambda: splits.get_train_test_ids("tau", "shared", version="v1"), r"gen3, gen1"),
        (lambda: splits.load_all_splits("shared", version=3), r"Unknown split version 3"),
        (lambda: splits.get_train_test_ids("tau", "shared", ood_types="shape"),
         r"only valid for the 'ood' split"),
        (lambda: splits.get_train_test_ids("ood", "shared", ood_types="shap"),
         r"Unknown OOD type 'shap'.*'shape'.*cropped, gabor"),
        (lambda: splits.get_train_test_ids("ood", "shared", ood_types=["shape", 3]),
         r"Unknown OOD type 3"),
        (lambda: splits.get_train_test_ids("ood", "shared", ood_types=[]), r"selects no OOD type"),
        (lambda: splits.get_train_test_ids("tau", "shared", variant_id=1), r"variant_id 1.*0"),
        (lambda: splits.get_train_test_ids("tau", "shared", variant_id="0"), r"variant_id '0'"),
        (lambda: splits.get_train_test_ids("tau", "shared", variant_id=True), r"variant_id True"),
        (lambda: splits.get_split_masks(["x"], "random_9", "shared"), r"Unknown split"),
        (lambda: splits.get_split_masks(["x"], "ood", "sub-03", ood_types="x"), r"OOD type"),
        (lambda: splits.get_split_masks(pd.DataFrame({"stim": ["x"]}), "tau", "shared"),
         r"no 'label' or 'image_name' column.*stim"),
        (lambda: splits.get_split_masks("shared_4rep_x.jpg", "tau", "shared"), r"single string"),
        (lambda: splits.get_split_masks(np.array([["a"]]), "tau", "shared"), r"one-dimensional"),
    ],
)
def test_error_paths(call, pattern: str) -> None:
    with pytest.raises(SplitError, match=pattern) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, LaionFMRIError)


# --------------------------------------------------------------------------- masks
def _naive_masks(labels: list, train: list[str], test: list[str]) -> tuple[list, list]:
    train_set, test_set = set(train), set(test)
    return [x in train_set for x in labels], [x in test_set for x in labels]


def test_masks_equal_set_membership_for_every_split_and_input_type() -> None:
    rng = np.random.default_rng(0)
    all_ids = _bundle.bundled().ids.tolist()
    labels = [all_ids[i] for i in rng.integers(0, len(all_ids), 3000)]
    labels += ["blank", "", "SHARED_12REP_LAION_CLUSTER_1003_I0.JPG", None, float("nan"), 7]
    labels += [all_ids[0] + " ", all_ids[-1]]
    for pool in splits.list_pools():
        for name in splits.list_splits():
            train, test = splits.get_train_test_ids(name, pool)
            want_train, want_test = _naive_masks(labels, train, test)
            got_train, got_test = splits.get_split_masks(labels, name, pool)
            assert got_train.dtype == bool and got_train.shape == (len(labels),)
            assert got_train.tolist() == want_train and got_test.tolist() == want_test
            assert not (got_train & got_test).any()
    text = [x for x in labels if isinstance(x, str)]
    train, test = splits.get_train_test_ids("ood", "sub-07", ood_types=["cropped", "gabor"])
    want = _naive_masks(text, train, test)
    for form in (
        pd.DataFrame({"label": text, "image_name": ["blank"] * len(text)}),  # label wins
        pd.DataFrame({"image_name": text}),
        pd.Series(text),
        pd.Series(text, dtype=object),
        pd.Series(text, dtype="category"),
        pd.DataFrame({"label": pd.Categorical(text, categories=sorted({*text, "unused"}))}),
        pd.Categorical(text),
        pd.Index(text),
        np.array(text),  # fixed-width unicode
        np.array(text, dtype=object),
        tuple(text),
        iter(text),
    ):
        got = splits.get_split_masks(form, "ood", "sub-07", ood_types=["cropped", "gabor"])
        assert [m.tolist() for m in got] == list(want), type(form)


def test_masks_on_empty_and_unknown_trials() -> None:
    train, test = splits.get_split_masks([], "tau", "shared")
    assert train.shape == test.shape == (0,) and train.dtype == bool
    train, test = splits.get_split_masks(pd.DataFrame({"label": ["blank", "blank"]}), "tau", 1)
    assert not train.any() and not test.any()
    first = _bundle.bundled().ids[5]
    assert splits.label_positions(["zzz", first]).tolist() == [-1, 5]
    for missing in (
        pd.Series([first, None, np.nan], dtype="str"),
        pd.Series([first, None, None], dtype="string"),
        pd.Categorical([first, None, None]),
        np.array([first, first.encode(), None], dtype=object),  # bytes are not labels
    ):
        assert splits.label_positions(missing).tolist() == [5, -1, -1]


def test_masks_on_a_million_labels_are_fast() -> None:
    import time

    ids = splits.load_split("random_0", "sub-01").variants[0].all_ids()
    labels = np.random.default_rng(1).choice(np.array([*ids, "blank"], dtype=object), 1_000_000)
    splits.get_split_masks(labels[:10], "random_0", "sub-01")  # decode the bundle first
    start = time.perf_counter()
    train, test = splits.get_split_masks(labels, "random_0", "sub-01")
    elapsed = time.perf_counter() - start
    assert train.sum() + test.sum() == (labels != "blank").sum()
    assert elapsed < 1.0, f"masks over 1M labels took {elapsed:.2f} s"


# --------------------------------------------------------------------------- CLI
def test_cli_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    from laion_fmri.cli import main

    assert main(["splits", "list"]) == 0
    out = capsys.readouterr().out
    for word in (*splits.list_pools(), *splits.list_splits(), *splits.list_ood_types()):
        assert word in out
    assert main(["splits", "show", "cluster_k5_2", "--pool", "5"]) == 0
    out = capsys.readouterr().out
    split = splits.load_split("cluster_k5_2", "sub-05")
    assert f"n_train   {split.n_train}" in out and f"n_test    {split.n_test}" in out
    assert split.splitter in out and split.pool_description in out
    assert main(["splits", "show", "ood", "--pool", "shared", "--ood-types", "gabor",
                 "--ids", "test"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == splits.get_train_test_ids("ood", "shared", ood_types="gabor")[1]
    assert main(["splits", "show", "tua", "--pool", "shared"]) == 2
    assert "Did you mean 'tau'" in capsys.readouterr().err


def test_product_description_example_on_labels() -> None:
    """The split calls of the product page, on a trial table of real labels."""
    ids = _bundle.bundled().ids
    trials = pd.DataFrame({"label": np.concatenate([ids[:3000], ids[-500:], ids[:3000]])})
    betas = np.arange(len(trials) * 2, dtype=np.float32).reshape(len(trials), 2)
    train_mask, test_mask = splits.get_split_masks(trials, "random_0", pool="shared")
    assert train_mask.any() and test_mask.any()
    train_mask, test_mask = splits.get_split_masks(trials, "tau", pool="shared")
    assert not (train_mask & test_mask).any()
    for k in range(5):
        train_mask, test_mask = splits.get_split_masks(trials, f"cluster_k5_{k}", pool="shared")
        assert test_mask.any()
    train_mask, test_mask = splits.get_split_masks(
        trials, "ood", pool="shared", ood_types=["shape", "unusual", "cropped"]
    )
    X_train, X_test = betas[train_mask], betas[test_mask]
    test_labels = set(trials.label[test_mask])
    assert test_labels and {OOD_RE.match(x).group(1) for x in test_labels} <= {
        "shape", "unusual", "cropped"}
    assert X_train.shape == (int(train_mask.sum()), 2) and X_test.shape[0] == test_mask.sum()
