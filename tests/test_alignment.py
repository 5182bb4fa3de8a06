"""Trial-indexed stimulus namespaces on a real subject of the sample dataset."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from laion_fmri import layout
from laion_fmri.errors import SessionNotFoundError
from laion_fmri.sample import spec_for
from laion_fmri.subject import Subject, load_subject

SPEC = spec_for("tiny")
SUBJECT = SPEC.subjects[-1]


@pytest.fixture(scope="module")
def sub(shared_downloaded: Path) -> Subject:
    return load_subject(SUBJECT, data_dir=shared_downloaded)


def _trial_labels(root: Path, session: str) -> list[str]:
    """Image names of a session, read straight from the trial TSV."""
    path = root / layout.trials_key(SUBJECT, session)
    return pd.read_csv(path, sep="\t", dtype={"label": str}, keep_default_na=False)["label"].tolist()


def _clip_by_name(root: Path) -> dict[str, np.ndarray]:
    with h5py.File(root / layout.embeddings_key("CLIP"), "r") as fh:
        ids = [v.decode() for v in fh[layout.H5_IMAGE_IDS][()]]
        return dict(zip(ids, fh[layout.H5_EMBEDDING][()], strict=True))


def test_embeddings_rows_follow_the_trial_tables(sub: Subject, shared_downloaded: Path) -> None:
    clip = _clip_by_name(shared_downloaded)
    sessions = sub.get_sessions()
    per_session = {s: _trial_labels(shared_downloaded, s) for s in sessions}
    x1 = sub.embeddings.all("CLIP", session=sessions[0])
    np.testing.assert_array_equal(x1, np.stack([clip[n] for n in per_session[sessions[0]]]))
    assert x1.shape[0] == sub.get_betas(session=sessions[0]).shape[0]

    everything = sub.embeddings.all("CLIP")
    expected = np.stack([clip[n] for s in sessions for n in per_session[s]])
    np.testing.assert_array_equal(everything, expected)
    assert everything.shape == (len(sub.metadata), clip[next(iter(clip))].shape[0])

    pair = [sessions[1], sessions[0]]
    stacked = sub.embeddings.all("CLIP", session=pair, dtype=np.float32)
    want = np.stack([clip[n] for s in pair for n in per_session[s]]).astype(np.float32)
    np.testing.assert_array_equal(stacked, want)

    i = len(per_session[sessions[0]]) + 2  # third trial of the second session
    np.testing.assert_array_equal(sub.embeddings.get("CLIP", i), everything[i])
    np.testing.assert_array_equal(sub.embeddings.get("CLIP", [i, 0]), everything[[i, 0]])
    assert sub.embeddings.models == layout.EMBEDDING_MODELS


def test_images_captions_segmentations_by_trial(sub: Subject, shared_downloaded: Path) -> None:
    from laion_fmri.stimuli import load_stimuli

    hub = load_stimuli(shared_downloaded)
    meta = sub.metadata
    i = 5
    name = meta["image_name"].iloc[i]
    assert sub.images[i] == hub.images[name]
    assert np.array_equal(np.asarray(sub.images.get(i)), np.asarray(hub.images.get(name)))
    session = sub.get_sessions()[0]
    arr = sub.images.array(session=session, size=8)
    n_first = int((meta["session"] == session).sum())
    assert arr.shape == (n_first, 8, 8, 3)
    np.testing.assert_array_equal(arr[i], hub.images.array([name], size=8)[0])

    assert sub.captions.human(i) == hub.captions.human(name)
    assert sub.captions.ai(i) == hub.captions.ai(name)
    assert sub.captions.get(i)["caption_idx"].tolist() == hub.captions.get(name)["caption_idx"].tolist()

    doc_trial = int(np.flatnonzero(meta["image_name"].to_numpy() == SPEC.doc_image)[0])
    assert {"fingers", "hand", "pullover"} <= set(sub.segmentations.nouns(doc_trial))
    np.testing.assert_array_equal(sub.segmentations.get(doc_trial, "hand"),
                                  hub.segmentations.get(SPEC.doc_image, "hand"))
    assert sub.segmentations.has_image(doc_trial)
    assert len(sub.segmentations.for_image(doc_trial)) >= 3


def test_bad_trials_and_sessions(sub: Subject) -> None:
    n = len(sub.metadata)
    with pytest.raises(IndexError, match=str(n)):
        sub.images.get(n)
    with pytest.raises(IndexError):
        sub.embeddings.get("CLIP", [0, n])
    with pytest.raises(SessionNotFoundError, match="ses-01"):
        sub.embeddings.all("CLIP", session="ses-29")
    with pytest.raises(TypeError):
        sub.captions.human("0")


def test_namespace_pickles_without_handles(sub: Subject) -> None:
    ns = sub.embeddings
    first = ns.get("CLIP", 0)
    clone = pickle.loads(pickle.dumps(ns))
    np.testing.assert_array_equal(clone.get("CLIP", 0), first)


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1)


def _held_out_r(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                alpha: float = 1.0) -> float:
    """Mean held-out correlation of a kernel ridge fit (features -> voxels)."""
    k = x_train @ x_train.T
    coef = np.linalg.solve(k + alpha * np.eye(len(k)), y_train)
    pred = (x_test @ x_train.T) @ coef
    pz, yz = _zscore(pred), _zscore(y_test)
    return float(np.nanmean((pz * yz).mean(axis=0)))


def test_planted_signal_is_recovered_from_aligned_embeddings(sub: Subject) -> None:
    sessions = sub.get_sessions()
    train, test = sessions[:-1], sessions[-1:]

    def data(ses: list[str]) -> tuple[np.ndarray, np.ndarray]:
        betas = np.concatenate([_zscore(sub.get_betas(session=s, roi="all")) for s in ses])
        x = sub.embeddings.all("CLIP", session=ses, dtype=np.float64)
        assert x.shape[0] == betas.shape[0]
        return x, betas

    x_train, y_train = data(train)
    x_test, y_test = data(test)
    aligned = _held_out_r(x_train, y_train, x_test, y_test)
    rng = np.random.default_rng(0)
    shuffled = np.mean([
        _held_out_r(x_train[rng.permutation(len(x_train))], y_train, x_test, y_test)
        for _ in range(3)
    ])
    assert aligned > 0.2, aligned
    assert aligned > shuffled + 0.15, (aligned, shuffled)


def test_trials_whose_image_lacks_an_embedding_are_reported(downloaded: Path) -> None:
    from laion_fmri.errors import StimulusNotFoundError

    sub = load_subject(SUBJECT, data_dir=downloaded)
    victim = sub.metadata["image_name"].iloc[0]
    path = downloaded / layout.embeddings_key("DINOv2")
    with h5py.File(path, "r") as fh:
        ids = [v.decode() for v in fh[layout.H5_IMAGE_IDS][()]]
        keep = np.array([n != victim for n in ids])
        data = {k: fh[k][()][keep] for k in (layout.H5_EMBEDDING, layout.H5_VALID)}
    with h5py.File(path, "w") as fh:
        fh.create_dataset(layout.H5_EMBEDDING, data=data[layout.H5_EMBEDDING])
        fh.create_dataset(layout.H5_VALID, data=data[layout.H5_VALID])
        fh.create_dataset(layout.H5_IMAGE_IDS, data=np.array(ids, dtype=object)[keep],
                          dtype=h5py.string_dtype())
    with pytest.raises(StimulusNotFoundError, match=re.escape(victim)):
        sub.embeddings.all("DINOv2")
    assert sub.embeddings.all("CLIP").shape[0] == len(sub.metadata)


def test_non_integer_trial_keys_are_a_clear_type_error(shared_downloaded) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    sub = load_subject("sub-03", data_dir=shared_downloaded)
    for bad in (3.0, "3"):
        with pytest.raises(TypeError, match="global trial index"):
            sub.embeddings.get("CLIP", bad)
    assert sub.embeddings.get("CLIP", range(2)).shape[0] == 2
