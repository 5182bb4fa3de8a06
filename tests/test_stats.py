"""laion_fmri.stats: z-scoring, repeat averaging, noise ceiling."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from laion_fmri import layout
from laion_fmri.errors import StatsInputError
from laion_fmri.sample import spec_for
from laion_fmri.stats import average_repeats, noise_ceiling, zscore_by_session


def _reference_nc(betas: np.ndarray, labels: list[str], runs: list[object] | None) -> np.ndarray:
    """Plain-loop transcription of DATASET.md 3.5, one voxel at a time."""
    labels = list(labels)
    runs = [0] * len(labels) if runs is None else list(runs)
    out = []
    for v in range(betas.shape[1]):
        z = np.empty(len(labels))
        for r in set(runs):
            idx = [i for i, x in enumerate(runs) if x == r]
            col = betas[idx, v].astype(float)
            sd = col.std()
            z[idx] = (col - col.mean()) / sd if sd > 0 else 0.0
        groups = {}
        for i, lab in enumerate(labels):
            groups.setdefault(lab, []).append(z[i])
        reps = [np.array(g) for g in groups.values() if len(g) >= 2]
        noise = np.mean([g.var(ddof=1) for g in reps])
        signal = max(0.0, 1.0 - noise)
        k = np.mean([1.0 / len(g) for g in reps])
        if not np.any(z != 0):
            out.append(0.0)
        elif noise == 0:
            out.append(100.0)
        else:
            ncsnr2 = signal / noise
            out.append(100.0 * ncsnr2 / (ncsnr2 + k))
    return np.array(out)


# --------------------------------------------------------------------------- noise ceiling
def test_noise_ceiling_hand_computed() -> None:
    # One voxel, images a (x2) and b (x2), no runs.
    betas = np.array([[2.0], [4.0], [-1.0], [-1.0]])
    # mean 1, population sd sqrt((1 + 9 + 4 + 4) / 4) = sqrt(4.5)
    z = (betas[:, 0] - 1.0) / np.sqrt(4.5)
    noise = (np.var(z[:2], ddof=1) + np.var(z[2:], ddof=1)) / 2  # = (2/4.5)/2
    assert noise == pytest.approx(2 / 9)
    signal = 1 - noise
    expected = 100 * (signal / noise) / (signal / noise + 0.5)
    assert expected == pytest.approx(100 * (7 / 9) / (7 / 9 + 1 / 9))  # = 87.5
    got = noise_ceiling(betas, ["a", "a", "b", "b"])
    assert got.shape == (1,)
    assert got[0] == pytest.approx(87.5)


def test_noise_ceiling_limits() -> None:
    labels = ["a", "a", "b", "b", "c", "c"]
    betas = np.column_stack([
        [1.0, 1.0, 5.0, 5.0, 3.0, 3.0],   # repeats identical -> 100
        [1.0, 5.0, 1.0, 5.0, 1.0, 5.0],   # all variance within images -> 0
        [7.0] * 6,                        # constant -> 0, not NaN
        [1.0, np.nan, 2.0, 3.0, 4.0, 5.0],  # NaN propagates
    ])
    nc = noise_ceiling(betas, labels)
    assert nc[0] == pytest.approx(100.0)
    assert nc[1] == pytest.approx(0.0)
    assert nc[2] == 0.0
    assert np.isnan(nc[3])


def test_noise_ceiling_matches_loop_reference_with_runs_and_singletons() -> None:
    rng = np.random.default_rng(3)
    labels = ["a", "b", "a", "c", "d", "b", "c", "e", "a", "f", "d", "f"]  # e: single repeat
    runs = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    betas = rng.standard_normal((12, 40)) + np.repeat(rng.standard_normal((1, 40)), 12, axis=0)
    betas[:, :5] += 3 * np.array([hash(x) % 7 for x in labels])[:, None]
    got = noise_ceiling(betas, labels, runs=runs)
    np.testing.assert_allclose(got, _reference_nc(betas, labels, runs), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(noise_ceiling(betas, labels), _reference_nc(betas, labels, None),
                               rtol=1e-10, atol=1e-10)
    assert ((got >= 0) & (got <= 100)).all()


def test_noise_ceiling_single_repeats_are_ignored() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 3))
    labels = ["a", "a", "b", "b", "c", "c"]
    extra = rng.standard_normal((2, 3))
    # Adding two single-presentation images changes only the z-scoring, not the selection.
    full = np.vstack([base, extra])
    got = noise_ceiling(full, [*labels, "x", "y"])
    np.testing.assert_allclose(got, _reference_nc(full, [*labels, "x", "y"], None))


def test_noise_ceiling_planted_signal_ranks_voxels() -> None:
    rng = np.random.default_rng(1)
    images = rng.standard_normal(30)
    labels = [f"img{i}" for i in range(30)] * 3
    truth = np.tile(images, 3)
    betas = np.column_stack([truth * a + rng.standard_normal(90) for a in (0.0, 1.0, 3.0)])
    nc = noise_ceiling(betas, labels)
    assert nc[0] < nc[1] < nc[2]
    assert nc[2] > 80


@pytest.mark.parametrize(
    ("betas", "labels", "runs"),
    [
        (np.zeros(4), ["a", "a", "b", "b"], None),             # 1-D
        (np.zeros((4, 2)), ["a", "a", "b"], None),              # wrong label length
        (np.zeros((3, 2)), ["a", "b", "c"], None),              # no repeats
        (np.zeros((4, 2)), ["a", "a", "b", "b"], [1, 2]),       # wrong runs length
        (np.array([["x", "y"]] * 2), ["a", "a"], None),         # not numeric
        (np.zeros((2, 2)), ["a", None], None),                  # missing label
    ],
)
def test_noise_ceiling_bad_input(betas: np.ndarray, labels: list, runs: list | None) -> None:
    with pytest.raises(StatsInputError):
        noise_ceiling(betas, labels, runs=runs)


# --------------------------------------------------------------------------- z-scoring
def test_zscore_by_session_per_group_nan_and_constant() -> None:
    betas = np.array(
        [[1.0, 2.0, 5.0], [3.0, 2.0, np.nan], [5.0, 2.0, 7.0],
         [10.0, 4.0, 1.0], [30.0, 4.0, 3.0]],
        dtype=np.float32,
    )
    sessions = ["ses-01", "ses-01", "ses-01", "ses-02", "ses-02"]
    z = zscore_by_session(betas, sessions)
    assert z.dtype == np.float32 and z.shape == betas.shape
    s1 = z[:3, 0]
    np.testing.assert_allclose(s1, [-np.sqrt(1.5), 0, np.sqrt(1.5)], rtol=1e-6)
    np.testing.assert_allclose(z[3:, 0], [-1, 1])
    assert (z[:, 1] == 0).all()  # constant within each session
    assert np.isnan(z[1, 2])  # NaN stays NaN ...
    np.testing.assert_allclose(z[[0, 2], 2], [-1, 1])  # ... and is ignored in the statistics
    assert zscore_by_session(betas.astype(np.float64), sessions).dtype == np.float64


def test_zscore_by_session_bad_input() -> None:
    with pytest.raises(StatsInputError):
        zscore_by_session(np.zeros((3, 2)), ["a", "b"])


# --------------------------------------------------------------------------- averaging
def test_average_repeats_first_appearance_order() -> None:
    betas = np.arange(12, dtype=np.float32).reshape(6, 2)
    means, names, counts = average_repeats(betas, ["c", "a", "c", "b", "a", "c"])
    assert names.tolist() == ["c", "a", "b"]
    assert counts.tolist() == [3, 2, 1]
    np.testing.assert_allclose(means[0], betas[[0, 2, 5]].mean(axis=0))
    np.testing.assert_allclose(means[1], betas[[1, 4]].mean(axis=0))
    np.testing.assert_allclose(means[2], betas[3])
    assert means.dtype == np.float32


def test_average_repeats_bad_input() -> None:
    with pytest.raises(StatsInputError):
        average_repeats(np.zeros((3, 2)), ["a", "b"])


# --------------------------------------------------------------------------- sample files
def test_session_noise_ceiling_files_match(sample_root) -> None:  # type: ignore[no-untyped-def]
    spec = spec_for("tiny")
    brain = spec.brain_mask()
    for subject in spec.subjects:
        for session in spec.all_sessions:
            betas = nib.load(sample_root / layout.betas_key(subject, session)).get_fdata()
            trials = pd.read_csv(sample_root / layout.trials_key(subject, session), sep="\t")
            stored = nib.load(sample_root / layout.session_nc_key(subject, session)).get_fdata()
            got = noise_ceiling(betas[brain].T, trials["label"], runs=trials["run"])
            np.testing.assert_allclose(got, stored[brain], atol=1e-3, equal_nan=True)
            assert (stored[~brain] == 0).all()


def test_subject_noise_ceiling_files_match(sample_root) -> None:  # type: ignore[no-untyped-def]
    spec = spec_for("tiny")
    brain = spec.brain_mask()
    for subject in spec.subjects:
        betas, trials = [], []
        for session in spec.sessions:  # held-out sessions do not enter
            betas.append(nib.load(sample_root / layout.betas_key(subject, session))
                         .get_fdata()[brain].T)
            trials.append(pd.read_csv(sample_root / layout.trials_key(subject, session), sep="\t"))
        values = np.concatenate(betas)
        table = pd.concat(trials, ignore_index=True)
        reduced = table["label"].isin(spec.reduced_images(subject))
        twelve = table["label"].str.startswith("shared_12rep_")
        selections = {"Noiseceiling12rep": twelve & ~reduced,
                      "Noiseceiling4rep": ~twelve & ~reduced,
                      "NoiseceilingAllrep": pd.Series(True, index=table.index)}
        for desc, sel in selections.items():
            sel = sel.to_numpy()
            stored = nib.load(sample_root / layout.subject_nc_key(subject, desc)).get_fdata()
            got = noise_ceiling(values[sel], table["label"][sel], runs=table["session"][sel])
            np.testing.assert_allclose(got, stored[brain], atol=1e-3, equal_nan=True)


def test_noise_ceiling_voxels_are_independent_across_chunks() -> None:
    rng = np.random.default_rng(5)
    labels = [f"i{k}" for k in range(6)] * 2
    betas = rng.standard_normal((12, 9000)).astype(np.float32)  # more than one voxel block
    full = noise_ceiling(betas, labels)
    np.testing.assert_allclose(full[:10], noise_ceiling(betas[:, :10], labels))
    np.testing.assert_allclose(full[-10:], noise_ceiling(betas[:, -10:], labels))
    np.testing.assert_allclose(full[-10:], _reference_nc(betas[:, -10:], labels, None), atol=1e-6)
