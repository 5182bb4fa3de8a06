"""The reference package's public names that do not involve ``Subject`` (DATASET.md 9.1, 9.3, 9.5).

Written from the specification of the names, not from the reference's tests:
each entry point is called the way a notebook written for the reference calls
it, on real files of the sample dataset, and compared with plain nibabel.
"""

from __future__ import annotations

import builtins
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from laion_fmri import layout
from laion_fmri.sample import spec_for

SPEC = spec_for("tiny")
SUB = "sub-03"


def _nib(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).get_fdata(dtype=np.float64))


# --------------------------------------------------------------------------- errors
REFERENCE_ERRORS = {
    "DataDirNotSetError": Exception,
    "DataNotDownloadedError": FileNotFoundError,
    "SubjectNotFoundError": ValueError,
    "StimuliNotDownloadedError": FileNotFoundError,
    "LicenseNotAcceptedError": RuntimeError,
    "DataNotFoundError": FileNotFoundError,
    "NoMatchingDataError": FileNotFoundError,
    "AccessServiceError": RuntimeError,
    "TermsOutdatedError": RuntimeError,
    "AccessRevokedError": RuntimeError,
    "AccessNotFoundError": RuntimeError,
}


@pytest.mark.parametrize(("name", "base"), sorted(REFERENCE_ERRORS.items()))
def test_error_classes_under_reference_names(name: str, base: type) -> None:
    from laion_fmri import _errors, errors

    cls = getattr(_errors, name)
    assert cls is getattr(errors, name)  # one class, two import paths
    assert issubclass(cls, base) and issubclass(cls, errors.LaionFMRIError)
    with pytest.raises(base):
        raise cls("x")


def test_error_hierarchy_of_the_later_reference() -> None:
    from laion_fmri import _errors

    assert issubclass(_errors.DataNotDownloadedError, _errors.DataNotFoundError)
    assert issubclass(_errors.NoMatchingDataError, _errors.DataNotFoundError)
    for name in ("TermsOutdatedError", "AccessRevokedError", "AccessNotFoundError"):
        assert issubclass(getattr(_errors, name), _errors.AccessServiceError)
    assert _errors.DataNotConfiguredError is _errors.DataDirNotSetError
    assert set(_errors.__all__) >= set(REFERENCE_ERRORS)


# --------------------------------------------------------------------------- io
@pytest.mark.parametrize("session", ["ses-01", "ses-02", "ses-03"])
@pytest.mark.parametrize("subject", SPEC.subjects)
def test_io_loaders_match_nibabel(sample_root: Path, subject: str, session: str) -> None:
    from laion_fmri import io

    mask_path = sample_root / layout.r2mean_key(subject)
    betas_path = sample_root / layout.betas_key(subject, session)
    mask = io.load_nifti_mask(mask_path)
    assert mask.dtype == bool and mask.shape == (int(np.prod(SPEC.grid_shape)),)
    assert (mask == (_nib(mask_path) != 0).ravel()).all()
    assert mask.sum() == SPEC.n_brain_voxels
    # int16-scaled, big-endian, NaN, multi-member and BGZF sessions all read like nibabel.
    betas = io.load_nifti_4d(betas_path, mask_path)
    truth = _nib(betas_path).reshape(-1, SPEC.n_trials_in(subject, session))[mask].T
    assert betas.dtype == np.float32 and betas.shape == truth.shape
    np.testing.assert_allclose(betas, truth, rtol=1e-6, atol=1e-6, equal_nan=True)
    nc_path = sample_root / layout.session_nc_key(subject, session)
    nc = io.load_nifti_data(nc_path, mask_path)
    np.testing.assert_allclose(nc, _nib(nc_path).ravel()[mask], rtol=1e-6)


def test_io_with_the_anatomical_mask_and_raw_bold(sample_root: Path) -> None:
    from laion_fmri import io

    anat_path = sample_root / layout.anatomical_brain_mask_key(SUB)
    anat = io.load_nifti_mask(anat_path)
    assert anat.sum() == SPEC.n_anatomical_voxels > SPEC.n_brain_voxels
    betas_path = sample_root / layout.betas_key(SUB, "ses-01")
    betas = io.load_nifti_4d(betas_path, anat_path)
    brain_in_anat = SPEC.brain_mask().ravel()[anat]
    assert betas.shape[1] == anat.sum()
    assert (betas[:, ~brain_in_anat] == 0).all()  # no functional fit outside R2mean
    bold_path = sample_root / layout.raw_image_key(SUB, SPEC.raw_sessions[0], 1, 2, "mag")
    bold = io.load_nifti_4d(bold_path, anat_path)
    np.testing.assert_array_equal(
        bold, _nib(bold_path).reshape(-1, SPEC.n_raw_volumes)[anat].T.astype(np.float32))


def test_io_shape_and_grid_errors(sample_root: Path) -> None:
    from laion_fmri import io

    mask_path = sample_root / layout.r2mean_key(SUB)
    betas_path = sample_root / layout.betas_key(SUB, "ses-01")
    with pytest.raises(ValueError, match="not 4-D"):
        io.load_nifti_4d(mask_path, mask_path)
    with pytest.raises(ValueError, match="load_nifti_4d"):
        io.load_nifti_data(betas_path, mask_path)
    hires = sample_root / layout.anatomical_key(SUB, "mask", "0pt8")
    with pytest.raises(ValueError, match=r"not on the grid.*never resampled"):
        io.load_nifti_4d(betas_path, hires)
    with pytest.raises(FileNotFoundError):
        io.load_tsv(sample_root / "nope.tsv")


def test_io_whole_images_and_tables(sample_root: Path) -> None:
    from laion_fmri import io

    t1 = sample_root / layout.anatomical_key(SUB, "T1w", "0pt8")
    data, affine = io.load_nifti_with_affine(t1)
    np.testing.assert_array_equal(data, _nib(t1))
    np.testing.assert_allclose(affine, nib.load(str(t1)).affine)
    bold = sample_root / layout.raw_image_key(SUB, SPEC.raw_sessions[0], 2, 1, "phase")
    data4, _ = io.load_nifti_with_affine(bold)
    assert data4.shape == (*SPEC.grid_shape, SPEC.n_raw_volumes)
    np.testing.assert_array_equal(data4, _nib(bold))
    trials = io.load_tsv(sample_root / layout.trials_key(SUB, "ses-02"))
    assert list(trials.columns) == list(layout.TRIAL_COLUMNS)
    assert len(trials) == SPEC.n_trials_in(SUB, "ses-02")


# --------------------------------------------------------------------------- brain
def test_brain_to_nifti_and_coordinates(sample_root: Path, tmp_path: Path) -> None:
    from laion_fmri import brain

    mask_path = sample_root / layout.r2mean_key(SUB)
    mask3d = _nib(mask_path) != 0
    affine = nib.load(str(mask_path)).affine
    n = int(mask3d.sum())
    values = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    out = brain.to_nifti(values, tmp_path / "v.nii.gz", mask_path, affine)
    img = nib.load(str(out))
    assert img.shape == SPEC.grid_shape and img.get_data_dtype() == np.float32
    written = np.asarray(img.dataobj)
    np.testing.assert_array_equal(written[mask3d], values)  # C order = nibabel's boolean order
    assert (written[~mask3d] == 0).all()
    np.testing.assert_allclose(img.affine, affine)
    coords = brain.get_voxel_coordinates(mask_path, affine)
    np.testing.assert_allclose(coords, nib.affines.apply_affine(affine, np.argwhere(mask3d)))
    # A subset of brain voxels (roi_mask AND custom_mask).
    roi = np.zeros(n, bool)
    roi[::3] = True
    custom = np.zeros(n, bool)
    custom[::2] = True
    both = roi & custom
    sub_values = values[both]
    written = np.asarray(nib.load(str(brain.to_nifti(
        sub_values, tmp_path / "s.nii", mask_path, affine, roi_mask=roi, custom_mask=custom))).dataobj)
    assert np.count_nonzero(written) == both.sum()
    np.testing.assert_array_equal(written[mask3d][both], sub_values)
    np.testing.assert_allclose(brain.get_voxel_coordinates(mask_path, affine, roi_mask=roi),
                               coords[roi])
    with pytest.raises(ValueError, match=f"Values length mismatch: got {n - 1}, expected {n}"):
        brain.to_nifti(values[:-1], tmp_path / "x.nii.gz", mask_path, affine)
    with pytest.raises(ValueError, match="boolean array over the"):
        brain.get_voxel_coordinates(mask_path, affine, roi_mask=np.ones(3, bool))


# --------------------------------------------------------------------------- CLI module
def test_cli_entry_module(capsys: pytest.CaptureFixture[str]) -> None:
    from laion_fmri._cli import main

    assert main([]) == 0  # no sub-command: help, normal exit
    assert "usage" in capsys.readouterr().out.lower()
    assert main(["splits", "list"]) == 0


# --------------------------------------------------------------------------- stimuli
def test_top_level_embeddings(sample_root: Path) -> None:
    import laion_fmri
    from laion_fmri.errors import StimulusNotFoundError

    emb = laion_fmri.load_embeddings(["clip", "DINOv2"], data_dir=sample_root)
    assert isinstance(emb, laion_fmri.Embeddings)
    assert emb.models == ("CLIP", "DINOv2")
    names = emb.image_ids
    assert len(emb) == len(names) == len(SPEC.stimulus_names())
    hub = laion_fmri.load_stimuli(sample_root).embeddings  # the hub gives the same values
    picked = [names[3], names[0], names[3]]  # caller order, repeats kept
    np.testing.assert_array_equal(emb.get("DINOv2", picked), hub.get("DINOv2", picked))
    assert emb["CLIP"].shape == (len(names), layout.EMBEDDING_DIMS["CLIP"])
    np.testing.assert_array_equal(emb["CLIP"][5], hub.get("CLIP", hub.image_ids("CLIP")[5]))
    assert "CLIP" in emb and ("CLIP", names[0]) in emb and "PEcore" not in emb
    with pytest.raises(StimulusNotFoundError, match="PEcore"):
        emb.get("PEcore", names[0])
    with pytest.raises(KeyError):
        emb["SigLIP2"]
    with pytest.raises(ValueError, match="Unknown embedding model 'BERT'"):
        laion_fmri.load_embeddings("BERT", data_dir=sample_root)
    assert laion_fmri.load_embeddings(data_dir=sample_root).models == layout.EMBEDDING_MODELS


def test_embeddings_not_downloaded(tmp_path: Path) -> None:
    import laion_fmri
    from laion_fmri.errors import StimuliNotDownloadedError

    with pytest.raises(StimuliNotDownloadedError, match="download_embeddings"):
        laion_fmri.load_embeddings(data_dir=tmp_path)
    with pytest.raises(StimuliNotDownloadedError, match=r"download_embeddings\(models=\['CLIP'\]\)"):
        laion_fmri.load_embeddings("CLIP", data_dir=tmp_path)


def test_captions_list_and_images(sample_root: Path) -> None:
    import laion_fmri
    from laion_fmri.errors import StimulusNotFoundError

    table = pd.read_csv(sample_root / layout.CAPTIONS_KEY)
    captions = laion_fmri.Captions(sample_root)
    assert sorted(captions.images()) == sorted(table["image_name"].unique())
    name = SPEC.doc_image
    rows = table[table["image_name"] == name].sort_values("caption_idx")
    assert captions.list(name) == rows["caption"].tolist()
    assert captions.list(name, source="human") == rows.loc[rows["source"] == "human", "caption"].tolist()
    assert captions.list(name, source="ai") == [captions.ai(name)]
    assert captions.list(name, source="human") == captions.human(name)
    hub = laion_fmri.load_stimuli(sample_root).captions
    assert hub.list(name) == captions.list(name) and hub.images() == captions.images()
    no_ai = next(n for n in captions.images() if captions.ai(n) is None)
    assert captions.list(no_ai, source="ai") == []
    with pytest.raises(StimulusNotFoundError, match="caption source 'robot'"):
        captions.list(name, source="robot")
    assert builtins.list is list  # the method name does not leak


def test_standalone_segmentations(sample_root: Path) -> None:
    import laion_fmri

    seg = laion_fmri.Segmentations(sample_root)
    hub = laion_fmri.load_stimuli(sample_root).segmentations
    assert seg.images() == hub.images() and len(seg) == len(hub)
    assert seg.nouns(SPEC.doc_image) == hub.nouns(SPEC.doc_image)


# --------------------------------------------------------------------------- localizer paths
def test_localizer_paths_name_the_sample_files(sample_root: Path) -> None:
    from laion_fmri import derivatives

    assert derivatives.VOLUME_RESOLUTIONS == ("1pt8", "1pt5")
    assert "floc" in derivatives.LOCALIZER_TASKS and "MotionLoc" in derivatives.LOCALIZER_TASKS
    ses = SPEC.localizer_session
    found = {p for p in (sample_root / "derivatives" / "localizers").rglob("*") if p.is_file()}
    paths = set()
    for sub in SPEC.subjects:
        for entry in SPEC.localizer_maps():
            space = str(entry.get("space", "T1w"))
            common = {"space": space, "hemi": entry.get("hemi"), "res": "1pt8",
                      "data_dir": sample_root}
            if entry["stat"] == "z":
                path = derivatives.localizer_statmap_path(
                    int(sub[-2:]), entry["task"], entry["contrast"], ses, **common)
            else:
                path = derivatives.localizer_effect_path(
                    sub, entry["task"], entry["contrast"], ses[-2:], entry["run"], **common)
            paths.add(path)
    assert paths == found
    with pytest.raises(ValueError, match="hemi"):
        derivatives.localizer_statmap_path(SUB, "floc", "faceVsOthers", ses, data_dir=sample_root)
    with pytest.raises(ValueError, match="pooled"):
        derivatives.localizer_effect_path(SUB, "MotionLoc", "motion", ses, 1, data_dir=sample_root)
    with pytest.raises(ValueError, match="Unknown localizer task"):
        derivatives.localizer_statmap_path(SUB, "wloc", "x", ses, hemi="L", data_dir=sample_root)
    named = derivatives.localizer_statmap_path(SUB, "oloc", "objectsVsScrambled", "ses-PrismaLoc",
                                               space="T1w", data_dir=sample_root)
    assert "/ses-PrismaLoc/" in named.as_posix() and named.name.endswith("res-1pt5_contrast-"
                                                                           "objectsVsScrambled_stat-z_statmap.nii.gz")
