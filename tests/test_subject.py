"""Subject API on the tiny sample dataset, checked against plain nibabel/pandas."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from laion_fmri import _nifti as nifti
from laion_fmri import layout
from laion_fmri.errors import (
    CorruptFileError,
    DataNotDownloadedError,
    RoiNotFoundError,
    SessionNotFoundError,
    SubjectNotFoundError,
)
from laion_fmri.sample import spec_for
from laion_fmri.subject import Subject, load_subject

SPEC = spec_for("tiny")
SUB = "sub-01"


@pytest.fixture(scope="module")
def sub(shared_downloaded: Path) -> Subject:
    return load_subject(SUB, data_dir=shared_downloaded)


def _path(root: Path, key: str) -> Path:
    return root / key  # the sample tree is a raw bucket copy


def _brain3d(root: Path, subject: str = SUB, source: str = "anatomical") -> np.ndarray:
    """The voxel axis as the reference defines it: the anatomical mask, or R2mean != 0."""
    key = layout.anatomical_brain_mask_key(subject) if source == "anatomical" else layout.r2mean_key(subject)
    return nib.load(str(_path(root, key))).get_fdata() != 0


def _truth_betas(root: Path, session: str, subject: str = SUB,
                 source: str = "anatomical") -> np.ndarray:
    img = nib.load(str(_path(root, layout.betas_key(subject, session))))
    data = np.asarray(img.get_fdata(dtype=np.float32))
    return data[_brain3d(root, subject, source)].T


def _truth_roi(root: Path, subject: str, label: str) -> np.ndarray:
    category = SPEC.category_of(label)
    key = layout.roi_volume_key(subject, category, SPEC.bucket_label(label))
    roi = nib.load(str(_path(root, key))).get_fdata() != 0
    return roi[_brain3d(root, subject)]


def _trials(root: Path, session: str, subject: str = SUB) -> pd.DataFrame:
    return pd.read_csv(_path(root, layout.trials_key(subject, session)), sep="\t",
                       keep_default_na=False)


# ----------------------------------------------------------------------------- loading
@pytest.mark.parametrize("ident", ["sub-01", "01", "1", 1])
def test_load_subject_ids(shared_downloaded: Path, ident: object) -> None:
    assert load_subject(ident, data_dir=shared_downloaded).subject_id == SUB


def test_load_subject_uses_configured_dir(downloaded: Path) -> None:
    assert load_subject(3).data_dir == downloaded


def test_load_subject_errors(data_dir: Path) -> None:
    with pytest.raises(DataNotDownloadedError, match=r'download\(subject="sub-03"\)'):
        load_subject("sub-03", data_dir=data_dir)
    with pytest.raises(SubjectNotFoundError, match="Valid subjects"):
        load_subject("subject-2", data_dir=data_dir)


def test_sessions_and_voxels(sub: Subject, shared_downloaded: Path) -> None:
    assert sub.get_sessions() == sorted(SPEC.all_sessions)
    brain = _brain3d(shared_downloaded)
    assert sub.get_n_voxels() == int(brain.sum()) == SPEC.n_anatomical_voxels
    np.testing.assert_array_equal(sub.get_brain_mask(), brain.ravel())
    r2 = _brain3d(shared_downloaded, source="rsquare")
    assert sub.get_n_voxels("rsquare") == int(r2.sum()) == SPEC.n_brain_voxels
    np.testing.assert_array_equal(sub.get_brain_mask(source="rsquare"), r2.ravel())
    np.testing.assert_array_equal(sub.get_brain_mask(source="anatomical"), brain.ravel())
    assert SPEC.n_brain_voxels < SPEC.n_anatomical_voxels  # the anatomical mask is broader
    assert sub.grid_shape == SPEC.grid_shape
    np.testing.assert_allclose(sub.affine, SPEC.affine)


# ----------------------------------------------------------------------------- betas vs nibabel
@pytest.mark.parametrize("session", SPEC.all_sessions)
@pytest.mark.parametrize("cache", [False, True])
def test_betas_match_nibabel(sub: Subject, shared_downloaded: Path, session: str, cache: bool) -> None:
    truth = _truth_betas(shared_downloaded, session)
    for _ in range(2):  # cache: the first call writes, the second maps
        betas = sub.get_betas(session, cache=cache)
        assert betas.dtype == np.float32 and betas.flags.c_contiguous
        assert betas.shape == (SPEC.n_trials_in(SUB, session), SPEC.n_anatomical_voxels)
        np.testing.assert_allclose(betas, truth, rtol=1e-6, atol=1e-6)
    truth = _truth_betas(shared_downloaded, session, source="rsquare")
    for _ in range(2):
        betas = sub.get_betas(session, cache=cache, mask_source="rsquare")
        assert betas.shape == (SPEC.n_trials_in(SUB, session), SPEC.n_brain_voxels)
        np.testing.assert_allclose(betas, truth, rtol=1e-6, atol=1e-6)


def test_variant_files_really_differ(shared_downloaded: Path) -> None:
    """The sample's special sessions are what the reader claims to handle."""
    seen = {}
    for (subject, session), variant in SPEC.nifti_variants.items():
        hdr = nifti.read_header(_path(shared_downloaded, layout.betas_key(subject, session)))
        seen[variant] = hdr
    assert seen["int16-scaled"].dtype.kind == "i" and seen["int16-scaled"].scaled
    assert seen["int16-scaled"].inter != 0
    assert seen["float32-big-endian"].dtype.byteorder == ">"
    nan_session = next(s for (_, s), v in SPEC.nifti_variants.items() if v == "float32-nan")
    betas = load_subject(SUB, shared_downloaded).get_betas(nan_session, cache=False)
    assert np.isnan(betas).sum() == SPEC.n_nan_voxels * betas.shape[0]


def test_roi_category_all_and_list(sub: Subject, shared_downloaded: Path) -> None:
    full = _truth_betas(shared_downloaded, "ses-02")
    ffa = _truth_roi(shared_downloaded, SUB, "FFA1")
    np.testing.assert_allclose(sub.get_betas("ses-02", roi="FFA1"), full[:, ffa], rtol=1e-6)
    face = np.zeros_like(ffa)
    for label in SPEC.rois["face"]:
        face |= _truth_roi(shared_downloaded, SUB, label)
    np.testing.assert_array_equal(sub.get_roi_mask("face"), face)
    got = sub.get_betas("ses-02", roi="face")
    assert got.shape[1] == face.sum() > ffa.sum()
    np.testing.assert_allclose(got, full[:, face], rtol=1e-6)
    union = face | _truth_roi(shared_downloaded, SUB, "PPA")
    np.testing.assert_array_equal(sub.get_roi_mask(["face", "PPA", "FFA1"]), union)
    everything = np.zeros_like(ffa)
    for label in SPEC.roi_labels:
        everything |= _truth_roi(shared_downloaded, SUB, label)
    np.testing.assert_array_equal(sub.get_roi_mask("all"), everything)
    masks = sub.get_roi_masks(["face", "FFA1"])
    assert list(masks) == ["face", "FFA1"]
    np.testing.assert_array_equal(masks["FFA1"], ffa)


def test_mask_argument(sub: Subject, shared_downloaded: Path) -> None:
    full = _truth_betas(shared_downloaded, "ses-01")
    mask = np.zeros(sub.get_n_voxels(), bool)
    mask[::7] = True
    np.testing.assert_allclose(sub.get_betas("ses-01", mask=mask), full[:, mask], rtol=1e-6)
    n = sub.get_n_voxels()
    with pytest.raises(ValueError, match=f"length {n}"):
        sub.get_betas("ses-01", mask=mask[:-1])
    with pytest.raises(ValueError, match=f"length {n}"):
        sub.get_betas("ses-01", mask=mask.astype(int))
    with pytest.raises(ValueError, match="mutually exclusive"):
        sub.get_betas("ses-01", roi="FFA1", mask=mask)


def test_nc_threshold(sub: Subject, shared_downloaded: Path) -> None:
    nc_img = nib.load(str(_path(shared_downloaded, layout.session_nc_key(SUB, "ses-01"))))
    nc = nc_img.get_fdata()[_brain3d(shared_downloaded)]
    thr = float(np.percentile(nc[nc > 0], 50))
    keep = nc >= thr
    assert 0 < keep.sum() < keep.size
    full = _truth_betas(shared_downloaded, "ses-01")
    np.testing.assert_allclose(sub.get_betas("ses-01", nc_threshold=thr), full[:, keep], rtol=1e-6)
    ffa = _truth_roi(shared_downloaded, SUB, "FFA1")
    both = sub.get_betas("ses-01", roi="FFA1", nc_threshold=thr)
    assert both.shape[1] == (keep & ffa).sum()
    for bad in (-1, 101, float("nan"), "high"):
        with pytest.raises(ValueError, match="nc_threshold"):
            sub.get_betas("ses-01", nc_threshold=bad)


@pytest.mark.parametrize("kind", ["shared", "unique"])
def test_stimuli_filter(sub: Subject, shared_downloaded: Path, kind: str) -> None:
    labels = _trials(shared_downloaded, "ses-01")["label"].astype(str)
    rows = labels.str.startswith(kind + "_").to_numpy()
    assert 0 < rows.sum() < rows.size
    full = _truth_betas(shared_downloaded, "ses-01")
    np.testing.assert_allclose(sub.get_betas("ses-01", stimuli=kind), full[rows], rtol=1e-6)


def test_average_label(sub: Subject, shared_downloaded: Path) -> None:
    labels = _trials(shared_downloaded, "ses-01")["label"].astype(str).tolist()
    full = _truth_betas(shared_downloaded, "ses-01").astype(np.float64)
    order = list(dict.fromkeys(labels))
    expected = np.stack([full[[i for i, x in enumerate(labels) if x == name]].mean(0)
                         for name in order])
    got = sub.get_betas("ses-01", average="label")
    assert got.shape == (len(order), sub.get_n_voxels()) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The documented recipe for the row labels.
    assert list(pd.unique(sub.get_trial_info("ses-01")["label"])) == order
    shared = sub.get_betas("ses-01", stimuli="shared", average="label")
    assert shared.shape[0] == len([x for x in order if x.startswith("shared_")])


def test_bad_filters(sub: Subject) -> None:
    with pytest.raises(ValueError, match="stimuli must be"):
        sub.get_betas("ses-01", stimuli="both")
    with pytest.raises(ValueError, match="average must be"):
        sub.get_betas("ses-01", average="image")
    with pytest.raises(ValueError, match="session is required"):
        sub.get_betas([])


def test_session_lists_and_all(sub: Subject, shared_downloaded: Path) -> None:
    out = sub.get_betas(["ses-02", 1], roi="FFA1")
    assert list(out) == ["ses-02", "ses-01"]
    ffa = _truth_roi(shared_downloaded, SUB, "FFA1")
    np.testing.assert_allclose(out["ses-01"], _truth_betas(shared_downloaded, "ses-01")[:, ffa],
                               rtol=1e-6)
    everything = sub.get_betas("all", roi="FFA1")
    assert list(everything) == sub.get_sessions()


def test_unknown_session_lists_and_suggests(sub: Subject) -> None:
    with pytest.raises(SessionNotFoundError) as info:
        sub.get_betas("ses-04")
    text = str(info.value)
    assert "ses-01, ses-02, ses-03, ses-31" in text and "Did you mean" in text
    assert isinstance(info.value, ValueError)
    with pytest.raises(SessionNotFoundError, match="not available"):
        sub.get_trial_info("session-one")


def test_unknown_roi_suggests(sub: Subject) -> None:
    with pytest.raises(RoiNotFoundError) as info:
        sub.get_betas("ses-01", roi="FFA3")
    text = str(info.value)
    assert "Did you mean 'FFA1'" in text or "Did you mean 'FFA2'" in text
    assert "Categories: body, face" in text and isinstance(info.value, ValueError)
    with pytest.raises(RoiNotFoundError, match="Did you mean 'face'"):
        sub.get_roi_mask("faces")
    with pytest.raises(RoiNotFoundError, match="Categories on disk"):
        sub.get_available_rois(category="motion")


def test_roi_listing(sub: Subject) -> None:
    assert sub.get_available_rois() == list(SPEC.roi_labels)
    assert sub.get_available_categories() == sorted(SPEC.rois)
    assert sub.get_available_rois(category="face") == sorted(SPEC.rois["face"])


# ----------------------------------------------------------------------------- trials / metadata
def test_trial_info(sub: Subject, shared_downloaded: Path) -> None:
    df = sub.get_trial_info("ses-01")
    assert list(df.columns[:4]) == list(layout.TRIAL_COLUMNS)
    pd.testing.assert_frame_equal(df, _trials(shared_downloaded, "ses-01"), check_dtype=False)
    both = sub.get_trial_info(["ses-01", "ses-02"])
    assert list(both) == ["ses-01", "ses-02"]
    assert len(both["ses-02"]) == SPEC.n_trials_in(SUB, "ses-02")


def test_trial_info_corrupt(downloaded: Path) -> None:
    path = downloaded / layout.trials_key(SUB, "ses-01")
    df = pd.read_csv(path, sep="\t").drop(columns=["label"])
    df.to_csv(path, sep="\t", index=False)
    with pytest.raises(CorruptFileError, match=rf"{path.name}.*label"):
        load_subject(SUB).get_trial_info("ses-01")
    path.unlink()
    with pytest.raises(DataNotDownloadedError, match=r'ses="ses-01"'):
        load_subject(SUB).get_trial_info("ses-01")


def test_small_files_are_reused_until_they_change(downloaded: Path) -> None:
    sub = load_subject(SUB)
    trials = sub.get_trial_info("ses-01")
    nc = sub.get_noise_ceiling(session="ses-01")
    # Callers get their own copies: changing them leaves the next answer intact.
    trials.loc[0, "label"] = "changed"
    nc[:] = -1.0
    assert sub.get_trial_info("ses-01")["label"].iloc[0] == _trials(downloaded, "ses-01")["label"].iloc[0]
    assert (sub.get_noise_ceiling(session="ses-01") != -1.0).any()
    # A rewritten file is read again (a new inode, size and mtime).
    path = downloaded / layout.trials_key(SUB, "ses-01")
    df = _trials(downloaded, "ses-01")
    df.loc[0, "label"] = df["label"].iloc[1]
    tmp = path.with_name(path.name + ".new")
    df.to_csv(tmp, sep="\t", index=False)
    tmp.replace(path)
    assert sub.get_trial_info("ses-01")["label"].iloc[0] == df["label"].iloc[1]
    assert sub.metadata["image_name"].iloc[0] == df["label"].iloc[1]


def test_metadata_lines_up_with_betas(sub: Subject, shared_downloaded: Path) -> None:
    meta = sub.metadata
    sessions = sub.get_sessions()
    n = sum(SPEC.n_trials_in(SUB, s) for s in sessions)
    assert len(meta) == n and list(meta.index) == list(range(n)) and meta.index.name == "trial"
    assert meta["session"].tolist() == [s for s in sessions for _ in range(SPEC.n_trials_in(SUB, s))]
    for s in sessions:
        part = meta[meta["session"] == s]
        assert part["session_trial"].tolist() == list(range(len(part)))
        assert part["image_name"].tolist() == _trials(shared_downloaded, s)["label"].tolist()
    assert set(meta["unique_or_shared"]) == {"shared", "unique"}
    assert meta["dataset"].tolist() == [layout.dataset_of_label(x) for x in meta["image_name"]]
    assert set(meta["dataset"]) <= {"LAION", "NSD", "THINGS", "THINGSplus", "OOD"}
    stacked = np.concatenate(list(sub.get_betas("all", roi="OFA").values()))
    assert stacked.shape[0] == len(meta)


# ----------------------------------------------------------------------------- noise ceiling
def test_noise_ceiling(sub: Subject, shared_downloaded: Path) -> None:
    brain = _brain3d(shared_downloaded)
    for session in ("ses-01", "ses-02"):
        img = nib.load(str(_path(shared_downloaded, layout.session_nc_key(SUB, session))))
        np.testing.assert_allclose(sub.get_noise_ceiling(session=session),
                                   img.get_fdata()[brain], rtol=1e-6)
    img = nib.load(str(_path(shared_downloaded, layout.subject_nc_key(SUB, "Noiseceiling12rep"))))
    truth = img.get_fdata()[brain]
    np.testing.assert_allclose(sub.get_noise_ceiling(desc="Noiseceiling12rep"), truth, rtol=1e-6)
    ffa = _truth_roi(shared_downloaded, SUB, "FFA1")
    np.testing.assert_allclose(sub.get_noise_ceiling(desc="Noiseceiling12rep", roi="FFA1"),
                               truth[ffa], rtol=1e-6)
    multi = sub.get_noise_ceiling(session=["ses-01", "ses-02"])
    assert list(multi) == ["ses-01", "ses-02"]
    with pytest.raises(ValueError, match="exactly one"):
        sub.get_noise_ceiling()
    with pytest.raises(ValueError, match="exactly one"):
        sub.get_noise_ceiling(session="ses-01", desc="Noiseceiling12rep")
    with pytest.raises(ValueError, match="Noiseceiling4rep"):
        sub.get_noise_ceiling(desc="Noiseceiling99rep")


# ----------------------------------------------------------------------------- brain space
def test_voxel_coordinates(sub: Subject, shared_downloaded: Path) -> None:
    brain = _brain3d(shared_downloaded)
    affine = nib.load(str(_path(shared_downloaded, layout.r2mean_key(SUB)))).affine
    truth = nib.affines.apply_affine(affine, np.argwhere(brain))
    np.testing.assert_allclose(sub.get_voxel_coordinates(), truth)
    ffa = _truth_roi(shared_downloaded, SUB, "FFA1")
    np.testing.assert_allclose(sub.get_voxel_coordinates(roi="FFA1"), truth[ffa])


def test_to_nifti_round_trip(sub: Subject, shared_downloaded: Path, tmp_path: Path) -> None:
    nc = sub.get_noise_ceiling(session="ses-01")
    out = sub.to_nifti(nc, tmp_path / "nc.nii.gz")
    img = nib.load(str(out))
    np.testing.assert_allclose(img.affine, sub.affine)
    data = img.get_fdata()
    brain = _brain3d(shared_downloaded)
    np.testing.assert_allclose(data[brain], nc, rtol=1e-6)
    assert np.all(data[~brain] == 0)
    ffa_vals = np.arange(sub.get_roi_mask("FFA1").sum(), dtype=np.float32) + 1
    img2 = nib.load(str(sub.to_nifti(ffa_vals, tmp_path / "ffa.nii", roi="FFA1")))
    np.testing.assert_array_equal(img2.get_fdata()[brain][sub.get_roi_mask("FFA1")], ffa_vals)
    betas = sub.get_betas("ses-01", roi="FFA1")[:3]
    img3 = nib.load(str(sub.to_nifti(betas, tmp_path / "b.nii.gz", roi="FFA1")))
    assert img3.shape == (*sub.grid_shape, 3)
    with pytest.raises(ValueError, match="Values length mismatch"):
        sub.to_nifti(nc[:-1], tmp_path / "bad.nii.gz")


# ----------------------------------------------------------------------------- ROI data formats
def test_roi_data_formats(sub: Subject, shared_downloaded: Path) -> None:
    vol = sub.get_roi_data(["FFA1", "OFA"])
    np.testing.assert_array_equal(vol["FFA1"], _truth_roi(shared_downloaded, SUB, "FFA1"))
    cat_dir = shared_downloaded / layout.roi_prefix(SUB) / "face"
    gii = sub.get_roi_data("FFA1", format="func.gii")
    for hemi in ("L", "R"):
        truth = nib.load(str(cat_dir / f"{SUB}_hemi-{hemi}_space-fsnative_label-FFA-1_mask.func.gii"))
        np.testing.assert_array_equal(gii["FFA1"][hemi], truth.darrays[0].data.ravel() != 0)
    labels = sub.get_roi_data("face", format="label", hemi="R")
    assert sorted(labels) == sorted(SPEC.rois["face"])
    truth = nib.freesurfer.read_label(str(cat_dir / f"{SUB}_hemi-R_space-fsnative_label-OFA_mask.label"))
    np.testing.assert_array_equal(labels["OFA"]["R"], truth)
    assert list(labels["OFA"]) == ["R"]
    with pytest.raises(ValueError, match="Unknown ROI format"):
        sub.get_roi_data("FFA1", format="mgz")
    with pytest.raises(ValueError, match="Unknown hemisphere"):
        sub.get_roi_data("FFA1", format="label", hemi="left")
    with pytest.raises(DataNotDownloadedError, match=r"func\.gii"):
        sub.get_roi_data("PPA", format="func.gii")


def test_nc_threshold_drops_nan_voxels(downloaded: Path) -> None:
    path = downloaded / layout.session_nc_key(SUB, "ses-01")
    img = nib.load(str(path))
    data = img.get_fdata().astype(np.float32)
    brain = _brain3d(downloaded)
    idx = np.argwhere(brain)[:5]
    data[tuple(idx.T)] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), str(path))
    sub = load_subject(SUB)
    nc = sub.get_noise_ceiling(session="ses-01")
    assert np.isnan(nc).sum() == 5
    betas = sub.get_betas("ses-01", nc_threshold=0)
    assert betas.shape[1] == sub.get_n_voxels() - 5
    full = _truth_betas(downloaded, "ses-01")
    np.testing.assert_allclose(betas, full[:, ~np.isnan(nc)], rtol=1e-6)


@pytest.mark.parametrize(
    ("label", "dataset"),
    [
        ("shared_12rep_LAION_cluster_1003_i0.jpg", "LAION"),
        ("shared_12rep_THINGS+_kmeans_0_balloon.jpg", "THINGSplus"),
        ("shared_4rep_NSD_special100_97.jpg", "NSD"),
        ("shared_4rep_OOD_cropped_air_pump.png", "OOD"),
        ("unique_LAION_fillup_cluster_0_i0_p01.jpg", "LAION"),
        ("unique_THINGS_zebra_p04.jpg", "THINGS"),
        ("unique_THINGS+_aardvark_p01.jpg", "THINGSplus"),
        ("stim_000.png", None),
    ],
)
def test_dataset_of_label(label: str, dataset: str | None) -> None:
    assert layout.dataset_of_label(label) == dataset


def test_session_without_betas(downloaded: Path) -> None:
    (downloaded / layout.betas_key(SUB, "ses-02")).unlink()
    sub = load_subject(SUB)
    assert "ses-02" not in sub.get_sessions()
    assert "ses-02" not in sub.get_betas("all", roi="OFA")
    assert len(sub.get_trial_info("ses-02")) == SPEC.n_trials_in(SUB, "ses-02")
    assert sub.get_noise_ceiling(session="ses-02").shape == (sub.get_n_voxels(),)
    with pytest.raises(DataNotDownloadedError, match=r'download\(subject="sub-01", ses="ses-02"\)'):
        sub.get_betas("ses-02")
    assert sub.get_betas(np.int64(1), roi="OFA").shape[0] == SPEC.n_trials_in(SUB, "ses-01")


def test_betas_on_wrong_grid(downloaded: Path) -> None:
    path = downloaded / layout.betas_key(SUB, "ses-01")
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), np.eye(4)), str(path))
    with pytest.raises(CorruptFileError, match=r"grid \(3, 3, 3\)"):
        load_subject(SUB).get_betas("ses-01")


def test_noise_ceiling_desc_errors(sub: Subject, downloaded: Path) -> None:
    from laion_fmri.errors import DataNotDownloadedError
    from laion_fmri.subject import load_subject

    with pytest.raises(ValueError, match="Did you mean 'Noiseceiling12rep'"):
        sub.get_noise_ceiling(desc="Noiseceiling13rep")
    # A published map that is not on disk names the cheap download call.
    fresh = load_subject(sub.subject_id, data_dir=downloaded)
    (downloaded / layout.subject_nc_key(sub.subject_id, "Noiseceiling4rep")).unlink()
    with pytest.raises(DataNotDownloadedError, match='ses="averages"'):
        fresh.get_noise_ceiling(desc="Noiseceiling4rep")
