"""The reference package's Subject/Group/torch surface (DATASET.md 9.1, 9.5), written from the spec.

Each test states a documented behaviour of the reference and checks it on the
sample dataset against plain nibabel/pandas/PIL reads.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from laion_fmri import brain, layout
from laion_fmri.errors import DataNotDownloadedError, StimuliNotDownloadedError, SubjectNotFoundError
from laion_fmri.group import load_subjects
from laion_fmri.subject import Subject, load_subject

SUB = "sub-03"


@pytest.fixture(scope="module")
def sub(shared_downloaded: Path) -> Subject:
    return load_subject(SUB, data_dir=shared_downloaded)


def _labels(root: Path, subject: str = SUB) -> list[str]:
    """Every trial label of the subject's sessions on disk, in session then row order."""
    s = load_subject(subject, data_dir=root)
    return [str(x) for ses in s.get_sessions()
            for x in pd.read_csv(root / layout.trials_key(subject, ses), sep="\t")["label"]]


def _jpeg(root: Path, name: str) -> np.ndarray:
    """Decode one stimulus straight from the HDF5 file with PIL."""
    meta = pd.read_csv(root / layout.STIMULI_METADATA_KEY)
    row = int(np.flatnonzero(meta["image_name"].to_numpy() == name)[0])
    with h5py.File(root / layout.STIMULI_IMAGES_KEY, "r") as f:
        raw = f[layout.H5_IMAGES][row].tobytes()
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


# ----------------------------------------------------------------------------- stimuli per subject
def test_n_stimuli_counts_the_distinct_images_of_the_trial_tables(sub: Subject,
                                                                  shared_downloaded: Path) -> None:
    names = list(dict.fromkeys(_labels(shared_downloaded)))
    assert sub.get_n_stimuli() == len(names)
    assert sub.get_n_stimuli("shared") == sum(n.startswith("shared_") for n in names)
    assert sub.get_n_stimuli("unique") == sum(n.startswith("unique_") for n in names)
    assert sub.get_n_stimuli("shared") + sub.get_n_stimuli("unique") == len(names)
    with pytest.raises(ValueError, match="shared"):
        sub.get_n_stimuli("both")


def test_stimulus_metadata_images_and_trial_indices_agree(sub: Subject,
                                                          shared_downloaded: Path) -> None:
    assert sub.has_stimuli()
    meta = sub.get_stimulus_metadata()
    names = list(dict.fromkeys(_labels(shared_downloaded)))
    assert meta["stimulus_id"].tolist() == names == meta["image_name"].tolist()
    assert list(meta.index) == list(range(len(names)))
    table = pd.read_csv(shared_downloaded / layout.STIMULI_METADATA_KEY).set_index("image_name")
    assert meta["n_reps"].tolist() == table.loc[names, "n_reps"].tolist()
    for session in ("ses-01", "ses-02"):
        idx = sub.get_trial_stimulus_indices(session)
        labels = sub.get_trial_info(session)["label"].tolist()
        assert idx.dtype == np.int64 and meta["stimulus_id"].to_numpy()[idx].tolist() == labels
    both = sub.get_trial_stimulus_indices(["ses-01", "ses-02"])
    assert list(both) == ["ses-01", "ses-02"]
    np.testing.assert_array_equal(np.asarray(sub.get_image(2).convert("RGB")),
                                  _jpeg(shared_downloaded, names[2]))
    with pytest.raises(IndexError):
        sub.get_image(len(names))


def test_get_images_formats(sub: Subject, shared_downloaded: Path) -> None:
    shared = [n for n in dict.fromkeys(_labels(shared_downloaded)) if n.startswith("shared_")]
    pil = sub.get_images(stimuli="shared")
    assert isinstance(pil, list) and len(pil) == len(shared)
    arr = sub.get_images(stimuli="shared", format="numpy")
    assert arr.dtype == np.uint8 and arr.shape[0] == len(shared) and arr.shape[-1] == 3
    for k in (0, len(shared) - 1):
        np.testing.assert_array_equal(arr[k], _jpeg(shared_downloaded, shared[k]))
    torch = pytest.importorskip("torch")
    with pytest.warns(UserWarning, match="memory"):
        tensor = sub.get_images(stimuli="shared", format="torch")
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (arr.shape[0], 3, *arr.shape[1:3])
    np.testing.assert_allclose(tensor.numpy(), arr.transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    with pytest.raises(ValueError, match="format"):
        sub.get_images(format="jpeg")


def test_stimuli_not_downloaded(downloaded: Path) -> None:
    (downloaded / layout.STIMULI_METADATA_KEY).unlink()
    sub = load_subject(SUB, data_dir=downloaded)
    assert not sub.has_stimuli()
    assert sub.get_n_stimuli() > 0  # counting needs only the trial tables
    with pytest.raises(StimuliNotDownloadedError):
        sub.get_stimulus_metadata()


def test_group_shared_images_are_the_ones_every_member_saw(shared_downloaded: Path) -> None:
    group = load_subjects("all", data_dir=shared_downloaded)
    seen = [{n for n in _labels(shared_downloaded, sid) if n.startswith("shared_")}
            for sid, _ in group]
    common = set.intersection(*seen)
    meta = group.get_shared_stimulus_metadata()
    assert set(meta["stimulus_id"]) == common and len(meta) == len(common)
    arr = group.get_shared_images(format="numpy")
    assert arr.shape[0] == len(common)
    np.testing.assert_array_equal(arr[0], _jpeg(shared_downloaded, meta["stimulus_id"][0]))
    assert len(group.get_shared_images()) == len(common)


# ----------------------------------------------------------------------------- torch_data
def test_laion_fmri_dataset_items(sub: Subject, shared_downloaded: Path) -> None:
    torch = pytest.importorskip("torch")
    from laion_fmri.torch_data import LaionFMRIDataset

    ds = LaionFMRIDataset(sub, "ses-01", roi="face")
    trials = sub.get_trial_info("ses-01")
    betas = sub.get_betas("ses-01", roi="face")
    assert len(ds) == len(trials)
    seen: dict[str, int] = {}
    for i in range(len(ds)):
        item = ds[i]
        assert sorted(item) == ["betas", "image", "rep_index", "session", "stimulus_id"]
        label = trials["label"].iloc[i]
        assert item["stimulus_id"] == label and item["session"] == "ses-01"
        assert item["rep_index"] == seen.get(label, 0)
        seen[label] = seen.get(label, 0) + 1
        np.testing.assert_array_equal(item["betas"].numpy(), betas[i])
    image = ds[0]["image"]
    assert image.dtype == torch.float32 and image.shape[0] == 3
    expected = _jpeg(shared_downloaded, trials["label"].iloc[0]).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(image.numpy(), expected, atol=1e-6)
    flipped = LaionFMRIDataset(sub, "ses-01", image_transform=lambda t: t.flip(-1))
    np.testing.assert_array_equal(flipped[0]["image"].numpy(), image.flip(-1).numpy())
    r2 = LaionFMRIDataset(sub, "ses-01", mask_source="rsquare")
    assert r2[0]["betas"].shape[0] == sub.get_n_voxels("rsquare")
    with pytest.raises(ValueError, match="callable"):
        LaionFMRIDataset(sub, "ses-01", image_transform="flip")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- reading
def test_trial_tables_without_beta_index_are_read_in_row_order(downloaded: Path) -> None:
    path = downloaded / layout.trials_key(SUB, "ses-01")
    table = pd.read_csv(path, sep="\t", keep_default_na=False)
    table.drop(columns="beta_index").to_csv(path, sep="\t", index=False)
    sub = load_subject(SUB, data_dir=downloaded)
    info = sub.get_trial_info("ses-01")
    assert info["beta_index"].tolist() == list(range(len(table)))
    assert info["label"].tolist() == table["label"].astype(str).tolist()
    shared = sub.get_betas("ses-01", stimuli="shared")
    assert shared.shape[0] == int(table["label"].str.startswith("shared_").sum())


def test_streaming_keyword_is_accepted(sub: Subject) -> None:
    plain = sub.get_betas("ses-01", roi="FFA1")
    for streaming in (True, False):
        np.testing.assert_array_equal(sub.get_betas("ses-01", roi="FFA1", streaming=streaming), plain)


def test_path_based_brain_helpers_equal_the_subject_methods(sub: Subject, shared_downloaded: Path,
                                                            tmp_path: Path) -> None:
    mask_path = shared_downloaded / layout.anatomical_brain_mask_key(SUB)
    roi = sub.get_roi_mask("FFA1")
    values = np.arange(roi.sum(), dtype=np.float32)
    ours = nib.load(str(sub.to_nifti(values, tmp_path / "a.nii.gz", roi="FFA1"))).get_fdata()
    ref = nib.load(str(brain.to_nifti(values, tmp_path / "b.nii.gz", mask_path, sub.affine,
                                      roi_mask=roi))).get_fdata()
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(sub.get_voxel_coordinates(roi="FFA1"),
                                  brain.get_voxel_coordinates(mask_path, sub.affine, roi_mask=roi))
    with pytest.raises(ValueError, match=f"Values length mismatch: got 3, expected {roi.sum()}"):
        sub.to_nifti(values[:3], tmp_path / "c.nii.gz", roi="FFA1")


def test_load_subject_not_on_disk_names_the_download(shared_downloaded: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(shared_downloaded / layout.subject_glm_prefix("sub-01"),
                    partial / layout.subject_glm_prefix("sub-01"))
    with pytest.raises(DataNotDownloadedError, match=r'download\(subject="sub-03"\)'):
        load_subject("sub-03", data_dir=partial)
    assert isinstance(DataNotDownloadedError("x"), FileNotFoundError)
    for bad in ("sub-x_y", "subject-3", -1):
        with pytest.raises(SubjectNotFoundError):
            load_subject(bad, data_dir=partial)


def test_documented_errors_keep_their_builtin_bases(sub: Subject, downloaded: Path) -> None:
    """9.1: the reference's errors are ValueError / FileNotFoundError / KeyError / TypeError."""
    with pytest.raises(ValueError, match="mutually exclusive"):
        sub.get_betas("ses-01", roi="FFA1", mask=np.ones(sub.get_n_voxels(), bool))
    with pytest.raises(ValueError):
        sub.get_betas("ses-01", stimuli="repeated")
    with pytest.raises(ValueError, match="FFA1"):
        sub.get_roi_mask("FFA9")  # unknown: lists what is available
    with pytest.raises(ValueError, match="exactly one"):
        sub.get_noise_ceiling()
    assert isinstance(sub.get_betas(["ses-01", "ses-02"]), dict)
    (downloaded / layout.session_nc_key(SUB, "ses-02")).unlink()
    with pytest.raises(FileNotFoundError):
        load_subject(SUB, data_dir=downloaded).get_noise_ceiling(session="ses-02")
    group = load_subjects("all", data_dir=downloaded)
    assert len(group) == 2 and group[1].subject_id == SUB and group[SUB].subject_id == SUB
    assert [sid for sid, _ in group] == ["sub-01", SUB]
    with pytest.raises(KeyError):
        group["sub-05"]
    with pytest.raises(TypeError):
        group[1.5]  # type: ignore[index]
