"""``laion_fmri.torch.SubjectDataset``: items, alignment, workers, z-scoring, memory."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from laion_fmri import layout  # noqa: E402
from laion_fmri.errors import MissingDependencyError, StimuliNotDownloadedError  # noqa: E402
from laion_fmri.sample import spec_for  # noqa: E402
from laion_fmri.stats import zscore_by_session  # noqa: E402
from laion_fmri.stimuli import load_stimuli  # noqa: E402
from laion_fmri.subject import load_subject  # noqa: E402
from laion_fmri.torch import SubjectDataset  # noqa: E402

pytestmark = pytest.mark.torch

SPEC = spec_for("tiny")
SUBJECT = SPEC.subjects[0]
SESSION = SPEC.sessions[0]


@pytest.fixture(scope="module")
def sub(shared_downloaded: Path):  # type: ignore[no-untyped-def]
    return load_subject(SUBJECT, data_dir=shared_downloaded)


def stacked(sub, sessions, **kw) -> np.ndarray:  # type: ignore[no-untyped-def]
    parts = sub.get_betas(list(sessions), **kw)
    return np.concatenate([parts[s] for s in sessions], axis=0)


def test_items_and_shapes(sub) -> None:  # type: ignore[no-untyped-def]
    ds = SubjectDataset(sub, session=SESSION, roi="face", features=("image", "CLIP", "dinov2"),
                        image_size=16)
    assert len(ds) == SPEC.n_trials_in(SUBJECT, SESSION)
    n_face = int(sub.get_roi_mask("face").sum())
    assert ds.n_voxels == n_face and ds.memory_mapped
    item = ds[3]
    assert set(item) == {"betas", "image", "CLIP", "dinov2", "label", "session", "trial"}
    assert item["betas"].dtype == torch.float32 and tuple(item["betas"].shape) == (n_face,)
    assert item["image"].dtype == torch.uint8 and tuple(item["image"].shape) == (3, 16, 16)
    assert item["CLIP"].dtype == torch.float32
    assert tuple(item["CLIP"].shape) == (layout.EMBEDDING_DIMS["CLIP"],)
    assert tuple(item["dinov2"].shape) == (layout.EMBEDDING_DIMS["DINOv2"],)
    assert item["session"] == SESSION and item["trial"] == 3
    assert ds[-1]["trial"] == ds[len(ds) - 1]["trial"]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_rows_align_with_betas_metadata_and_embeddings(sub) -> None:  # type: ignore[no-untyped-def]
    sessions = sub.get_sessions()
    ds = SubjectDataset(sub, session="all", features=("CLIP",))
    betas = stacked(sub, sessions)
    meta = sub.metadata
    assert len(ds) == betas.shape[0] == len(meta)
    for i in range(len(ds)):
        item = ds[i]
        np.testing.assert_array_equal(item["betas"].numpy(), betas[i])  # NaN == NaN here
        assert item["trial"] == i
        assert item["label"] == meta["image_name"].iloc[i]
        assert item["session"] == meta["session"].iloc[i]
        np.testing.assert_array_equal(
            item["CLIP"].numpy(), sub.embeddings.get("CLIP", i, dtype=np.float32)
        )


def test_session_order_follows_the_caller(sub) -> None:  # type: ignore[no-untyped-def]
    order = [SPEC.sessions[1], SPEC.sessions[0]]
    ds = SubjectDataset(sub, session=order, roi="FFA1", features=())
    betas = stacked(sub, order, roi="FFA1")
    meta = sub.metadata
    expected_trials = np.concatenate([meta.index[meta["session"] == s] for s in order])
    np.testing.assert_array_equal(ds.trials, expected_trials)
    for i in (0, len(ds) - 1):
        np.testing.assert_array_equal(ds[i]["betas"].numpy(), betas[i])
    assert set(ds[0]) == {"betas", "label", "session", "trial"}


def test_images_native_resized_and_transformed(sub) -> None:  # type: ignore[no-untyped-def]
    native = SubjectDataset(sub, session=SESSION, features=("image",))
    full = np.asarray(sub.images.get(5).convert("RGB"))
    np.testing.assert_array_equal(native[5]["image"].numpy().transpose(1, 2, 0), full)
    small = SubjectDataset(sub, session=SESSION, features=("image",), image_size=(8, 12))
    img = small[5]["image"].numpy()
    assert img.shape == (3, 8, 12)
    # Downscaling keeps the picture: mean colour within a few grey levels.
    assert np.abs(img.reshape(3, -1).mean(1) - full.reshape(-1, 3).mean(0)).max() < 6
    seen = []

    def transform(pil):  # type: ignore[no-untyped-def]
        seen.append(pil.mode)
        return torch.tensor(pil.size)

    tds = SubjectDataset(sub, session=SESSION, features=("image",), transform=transform)
    assert tds[0]["image"].tolist() == [SPEC.image_size, SPEC.image_size]
    rds = SubjectDataset(sub, session=SESSION, features=("image",), transform=transform,
                         image_size=10)
    assert rds[0]["image"].tolist() == [10, 10] and seen == ["RGB", "RGB"]


def test_dataloader_with_two_workers(sub) -> None:  # type: ignore[no-untyped-def]
    sessions = list(SPEC.sessions[:2])
    ds = SubjectDataset(sub, session=sessions, roi="face", features=("image", "CLIP"),
                        image_size=16)
    ds[0]  # open handles in the parent first: workers must not reuse them
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=False)
    batches = list(loader)
    betas = torch.cat([b["betas"] for b in batches]).numpy()
    np.testing.assert_array_equal(betas, stacked(sub, sessions, roi="face"))
    trials = torch.cat([b["trial"] for b in batches]).numpy()
    np.testing.assert_array_equal(trials, ds.trials)
    assert batches[0]["image"].shape == (8, 3, 16, 16)
    clip = torch.cat([b["CLIP"] for b in batches]).numpy()
    np.testing.assert_array_equal(clip, sub.embeddings.get("CLIP", ds.trials, dtype=np.float32))
    labels = [name for b in batches for name in b["label"]]
    assert labels == sub.metadata["image_name"].iloc[ds.trials].tolist()


def test_spawned_workers_rebuild_their_own_handles(sub) -> None:  # type: ignore[no-untyped-def]
    # "spawn" pickles the dataset into fresh interpreters (the macOS/Windows default).
    ds = SubjectDataset(sub, session=SESSION, roi="FFA1", features=("image",), image_size=8)
    ds[0]
    loader = torch.utils.data.DataLoader(
        ds, batch_size=16, num_workers=2, multiprocessing_context="spawn"
    )
    betas = torch.cat([b["betas"] for b in loader]).numpy()
    np.testing.assert_array_equal(betas, sub.get_betas(SESSION, roi="FFA1"))


def test_pickle_carries_no_open_handles_and_little_data(sub) -> None:  # type: ignore[no-untyped-def]
    ds = SubjectDataset(sub, session="all", features=("image", "CLIP"))
    first = ds[0]
    blob = pickle.dumps(ds)
    one_session = sub.get_betas(SESSION).nbytes
    assert len(blob) < one_session / 4, "the dataset must not carry betas when memory-mapped"
    clone = pickle.loads(blob)
    again = clone[0]
    np.testing.assert_array_equal(again["betas"].numpy(), first["betas"].numpy())
    np.testing.assert_array_equal(again["image"].numpy(), first["image"].numpy())


def test_zscore_matches_stats_per_session(sub) -> None:  # type: ignore[no-untyped-def]
    # The last public session of sub-01 is the NaN variant: NaNs stay NaN, stats ignore them.
    sessions = list(SPEC.sessions)
    assert SPEC.nifti_variant(SUBJECT, sessions[-1]) == "float32-nan"
    ds = SubjectDataset(sub, session=sessions, features=(), zscore=True)
    raw = stacked(sub, sessions)
    labels = np.repeat(sessions, [SPEC.n_trials_in(SUBJECT, s) for s in sessions])
    expected = zscore_by_session(raw, labels)
    got = np.stack([ds[i]["betas"].numpy() for i in range(len(ds))])
    assert np.isnan(got).any()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, equal_nan=True)
    first = labels == sessions[0]
    np.testing.assert_allclose(np.nanmean(got[first], axis=0), 0.0, atol=1e-5)


def test_nc_threshold_single_session_and_error_for_several(sub) -> None:  # type: ignore[no-untyped-def]
    nc = sub.get_noise_ceiling(session=SESSION)
    thr = float(np.nanpercentile(nc, 70))
    ds = SubjectDataset(sub, session=SESSION, nc_threshold=thr, features=())
    expected = sub.get_betas(SESSION, nc_threshold=thr)
    assert ds.n_voxels == expected.shape[1] < sub.get_n_voxels()
    np.testing.assert_array_equal(ds[2]["betas"].numpy(), expected[2])
    with pytest.raises(ValueError, match="mask="):
        SubjectDataset(sub, session=list(SPEC.sessions[:2]), nc_threshold=thr)


def test_cache_disabled_holds_selected_arrays(sub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LAION_FMRI_CACHE", "0")
    ds = SubjectDataset(sub, session=SESSION, roi="place", features=(), zscore=True)
    assert not ds.memory_mapped
    raw = sub.get_betas(SESSION, roi="place")
    expected = zscore_by_session(raw, np.zeros(raw.shape[0]))
    np.testing.assert_allclose(ds[1]["betas"].numpy(), expected[1], rtol=1e-5, atol=1e-5)


def test_unwritable_cache_falls_back_to_arrays(downloaded: Path) -> None:
    # A file where the subject's cache folder should be: the cache cannot be written.
    blocker = layout.cache_dir(downloaded) / SUBJECT
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    sub = load_subject(SUBJECT)
    sessions = list(SPEC.sessions[:2])
    with pytest.warns(UserWarning, match="cache"):
        ds = SubjectDataset(sub, session=sessions, roi="FFA2", features=())
    assert not ds.memory_mapped
    expected = stacked(sub, sessions, roi="FFA2", cache=False)
    got = np.stack([ds[i]["betas"].numpy() for i in range(len(ds))])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features": ("image", "ResNet")}, "Unknown feature"),
        ({"image_size": 0}, "positive"),
        ({"image_size": "big"}, "image_size"),
        ({"transform": 3}, "callable"),
        ({"roi": "FFA1", "mask": np.ones(1, bool)}, "exclusive"),
    ],
)
def test_bad_arguments(sub, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        SubjectDataset(sub, session=SESSION, **kwargs)


def test_missing_images_fail_in_the_constructor(downloaded: Path) -> None:
    (downloaded / layout.STIMULI_IMAGES_KEY).unlink()
    sub = load_subject(SUBJECT)
    with pytest.raises(StimuliNotDownloadedError, match="download_stimuli"):
        SubjectDataset(sub, session=SESSION, features=("image",))
    ds = SubjectDataset(sub, session=SESSION, features=("CLIP",))
    stim = load_stimuli(downloaded)
    np.testing.assert_array_equal(
        ds[0]["CLIP"].numpy(), stim.embeddings.get("CLIP", ds[0]["label"], dtype=np.float32)
    )


def test_subject_delegate(sub) -> None:  # type: ignore[no-untyped-def]
    ds = sub.to_torch_dataset(session=SESSION, features=())
    assert isinstance(ds, torch.utils.data.Dataset) and len(ds) == SPEC.n_trials_in(SUBJECT, SESSION)


def test_without_torch_the_package_imports_and_the_dataset_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import laion_fmri, laion_fmri.torch as t\n"
        "from laion_fmri.errors import MissingDependencyError\n"
        "try:\n    t.SubjectDataset(None)\n"
        "except MissingDependencyError as e:\n    print('missing', e.package, e.extra, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("missing torch torch") and "laion-fmri[torch]" in out.stdout
    assert issubclass(MissingDependencyError, ImportError)
