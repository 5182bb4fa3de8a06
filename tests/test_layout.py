"""Round trips of the key layout and path-safety checks (property-based where it pays)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laion_fmri import layout
from laion_fmri.errors import SessionNotFoundError, SubjectNotFoundError, UnsafeKeyError

subjects = st.sampled_from(layout.SUBJECTS)
session_numbers = st.integers(min_value=1, max_value=99)
labels = st.from_regex(r"[A-Za-z0-9]{1,6}(-[A-Za-z0-9]{1,6}){0,2}", fullmatch=True)
categories = st.sampled_from(layout.ROI_CATEGORIES)


@given(subjects)
def test_subject_forms_round_trip(sub: str) -> None:
    number = sub.split("-")[1]
    for form in (sub, number, str(int(number)), int(number), f" {sub} "):
        assert layout.normalize_subject(form) == sub


@given(session_numbers)
def test_session_forms_round_trip(n: int) -> None:
    canonical = f"ses-{n:02d}"
    for form in (canonical, f"{n:02d}", str(n), n):
        assert layout.normalize_session(form) == canonical


@pytest.mark.parametrize("bad", ["sub-", "sub-3_x", "", None, True, 2.0, "subject-03", "sub-../x"])
def test_bad_subjects_raise(bad: object) -> None:
    with pytest.raises(SubjectNotFoundError, match="Valid subjects"):
        layout.normalize_subject(bad)


def test_any_well_formed_subject_label_is_accepted() -> None:
    # Whether it exists is the source's listing's business (download checks it).
    assert layout.normalize_subject("sub-99") == "sub-99"
    assert layout.normalize_subject("sub-3x") == "sub-3x"
    with pytest.raises(SubjectNotFoundError, match="Valid subjects: sub-01"):
        layout.normalize_subject("sub-99", known=["sub-01"])


@pytest.mark.parametrize("bad", ["first", "", None, True, "ses-", "ses-1a"])
def test_bad_sessions_raise(bad: object) -> None:
    with pytest.raises(SessionNotFoundError):
        layout.normalize_session(bad)


@given(subjects, session_numbers)
def test_session_keys_parse_back(sub: str, n: int) -> None:
    ses = f"ses-{n:02d}"
    for key in (layout.betas_key(sub, ses), layout.session_nc_key(sub, ses),
                layout.session_r2_key(sub, ses), layout.trials_key(sub, ses)):
        assert layout.subject_of(key) == sub
        assert layout.session_of(key) == ses
        ents = layout.parse_entities(key)
        assert ents["task"] == layout.TASK and ents["datatype"] == "func"
        side = layout.sidecar_key(key)
        assert side.endswith(".json") and layout.parse_entities(side)["suffix"] == ents["suffix"]
    betas = layout.parse_entities(layout.betas_key(sub, ses))
    assert (betas["stat"], betas["desc"], betas["suffix"], betas["extension"]) == (
        "effect", "SingletrialBetas", "statmap", "nii.gz")


@given(subjects)
def test_subject_level_keys_have_no_session(sub: str) -> None:
    for key in (layout.r2mean_key(sub), layout.snapshot_brain_mask_key(sub),
                *(layout.subject_nc_key(sub, d) for d in layout.SUBJECT_NC_DESCS)):
        assert layout.session_of(key) is None
        assert layout.subject_of(key) == sub
        assert key.startswith(layout.subject_glm_prefix(sub))
    assert set(layout.brain_mask_keys(sub)) >= {layout.r2mean_key(sub)}


@given(subjects, categories, labels)
def test_roi_keys_round_trip_with_dehyphenated_label(sub: str, cat: str, label: str) -> None:
    key = layout.roi_volume_key(sub, cat, label)
    assert layout.parse_roi_volume_key(key) == (sub, cat, label.replace("-", ""))
    local = layout.local_relpath(key)
    assert f"label-{label.replace('-', '')}_" in local
    assert layout.bidsify(local) == local  # idempotent
    assert layout.parse_roi_volume_key(layout.roi_surface_key(sub, cat, label, "L")) is None


def test_snapshot_roi_layout_is_uncategorized() -> None:
    key = layout.snapshot_roi_prefix("sub-01") + "V1v.nii.gz"
    assert layout.parse_roi_volume_key(key) == ("sub-01", layout.SNAPSHOT_ROI_CATEGORY, "V1v")
    assert layout.parse_roi_volume_key("derivatives/rois/sub-01/face/readme.txt") is None


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "a/../../b", "/abs/path", "a\\b", "a//b", "a/./b", "a/b/", "C:x",
     "a\x00b", "a\nb", "", "x" * 2000, "a/" + "y" * 300],
)
def test_unsafe_keys_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeKeyError, match="Refusing"):
        layout.local_path(tmp_path, key)


def test_symlinked_folder_cannot_escape(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafeKeyError):
        layout.local_path(root, "link/outside.txt")


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["a", "b", ".", "..", "/", "\\", "-", ":", "\x00", "é", "C:"]),
                max_size=15))
def test_local_path_never_escapes(parts: list[str]) -> None:
    key = "".join(parts)
    root = Path("/tmp/laion-layout-root")
    try:
        path = layout.local_path(root, key)
    except UnsafeKeyError:
        return
    assert root.resolve() in path.parents


def test_state_paths_live_under_the_state_dir(tmp_path: Path) -> None:
    state = layout.state_dir(tmp_path)
    for path in (layout.manifest_path(tmp_path), layout.license_marker(tmp_path),
                 layout.lock_path(tmp_path), layout.cache_dir(tmp_path)):
        assert path.parent == state
    target = tmp_path / "x.nii.gz"
    assert layout.partial_path(target).name == "x.nii.gz.part"
    assert layout.partial_state_path(target).name == "x.nii.gz.part.json"
