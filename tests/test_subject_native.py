"""The voxel axis per mask source, anatomy, FreeSurfer, raw BIDS runs and localizers.

Everything is checked against plain nibabel/pandas reads of the sample files:
the reference release's voxel order is the C order of the ``(x, y, z)`` mask.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from laion_fmri import layout
from laion_fmri.errors import CorruptFileError, DataNotDownloadedError
from laion_fmri.group import load_subjects
from laion_fmri.sample import spec_for
from laion_fmri.subject import Subject, load_subject

SPEC = spec_for("tiny")
SUB = "sub-03"
SOURCES = ("anatomical", "rsquare")


@pytest.fixture(scope="module")
def sub(shared_downloaded: Path) -> Subject:
    return load_subject(SUB, data_dir=shared_downloaded)


def _mask3d(root: Path, source: str, subject: str = SUB) -> np.ndarray:
    if source == "anatomical":
        return nib.load(str(root / layout.anatomical_brain_mask_key(subject))).get_fdata() != 0
    return nib.load(str(root / layout.r2mean_key(subject))).get_fdata() != 0


def _volume(root: Path, key: str) -> np.ndarray:
    return np.asarray(nib.load(str(root / key)).get_fdata(dtype=np.float32))


# ----------------------------------------------------------------------------- mask_source
@pytest.mark.parametrize("source", SOURCES)
def test_every_voxel_axis_api_follows_the_mask_source(sub: Subject, shared_downloaded: Path,
                                                     source: str, tmp_path: Path) -> None:
    mask = _mask3d(shared_downloaded, source)
    assert sub.get_n_voxels(source) == int(mask.sum())
    np.testing.assert_array_equal(sub.get_brain_mask(source=source), mask.ravel())
    data = _volume(shared_downloaded, layout.betas_key(SUB, "ses-02"))
    truth = data[mask].T
    np.testing.assert_array_equal(sub.get_betas("ses-02", mask_source=source), truth)
    roi3d = _volume(shared_downloaded, layout.roi_volume_key(SUB, "face", "FFA-1")) != 0
    roi = roi3d[mask]
    np.testing.assert_array_equal(sub.get_roi_mask("FFA1", mask_source=source), roi)
    np.testing.assert_array_equal(sub.get_roi_data("FFA1", mask_source=source)["FFA1"], roi)
    np.testing.assert_array_equal(sub.get_betas("ses-02", roi="FFA1", mask_source=source),
                                  truth[:, roi])
    nc = _volume(shared_downloaded, layout.session_nc_key(SUB, "ses-02"))[mask]
    np.testing.assert_array_equal(sub.get_noise_ceiling(session="ses-02", mask_source=source), nc)
    thr = float(np.nanpercentile(nc[nc > 0], 50))
    np.testing.assert_array_equal(
        sub.get_betas("ses-02", nc_threshold=thr, mask_source=source), truth[:, nc >= thr])
    pick = np.zeros(mask.sum(), bool)
    pick[::5] = True
    np.testing.assert_array_equal(sub.get_betas("ses-02", mask=pick, mask_source=source),
                                  truth[:, pick])
    labels = pd.read_csv(shared_downloaded / layout.trials_key(SUB, "ses-02"), sep="\t")["label"]
    averaged = sub.get_betas("ses-02", average="label", mask_source=source)
    assert averaged.shape == (labels.nunique(), mask.sum())
    coords = nib.affines.apply_affine(sub.affine, np.argwhere(mask))
    np.testing.assert_allclose(sub.get_voxel_coordinates(mask_source=source), coords)
    np.testing.assert_allclose(sub.get_voxel_coordinates(roi="FFA1", mask_source=source),
                               coords[roi])
    written = nib.load(str(sub.to_nifti(nc, tmp_path / "nc.nii.gz", mask_source=source)))
    np.testing.assert_array_equal(written.get_fdata()[mask], nc)
    assert np.all(written.get_fdata()[~mask] == 0)


def test_the_anatomical_axis_is_the_default_and_broader(sub: Subject, shared_downloaded: Path) -> None:
    anat, r2 = (_mask3d(shared_downloaded, s) for s in SOURCES)
    assert r2.sum() < anat.sum() and not np.any(r2 & ~anat)  # rsquare is a subset
    assert sub.get_n_voxels() == sub.get_n_voxels("anatomical") == int(anat.sum())
    assert sub.select("ses-01").mask_source == "anatomical"
    assert sub.select("ses-01", mask_source="rsquare").mask_source == "rsquare"
    with pytest.raises(ValueError, match="mask_source"):
        sub.get_n_voxels("brain")


@pytest.mark.parametrize("source", SOURCES)
def test_lazy_xarray_split_and_group_follow_the_mask_source(sub: Subject, shared_downloaded: Path,
                                                           source: str) -> None:
    pytest.importorskip("dask.array")
    n = sub.get_n_voxels(source)
    eager = sub.get_betas(["ses-01", "ses-02"], roi="face", mask_source=source)
    lazy = sub.get_betas(["ses-01", "ses-02"], roi="face", lazy=True, mask_source=source)
    np.testing.assert_array_equal(lazy.compute(), np.concatenate(list(eager.values())))
    da = sub.to_xarray(session="ses-01", mask_source=source)
    assert da.shape[1] == n and da.attrs["mask_source"] == source
    mask = _mask3d(shared_downloaded, source)
    np.testing.assert_array_equal(np.column_stack([da.i, da.j, da.k]), np.argwhere(mask))
    x_train, x_test, _, _ = sub.get_split("tau", session="ses-01", mask_source=source)
    assert x_train.shape[1] == x_test.shape[1] == n
    shared = load_subjects([SUB], data_dir=shared_downloaded).get_shared_betas(
        "ses-01", mask_source=source)
    assert shared[SUB].shape[1] == n


def test_torch_dataset_follows_the_mask_source(sub: Subject) -> None:
    pytest.importorskip("torch")
    for source in SOURCES:
        ds = sub.to_torch_dataset(session="ses-01", features=(), mask_source=source)
        assert ds.n_voxels == sub.get_n_voxels(source) and ds.mask_source == source
        np.testing.assert_array_equal(ds[3]["betas"].numpy(),
                                      sub.get_betas("ses-01", mask_source=source)[3])


def test_plots_follow_the_mask_source(sub: Subject, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from laion_fmri.plotting import back_project, plot_map

    nc = sub.get_noise_ceiling(session="ses-01", mask_source="rsquare")
    vol = back_project(sub, nc, None, mask_source="rsquare")
    assert np.isfinite(vol).sum() == nc.size
    plot_map(sub, nc, mask_source="rsquare", out=tmp_path / "nc.png")
    with pytest.raises(ValueError, match="one entry per selected voxel"):
        plot_map(sub, nc)  # rsquare values on the default (anatomical) axis


def test_missing_anatomical_mask_names_the_download(downloaded: Path) -> None:
    (downloaded / layout.anatomical_brain_mask_key(SUB)).unlink()
    sub = load_subject(SUB, data_dir=downloaded)
    with pytest.raises(DataNotDownloadedError,
                       match=r'download\(subject="sub-03", include_anatomical=True\)'):
        sub.get_betas("ses-01")
    with pytest.raises(DataNotDownloadedError, match="mask_source='rsquare'"):
        sub.get_n_voxels()
    assert sub.get_betas("ses-01", mask_source="rsquare").shape[1] == SPEC.n_brain_voxels


@pytest.mark.parametrize("change", ["shape", "affine"])
def test_mask_on_another_grid_is_an_error_not_a_resample(downloaded: Path, change: str) -> None:
    path = downloaded / layout.anatomical_brain_mask_key(SUB)
    img = nib.load(str(path))
    data, affine = np.asarray(img.dataobj), img.affine.copy()
    if change == "shape":
        data = data[:-1]
    else:
        affine[:3, :3] *= 1.5
    nib.save(nib.Nifti1Image(data.astype(np.uint8), affine), str(path))
    sub = load_subject(SUB, data_dir=downloaded)
    with pytest.raises(CorruptFileError, match="never resamples"):
        sub.get_betas("ses-01")
    assert sub.get_n_voxels("rsquare") == SPEC.n_brain_voxels  # the other axis still works


# ----------------------------------------------------------------------------- anatomy, FreeSurfer
def test_anatomical_images(sub: Subject, shared_downloaded: Path) -> None:
    for res, shape in (("1pt8", SPEC.grid_shape), ("0pt8", SPEC.hires_grid_shape)):
        for getter, suffix in ((sub.get_t1w, "T1w"), (sub.get_t2w, "T2w"),
                               (sub.get_anatomical_brain_mask, "mask")):
            img = getter(res=res)
            truth = nib.load(str(shared_downloaded / layout.anatomical_key(SUB, suffix, res)))
            assert img.shape == shape
            np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(truth.dataobj))
            np.testing.assert_allclose(img.affine, truth.affine)
    np.testing.assert_array_equal(np.asarray(sub.get_anatomical_brain_mask().dataobj).ravel() != 0,
                                  sub.get_brain_mask())
    with pytest.raises(ValueError, match="resolution"):
        sub.get_t1w(res="2mm")


def test_freesurfer_dir(sub: Subject, shared_downloaded: Path, downloaded: Path) -> None:
    fs = sub.get_freesurfer_dir()
    assert sub.has_freesurfer() and fs == shared_downloaded / layout.freesurfer_prefix(SUB).rstrip("/")
    coords, faces = nib.freesurfer.read_geometry(str(fs / "surf" / "lh.white"))
    assert coords.shape[1] == 3 and faces.shape[1] == 3
    shutil.rmtree(downloaded / layout.freesurfer_prefix(SUB))
    other = load_subject(SUB, data_dir=downloaded)
    assert not other.has_freesurfer()
    with pytest.raises(DataNotDownloadedError, match="include_freesurfer=True"):
        other.get_freesurfer_dir()
    shutil.rmtree(downloaded / layout.anatomical_prefix(SUB))
    with pytest.raises(DataNotDownloadedError, match="include_anatomical=True"):
        other.get_t1w()


# ----------------------------------------------------------------------------- raw BIDS
def test_events_per_run_and_stacked(sub: Subject, shared_downloaded: Path) -> None:
    session = SPEC.raw_sessions[0]
    runs = list(range(1, SPEC.raw_runs + 1))
    parts = [pd.read_csv(shared_downloaded / layout.raw_events_key(SUB, session, r), sep="\t")
             for r in runs]
    for r, part in zip(runs, parts, strict=True):
        pd.testing.assert_frame_equal(sub.get_events(session, run=r), part)
    stacked = sub.get_events(session)
    assert stacked["run"].tolist() == [r for r, p in zip(runs, parts, strict=True) for _ in range(len(p))]
    pd.testing.assert_frame_equal(stacked.drop(columns="run"), pd.concat(parts, ignore_index=True))
    trials = sub.get_trial_info(session)
    assert stacked["label"].tolist() == trials[trials["run"].isin(runs)]["label"].tolist()
    assert sub.has_raw() and sub.has_raw(session) and not sub.has_raw("ses-02")
    with pytest.raises(DataNotDownloadedError, match=r'download_raw\(subject="sub-03", ses="ses-02"\)'):
        sub.get_events("ses-02")


@pytest.mark.parametrize("source", SOURCES)
def test_raw_bold_and_sbref_are_masked_like_the_betas(sub: Subject, shared_downloaded: Path,
                                                      source: str) -> None:
    session = SPEC.raw_sessions[0]
    mask = _mask3d(shared_downloaded, source)
    for echo, part in ((1, "mag"), (3, "phase")):
        bold = sub.get_raw_bold(session, 2, echo, part=part, mask_source=source)
        truth = _volume(shared_downloaded, layout.raw_image_key(SUB, session, 2, echo, part))
        assert bold.shape == (SPEC.n_raw_volumes, mask.sum()) and bold.dtype == np.float32
        np.testing.assert_array_equal(bold, truth[mask].T)
        sbref = sub.get_sbref(session, 2, echo, part=part, mask_source=source)
        ref = _volume(shared_downloaded, layout.raw_image_key(SUB, session, 2, echo, part, "sbref"))
        np.testing.assert_array_equal(sbref, ref[mask])
    with pytest.raises(DataNotDownloadedError, match="download_raw"):
        sub.get_raw_bold(session, 9, 1)
    with pytest.raises(ValueError, match="echo"):
        sub.get_raw_bold(session, 1, 4)


# ----------------------------------------------------------------------------- localizers
def test_localizers_listed_and_on_the_voxel_axis(sub: Subject, shared_downloaded: Path) -> None:
    table = sub.get_localizers()
    assert len(table) == len(SPEC.localizer_maps())
    assert set(table["task"]) == {m["task"] for m in SPEC.localizer_maps()}
    assert all(Path(p).is_file() for p in table["path"])
    session = SPEC.localizer_session
    for source in SOURCES:
        mask = _mask3d(shared_downloaded, source)
        key = layout.localizer_key(SUB, session, "floc", "faceVsOthers")
        z = sub.get_localizer("floc", "faceVsOthers", mask_source=source)
        np.testing.assert_array_equal(z, _volume(shared_downloaded, key)[mask])
        face = sub.get_roi_mask("face", mask_source=source)
        assert z[face].mean() > z[~face].mean() + 2  # the planted effect is in the face ROIs
    run2 = sub.get_localizer("floc", "face", stat="effect", run=2)
    key = layout.localizer_key(SUB, session, "floc", "face", "effect", run=2)
    np.testing.assert_array_equal(run2, _volume(shared_downloaded, key)[_mask3d(shared_downloaded,
                                                                                "anatomical")])
    with pytest.raises(DataNotDownloadedError, match="faceVsOthers"):
        sub.get_localizer("floc", "bodyVsOthers")
