"""The stimulus hub on the sample dataset's real stimulus files."""

from __future__ import annotations

import io
import multiprocessing
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from laion_fmri import layout
from laion_fmri.errors import CorruptFileError, StimuliNotDownloadedError, StimulusNotFoundError
from laion_fmri.stimuli import Stimuli, decode_image, load_stimuli


@pytest.fixture(scope="module")
def stim(shared_downloaded: Path) -> Stimuli:
    with load_stimuli(shared_downloaded) as hub:
        yield hub


@pytest.fixture
def stim_dir(shared_downloaded: Path, tmp_path: Path) -> Path:
    """A data directory holding a private, writable copy of the stimulus files."""
    dest = tmp_path / "data"
    shutil.copytree(shared_downloaded / layout.STIMULI_ROOT, dest / layout.STIMULI_ROOT)
    return dest


def _raw_metadata(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / layout.STIMULI_METADATA_KEY, dtype={"image_name": str})


def _raw_embeddings(root: Path, model: str) -> dict[str, np.ndarray]:
    with h5py.File(root / layout.embeddings_key(model), "r") as fh:
        ids = [v.decode() for v in fh[layout.H5_IMAGE_IDS][()]]
        emb = fh[layout.H5_EMBEDDING][()]
    return dict(zip(ids, emb, strict=True))


# --------------------------------------------------------------------------- metadata + images
def test_metadata_matches_csv_and_images(stim: Stimuli, shared_downloaded: Path) -> None:
    raw = _raw_metadata(shared_downloaded)
    assert stim.metadata["image_name"].tolist() == raw["image_name"].tolist()
    assert len(stim.images) == len(raw)
    with h5py.File(shared_downloaded / layout.STIMULI_IMAGES_KEY, "r") as fh:
        assert fh[layout.H5_IMAGES].shape == (len(raw),)
        third = fh[layout.H5_IMAGES][3].tobytes()
    name = raw["image_name"][3]
    assert stim.images[3] == third == stim.images[name]
    assert stim.images.index_of(name) == 3
    assert name in stim.images and "nope.jpg" not in stim.images
    assert stim.images.names() == raw["image_name"].tolist()
    assert [n for n, _ in stim.images] == raw["image_name"].tolist()


def test_image_get_and_array(stim: Stimuli) -> None:
    names = stim.images.names()[:5]
    img = stim.images.get(names[0])
    assert isinstance(img, Image.Image)
    full = np.asarray(img.convert("RGB"))
    arr = stim.images.array(names)
    assert arr.dtype == np.uint8 and arr.shape == (5, *full.shape)
    np.testing.assert_array_equal(arr[0], full)
    # The draft + resize fast path agrees with decode-then-resize up to JPEG-scale noise.
    small = stim.images.array(list(reversed(names)), size=16)
    assert small.shape == (5, 16, 16, 3)
    naive = np.asarray(img.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR), dtype=float)
    assert np.abs(small[-1].astype(float) - naive).mean() < 12
    assert stim.images.array([0, 2], size=(8, 12)).shape == (2, 8, 12, 3)
    np.testing.assert_array_equal(stim.images.array(np.array(names[:2]), size=16), small[[4, 3]])
    np.testing.assert_array_equal(stim.images.array(np.array([1, 0]), size=16), small[[3, 4]])
    assert stim.images.array([], size=16).shape == (0, 16, 16, 3)
    np.testing.assert_array_equal(stim.images.array(names[1], size=16), small[[3]])
    np.testing.assert_array_equal(stim.images.array(names * 20, size=16, n_threads=2),
                                  np.concatenate([stim.images.array(names, size=16)] * 20))


def test_decode_image_uses_reduced_scale_for_jpeg() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (800, 800), (10, 200, 30)).save(buf, "JPEG")
    out = decode_image(buf.getvalue(), size=100)
    assert out.shape == (100, 100, 3)
    assert np.abs(out.astype(int) - [10, 200, 30]).max() < 8
    with pytest.raises(CorruptFileError):
        decode_image(b"not an image")


def test_unknown_image_lists_close_matches(stim: Stimuli) -> None:
    name = stim.images.names()[0]
    with pytest.raises(StimulusNotFoundError, match="Did you mean") as info:
        stim.images[name[:-1] + "x"]
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert name in str(info.value)
    with pytest.raises(IndexError):
        stim.images[len(stim.images)]


# --------------------------------------------------------------------------- embeddings
def test_embeddings_join_by_name_not_position(stim: Stimuli, shared_downloaded: Path) -> None:
    raw = _raw_embeddings(shared_downloaded, "CLIP")
    names = stim.images.names()
    with h5py.File(shared_downloaded / layout.embeddings_key("CLIP"), "r") as fh:
        file_order = [v.decode() for v in fh[layout.H5_IMAGE_IDS][()]]
    assert file_order != names, "sample should store embeddings in a different order"
    one = stim.embeddings.get("CLIP", names[1])
    assert one.dtype == np.float16
    np.testing.assert_array_equal(one, raw[names[1]])
    picked = [names[4], names[0], names[4]]
    many = stim.embeddings.get("clip", picked, dtype=np.float32)
    assert many.dtype == np.float32 and many.shape == (3, len(raw[names[0]]))
    np.testing.assert_array_equal(many, np.stack([raw[n] for n in picked]).astype(np.float32))
    full = stim.embeddings.all("CLIP")
    np.testing.assert_array_equal(full, np.stack([raw[n] for n in names]))
    assert stim.embeddings.get("CLIP", []).shape == (0, full.shape[1])
    assert stim.embeddings.models == layout.EMBEDDING_MODELS
    assert "CLIP" in stim.embeddings and ("CLIP", names[0]) in stim.embeddings


def test_unknown_model_and_name(stim: Stimuli) -> None:
    with pytest.raises(StimulusNotFoundError, match="DINOv2"):
        stim.embeddings.get("DINO", stim.images.names()[0])
    with pytest.raises(KeyError, match="Did you mean"):
        stim.embeddings.get("CLIP", stim.images.names()[0] + "g")


def test_invalid_rows_come_back_nan(stim_dir: Path) -> None:
    path = stim_dir / layout.embeddings_key("CLIP")
    with h5py.File(path, "r+") as fh:
        victim = fh[layout.H5_IMAGE_IDS][2].decode()
        valid = fh[layout.H5_VALID][()]
        valid[2] = False
        fh[layout.H5_VALID][...] = valid
    hub = load_stimuli(stim_dir)
    assert np.isnan(hub.embeddings.get("CLIP", victim)).all()
    full = hub.embeddings.all("CLIP")
    assert np.isnan(full).any(axis=1).sum() == 1
    assert np.isnan(full[hub.images.index_of(victim)]).all()


def test_missing_files_name_the_download_call(stim_dir: Path) -> None:
    (stim_dir / layout.embeddings_key("SigLIP2")).unlink()
    hub = load_stimuli(stim_dir)
    assert "SigLIP2" not in hub.embeddings.models
    with pytest.raises(StimuliNotDownloadedError, match=r"download_embeddings\(models=\['SigLIP2'\]\)"):
        hub.embeddings.get("SigLIP2", hub.images.names()[0])
    empty = load_stimuli(stim_dir.parent / "empty")
    with pytest.raises(StimuliNotDownloadedError, match=r"download_stimuli\(\)"):
        empty.metadata  # noqa: B018
    with pytest.raises(StimuliNotDownloadedError, match=r"download_captions\(\)"):
        empty.captions.get("x.jpg")
    with pytest.raises(StimuliNotDownloadedError, match=r"download_segmentations\(\)"):
        empty.segmentations.nouns("x.jpg")


def test_public_derivatives_work_without_the_gated_metadata(stim_dir: Path) -> None:
    names = _raw_metadata(stim_dir)["image_name"].tolist()
    for key in layout.GATED_STIMULUS_KEYS:
        (stim_dir / key).unlink()
    hub = load_stimuli(stim_dir)
    unique = next(n for n in names if n.startswith("unique_"))
    assert hub.segmentations.for_image(unique).empty  # known from the captions, has no masks
    assert hub.embeddings.get("CLIP", [unique]).shape[0] == 1
    with pytest.raises(StimulusNotFoundError, match="Did you mean"):
        hub.segmentations.nouns(unique + "x")
    with pytest.raises(StimuliNotDownloadedError, match="image_ids"):
        hub.embeddings.all("CLIP")
    with pytest.raises(StimuliNotDownloadedError, match=r"download_stimuli\(\)"):
        hub.images[0]


def test_corrupt_files_are_named(stim_dir: Path) -> None:
    emb_path = stim_dir / layout.embeddings_key("PEcore")
    with h5py.File(emb_path, "r+") as fh:
        n = fh[layout.H5_EMBEDDING].shape[0]
        del fh[layout.H5_VALID]
        fh.create_dataset(layout.H5_VALID, data=np.ones(n - 1, bool))
    hub = load_stimuli(stim_dir)
    with pytest.raises(CorruptFileError, match=r"PEcore_embeddings\.h5"):
        hub.embeddings.get("PEcore", hub.images.names()[0])

    (stim_dir / layout.embeddings_key("DINOv2")).write_bytes(b"garbage, not HDF5")
    with pytest.raises(CorruptFileError, match=r"DINOv2_embeddings\.h5"):
        hub.embeddings.all("DINOv2")

    cap = stim_dir / layout.CAPTIONS_KEY
    pd.read_csv(cap).drop(columns=["source"]).to_csv(cap, index=False)
    with pytest.raises(CorruptFileError, match=r"captions\.csv.*source"):
        hub.captions.get(hub.images.names()[0])

    img_path = stim_dir / layout.STIMULI_IMAGES_KEY
    with h5py.File(img_path, "w") as fh:
        fh.create_dataset(layout.H5_IMAGES, data=np.zeros((3, 4), np.uint8))
    with pytest.raises(CorruptFileError, match=r"stimuli\.h5"):
        hub.images[0]


# --------------------------------------------------------------------------- captions + segmentations
def test_captions(stim: Stimuli, shared_downloaded: Path) -> None:
    raw = pd.read_csv(shared_downloaded / layout.CAPTIONS_KEY)
    shared = next(n for n in stim.images.names() if n.startswith("shared_12rep_"))
    rows = raw[raw["image_name"] == shared].sort_values("caption_idx")
    got = stim.captions.get(shared)
    assert got["caption_idx"].tolist() == rows["caption_idx"].tolist()
    humans = rows.loc[rows["source"] == "human", "caption"].tolist()
    assert stim.captions.human(shared) == humans and len(humans) >= 1
    assert stim.captions.human(shared, limit=1) == humans[:1]
    ai = rows.loc[rows["source"] == "ai", "caption"].tolist()
    assert stim.captions.ai(shared) == (ai[0] if ai else None)
    unique = next(n for n in stim.images.names() if n.startswith("unique_"))
    assert stim.captions.ai(unique) is None
    with pytest.raises(StimulusNotFoundError):
        stim.captions.human(unique + "x")


def test_segmentations(stim: Stimuli, shared_downloaded: Path) -> None:
    from laion_fmri.sample import spec_for

    doc = spec_for("tiny").doc_image
    nouns = stim.segmentations.nouns(doc)
    assert {"fingers", "hand", "pullover"} <= set(nouns)
    every = stim.segmentations.nouns(doc, localized_only=False)
    assert set(nouns) <= set(every)
    rows = stim.segmentations.for_image(doc)
    mask = stim.segmentations.get(doc, "hand")
    row = int(rows.loc[(rows["noun"] == "hand") & (rows["instance_id"] == 0), "mask_row"].iloc[0])
    with h5py.File(shared_downloaded / layout.SEGMENTATIONS_KEY, "r") as fh:
        expected = fh[layout.H5_MASKS][row] > 0
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)
    unique = next(n for n in stim.images.names() if n.startswith("unique_"))
    assert stim.segmentations.for_image(unique).empty and stim.segmentations.nouns(unique) == []
    with pytest.raises(StimulusNotFoundError, match="fingers"):
        stim.segmentations.get(doc, "finger")
    with pytest.raises(StimulusNotFoundError, match="instance 5"):
        stim.segmentations.get(doc, "hand", instance=5)


# --------------------------------------------------------------------------- process safety
_FORKED: dict[str, Stimuli] = {}


def _read_in_child(name: str) -> tuple[bytes, bool]:
    hub = _FORKED["hub"]
    inherited = hub.images._h5._file is not None
    return hub.images[name], inherited


def test_pickle_drops_handles_and_reopens(shared_downloaded: Path) -> None:
    hub = load_stimuli(shared_downloaded)
    name = hub.images.names()[1]
    first = hub.images[name]
    hub.embeddings.get("CLIP", name)
    assert hub.images._h5._file is not None
    blob = pickle.dumps(hub)
    assert b"HDF5" not in blob and len(blob) < 2000
    clone = pickle.loads(blob)
    assert clone.images._h5._file is None
    assert clone.images[name] == first
    _FORKED["hub"] = hub
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:  # the child inherits an open handle and must not reuse it
        data, inherited = pool.apply(_read_in_child, (name,))
    assert inherited and data == first
    assert hub.images[name] == first
    hub.close()
    assert hub.images._h5._file is None


class _ImageSet:
    """A map-style dataset holding the hub, as a user would write it."""

    def __init__(self, hub: Stimuli) -> None:
        self.hub = hub

    def __len__(self) -> int:
        return len(self.hub.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.hub.images.array([i], size=8)[0]


@pytest.mark.torch
def test_dataloader_workers_open_their_own_handles(shared_downloaded: Path) -> None:
    torch = pytest.importorskip("torch")
    hub = load_stimuli(shared_downloaded)
    hub.images[0]  # the parent holds an open handle before the workers start
    loader = torch.utils.data.DataLoader(_ImageSet(hub), batch_size=4, num_workers=2)
    got = torch.cat(list(loader)).numpy()
    np.testing.assert_array_equal(got, hub.images.array(range(len(hub.images)), size=8))


def test_all_names_version_mismatch_when_metadata_image_lacks_embedding(sample_copy) -> None:  # type: ignore[no-untyped-def]
    import h5py

    from laion_fmri import layout
    from laion_fmri.errors import StimulusNotFoundError
    from laion_fmri.stimuli import load_stimuli

    path = sample_copy / layout.embeddings_key("CLIP")
    with h5py.File(path, "r") as fh:
        emb = fh[layout.H5_EMBEDDING][...]
        ids = fh[layout.H5_IMAGE_IDS][...]
        valid = fh[layout.H5_VALID][...]
    with h5py.File(path, "w") as fh:  # drop the last image from the file
        fh.create_dataset(layout.H5_EMBEDDING, data=emb[:-1])
        fh.create_dataset(layout.H5_IMAGE_IDS, data=ids[:-1], dtype=h5py.string_dtype())
        fh.create_dataset(layout.H5_VALID, data=valid[:-1])
    with load_stimuli(data_dir=sample_copy) as stim, pytest.raises(
        StimulusNotFoundError, match="different dataset versions"
    ):
        stim.embeddings.all("CLIP")
