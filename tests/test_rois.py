"""ROI listing and query grammar on real files (both layouts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from laion_fmri import _rois as rois
from laion_fmri import layout
from laion_fmri.errors import RoiNotFoundError
from laion_fmri.sample import spec_for
from laion_fmri.subject import load_subject

SPEC = spec_for("tiny")


def test_scan_categorised_layout(shared_downloaded: Path) -> None:
    index = rois.scan_rois(shared_downloaded, "sub-03")
    assert index.names == list(SPEC.roi_labels)
    assert index.categories == {c: sorted(v) for c, v in sorted(SPEC.rois.items())}
    category, path = index.volumes["pSTSfaces"]
    assert category == "face" and "label-pSTS-faces" in path.name  # raw bucket copy


def test_resolve_query_grammar(shared_downloaded: Path) -> None:
    index = rois.scan_rois(shared_downloaded, "sub-01")
    face = sorted(SPEC.rois["face"])
    assert rois.resolve_query("FFA1", index) == ["FFA1"]
    assert rois.resolve_query("face", index) == face
    assert rois.resolve_query(["PPA", "face", "FFA1"], index) == ["PPA", *face]
    assert rois.resolve_query("all", index) == list(SPEC.roi_labels)
    with pytest.raises(RoiNotFoundError, match="query is empty"):
        rois.resolve_query([], index)
    with pytest.raises(TypeError, match="ROI name"):
        rois.resolve_query(3, index)  # type: ignore[arg-type]
    with pytest.raises(RoiNotFoundError) as info:
        rois.resolve_query(["FFA1", "ppa"], index, "sub-01")
    text = str(info.value)
    assert "'ppa'" in text and "Did you mean 'PPA'" in text and "Available ROIs: EBA" in text


def test_snapshot_layout_is_read(downloaded: Path) -> None:
    sub = "sub-01"
    face_dir = downloaded / layout.roi_prefix(sub) / "face"
    src = face_dir / f"{sub}_space-T1w_res-1pt8_label-OFA_mask.nii.gz"
    snap = downloaded / layout.snapshot_roi_prefix(sub)
    snap.mkdir(parents=True)
    shutil.copy(src, snap / "visual.nii.gz")
    subject = load_subject(sub)
    assert "visual" in subject.get_available_rois()
    assert subject.get_available_rois(category=layout.SNAPSHOT_ROI_CATEGORY) == ["visual"]
    np.testing.assert_array_equal(subject.get_roi_mask("visual"), subject.get_roi_mask("OFA"))


def test_no_rois_on_disk(downloaded: Path) -> None:
    shutil.rmtree(downloaded / layout.roi_prefix("sub-01"))
    sub = load_subject("sub-01")
    assert sub.get_available_rois() == [] and sub.get_available_categories() == []
    with pytest.raises(RoiNotFoundError, match=r'download\(subject=.sub-01.\)'):
        sub.get_betas("ses-01", roi="FFA1")


def test_roi_on_wrong_grid_is_corrupt(downloaded: Path) -> None:
    from laion_fmri.errors import CorruptFileError

    path = downloaded / layout.roi_volume_key("sub-01", "body", "EBA")
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), np.eye(4)), str(path))
    with pytest.raises(CorruptFileError, match="EBA"):
        load_subject("sub-01").get_roi_mask("EBA")


def test_format_and_hemi_helpers() -> None:
    assert rois.normalize_format("nii.gz") == "volume"
    assert rois.normalize_format("gii") == "func.gii"
    assert rois.normalize_hemis("R") == ("R",)
    with pytest.raises(ValueError, match=r"volume, func\.gii, label"):
        rois.normalize_format("surface")
