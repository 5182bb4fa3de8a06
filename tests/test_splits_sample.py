"""Every split applied to the sample dataset's trial tables, and ``subject_split``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laion_fmri import layout, splits
from laion_fmri.splits._catalog import ood_type

_REFERENCE = next(
    (
        p
        for p in (Path(__file__).resolve().parents[2] / "shared" / "reference",
                  Path("/work/shared/reference"))
        if (p / "splits").is_dir() and (p / "splits-later").is_dir()
    ),
    None,
)


def _expected_ids(name: str, pool: str, version: str) -> tuple[set[str], set[str]]:
    """The published lists when the reference files are around, else the bundled ones."""
    if _REFERENCE is not None:
        folder = "splits-later" if version == "gen3" and name.startswith("random_") else "splits"
        path = _REFERENCE / folder / pool / f"{name}.json.gz"
        doc = json.loads(gzip.decompress(path.read_bytes()))
        return set(doc["variants"][0]["train_ids"]), set(doc["variants"][0]["test_ids"])
    train, test = splits.get_train_test_ids(name, pool, version=version)
    return set(train), set(test)


@pytest.fixture(scope="module")
def sample_trials(sample_root: Path) -> dict[str, pd.DataFrame]:
    """Every subject's trial table (all sessions in the tree), read from the TSVs."""
    from laion_fmri.sample import spec_for

    spec = spec_for("tiny")
    tables = {}
    for subject in spec.subjects:
        parts = []
        for session in spec.all_sessions:
            path = sample_root / layout.trials_key(subject, session)
            parts.append(pd.read_csv(path, sep="\t", dtype={"label": str}, keep_default_na=False))
        tables[subject] = pd.concat(parts, ignore_index=True)
    return tables


@pytest.mark.parametrize("version", ["gen3", "gen1"])
def test_every_split_on_the_sample_trial_tables(
    sample_trials: dict[str, pd.DataFrame], version: str
) -> None:
    checked = 0
    for subject, trials in sample_trials.items():
        labels = trials["label"].to_numpy()
        present = set(labels)
        is_ood = np.array([ood_type(x) is not None for x in labels])
        for pool in ("shared", subject):
            for name in splits.list_splits():
                train_mask, test_mask = splits.get_split_masks(trials, name, pool, version=version)
                assert not (train_mask & test_mask).any()
                train_images, test_images = set(labels[train_mask]), set(labels[test_mask])
                assert not train_images & test_images
                published_train, published_test = _expected_ids(name, pool, version)
                # Counts equal the published n_train / n_test restricted to images present.
                assert train_images == published_train & present
                assert test_images == published_test & present
                assert train_images and test_images, (subject, pool, name)
                if pool == subject:
                    # The subject pool covers every regular image the subject saw.
                    covered = train_mask | test_mask
                    expected = np.ones_like(covered) if name == "ood" else ~is_ood
                    assert (covered == expected).all(), (subject, name)
                checked += 1
    assert checked == len(sample_trials) * 2 * len(splits.list_splits())


def test_other_subjects_unique_images_fall_in_no_split(
    sample_trials: dict[str, pd.DataFrame],
) -> None:
    subjects = list(sample_trials)
    for subject in subjects:
        other = next(s for s in splits.list_pools()[1:] if s != subject)
        trials = sample_trials[subject]
        unique = trials["label"].str.startswith("unique_").to_numpy()
        assert unique.any()
        for name in ("tau", "random_2", "cluster_k5_4", "ood"):
            train_mask, test_mask = splits.get_split_masks(trials, name, other)
            assert not (train_mask | test_mask)[unique].any()


def test_ood_types_on_the_sample(sample_trials: dict[str, pd.DataFrame]) -> None:
    trials = next(iter(sample_trials.values()))
    types = {ood_type(x) for x in trials["label"]} - {None}
    assert types
    for kind in sorted(types):
        train_mask, test_mask = splits.get_split_masks(trials, "ood", "shared", ood_types=[kind])
        assert test_mask.any()
        assert {ood_type(x) for x in trials["label"][test_mask]} == {kind}
        full_train, _ = splits.get_split_masks(trials, "ood", "shared")
        assert (train_mask == full_train).all()


# --------------------------------------------------------------------------- subject_split
@pytest.fixture
def subject(shared_downloaded: Path, monkeypatch: pytest.MonkeyPatch):
    subject_module = pytest.importorskip("laion_fmri.subject")
    monkeypatch.setenv("LAION_FMRI_DATA_DIR", str(shared_downloaded))
    return subject_module.load_subject("sub-03")


def _stacked(sub, **kw) -> tuple[np.ndarray, pd.DataFrame]:
    betas = sub.get_betas(session="all", **kw)
    metadata = sub.metadata
    order = [s for s in pd.unique(metadata["session"]) if s in betas]
    trials = pd.concat([metadata[metadata["session"] == s] for s in order])
    return np.concatenate([betas[s] for s in order], axis=0), trials


def test_subject_split_matches_masks_over_all_sessions(subject) -> None:
    x_all, trials = _stacked(subject)
    x_train, x_test, trials_train, trials_test = splits.subject_split(subject, "tau")
    train_mask, test_mask = splits.get_split_masks(trials, "tau", subject.subject_id)
    assert train_mask.any() and test_mask.any()
    np.testing.assert_array_equal(x_train, x_all[train_mask])
    np.testing.assert_array_equal(x_test, x_all[test_mask])
    pd.testing.assert_frame_equal(trials_train, trials[train_mask])
    pd.testing.assert_frame_equal(trials_test, trials[test_mask])
    assert not set(trials_train["label"]) & set(trials_test["label"])
    # The Subject method delegates here, and pool=None is the subject's own pool.
    x_train2, _, trials_train2, _ = subject.get_split("tau", pool=subject.subject_id)
    np.testing.assert_array_equal(x_train2, x_train)
    pd.testing.assert_frame_equal(trials_train2, trials_train)


def test_subject_split_generations(subject) -> None:  # type: ignore[no-untyped-def]
    x_all, trials = _stacked(subject)
    results = {}
    for version in ("gen3", "gen1"):
        x_train, x_test, _, trials_test = subject.get_split("random_0", version=version)
        train_mask, test_mask = splits.get_split_masks(trials, "random_0", subject.subject_id,
                                                       version=version)
        np.testing.assert_array_equal(x_train, x_all[train_mask])
        np.testing.assert_array_equal(x_test, x_all[test_mask])
        pd.testing.assert_frame_equal(trials_test, trials[test_mask])
        results[version] = set(trials_test["label"])
    assert results["gen3"] != results["gen1"]  # the generations have different members
    default = subject.get_split("random_0")[3]
    assert set(default["label"]) == results["gen3"]
    with pytest.raises(ValueError, match="Unknown split version"):
        subject.get_split("random_0", version="gen2")


def test_subject_split_pool_session_roi_and_ood_types(subject) -> None:
    session = subject.get_sessions()[0]
    roi = "FFA1"
    x_train, x_test, trials_train, trials_test = splits.subject_split(
        subject, "random_1", pool="shared", session=session, roi=roi
    )
    n_voxels = np.shape(subject.get_betas(session=session, roi=roi))[1]
    assert x_train.shape == (len(trials_train), n_voxels)
    assert x_test.shape == (len(trials_test), n_voxels)
    assert set(trials_train["session"]) == {session}
    assert trials_train["label"].str.startswith("shared_").all()
    _, x_ood, _, trials_ood = splits.subject_split(subject, "ood", ood_types="shape")
    assert len(trials_ood) == len(x_ood)
    assert {ood_type(x) for x in trials_ood["label"]} <= {"shape"}
    with pytest.raises(ValueError, match="only valid for the 'ood' split"):
        splits.subject_split(subject, "tau", ood_types="shape")


def test_subject_split_nc_threshold_needs_one_session(subject) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="one session, or a common mask"):
        subject.get_split("tau", nc_threshold=20)
    ses = subject.get_sessions()[0]
    x_train, x_test, _, _ = subject.get_split("tau", session=ses, nc_threshold=20)
    kept = int((subject.get_noise_ceiling(session=ses) >= 20).sum())
    assert x_train.shape[1] == x_test.shape[1] == kept


def test_product_description_split_example(shared_downloaded: Path, monkeypatch) -> None:
    """The product page's split example, unchanged, on the sample dataset."""
    pytest.importorskip("laion_fmri.subject")
    monkeypatch.setenv("LAION_FMRI_DATA_DIR", str(shared_downloaded))
    # --- begin: product description example --------------------------------------
    from laion_fmri.splits import get_split_masks
    from laion_fmri.subject import load_subject

    sub = load_subject("sub-03")
    sessions = sub.get_sessions()
    betas_per_session = sub.get_betas(session=sessions, roi="face")
    trials_per_session = sub.get_trial_info(session=sessions)

    betas = np.concatenate(list(betas_per_session.values()), axis=0)
    trials = pd.concat(list(trials_per_session.values()), ignore_index=True)

    train_mask, test_mask = get_split_masks(trials, "random_0", pool="shared")
    train_mask, test_mask = get_split_masks(trials, "tau", pool="shared")
    for k in range(5):
        train_mask, test_mask = get_split_masks(trials, f"cluster_k5_{k}", pool="shared")
    train_mask, test_mask = get_split_masks(
        trials, "ood", pool="shared", ood_types=["shape", "unusual", "cropped"]
    )
    X_train, X_test = betas[train_mask], betas[test_mask]
    # --- end -----------------------------------------------------------------------
    assert len(trials) == betas.shape[0]
    assert X_train.shape == (int(train_mask.sum()), betas.shape[1])
    assert X_test.shape == (int(test_mask.sum()), betas.shape[1])
    assert train_mask.any() and not (train_mask & test_mask).any()
    assert {ood_type(x) for x in trials["label"][test_mask]} <= {"shape", "unusual", "cropped"}
    assert trials["label"][train_mask].str.startswith("shared_").all()


def test_betas_and_trial_table_disagreement_is_reported() -> None:
    from laion_fmri.errors import CorruptFileError
    from laion_fmri.splits._subject import _session_order, _session_trials

    metadata = pd.DataFrame({"session": ["ses-02", "ses-02", "ses-01"], "label": ["a", "b", "c"]})
    assert _session_order(metadata, {"ses-01": None, "ses-02": None}) == ["ses-02", "ses-01"]
    with pytest.raises(CorruptFileError, match="ses-09"):
        _session_order(metadata, ["ses-01", "ses-09"])
    assert _session_trials(metadata, "ses-02", 2)["label"].tolist() == ["a", "b"]
    with pytest.raises(CorruptFileError, match="ses-01: the betas have 2 trials"):
        _session_trials(metadata, "ses-01", 2)
