"""Download scopes (anatomy, FreeSurfer, raw BIDS) planned over a real local-folder listing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.download_scopes import (
    RawFilters,
    plan_download_raw,
    plan_scopes,
    raw_key_matches,
    scope_prefixes,
    select_anatomical,
    select_freesurfer,
)
from laion_fmri.errors import FilterError, NoMatchingDataError, SessionNotFoundError
from laion_fmri.remote import LocalStore, ObjectInfo
from laion_fmri.sample import spec_for

SPEC = spec_for("tiny")
SUB = "sub-03"
SES = SPEC.raw_sessions[0]
FS_FILES = ("mri/brain.mgz", "mri/transforms/talairach.lta", "surf/lh.white", "label/lh.aparc.annot")


@pytest.fixture(scope="module")
def tree(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample plus a few FreeSurfer files and a held-out raw session."""
    root = tmp_path_factory.mktemp("scopes") / "bucket"
    shutil.copytree(sample_root, root)
    for name in FS_FILES:
        path = root / layout.freesurfer_prefix(SUB) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"fs " + name.encode())
    held = root / layout.raw_image_key(SUB, "ses-31", 1, 1, "mag")
    held.parent.mkdir(parents=True, exist_ok=True)
    held.write_bytes(b"held out")
    return root


@pytest.fixture(scope="module")
def listing(tree: Path) -> list[ObjectInfo]:
    store = LocalStore(tree)
    objects: list[ObjectInfo] = []
    for prefix in scope_prefixes(SUB, include_anatomical=True, include_freesurfer=True,
                                 include_raw=True):
        objects += list(store.list(prefix))
    objects += list(store.list(layout.subject_glm_prefix(SUB)))  # noise: never selected
    return objects


def _on_disk(tree: Path, prefix: str) -> set[str]:
    return {p.relative_to(tree).as_posix() for p in (tree / prefix).rglob("*") if p.is_file()}


def _raw_images(runs, echoes, parts, suffixes=("bold", "sbref")) -> set[str]:  # type: ignore[no-untyped-def]
    return {layout.raw_image_key(SUB, SES, r, e, p, s)
            for r in runs for e in echoes for p in parts for s in suffixes}


def test_prefixes_in_order() -> None:
    assert scope_prefixes(SUB) == ()
    assert scope_prefixes(SUB, include_anatomical=True, include_freesurfer=True,
                          include_raw=True) == (
        "derivatives/anatomical/sub-03/", "derivatives/freesurfer/sub-03/", "sub-03/")


def test_anatomical_and_freesurfer_are_taken_whole(tree: Path, listing: list[ObjectInfo]) -> None:
    anat = select_anatomical(SUB, listing)
    assert all(isinstance(o, ObjectInfo) and o.size > 0 for o in anat)
    assert {o.key for o in anat} == _on_disk(tree, layout.anatomical_prefix(SUB))
    assert layout.anatomical_brain_mask_key(SUB) in {o.key for o in anat}
    assert len(anat) == 3 * len(SPEC.anatomical_resolutions)  # T1w, T2w, mask per resolution
    fs = select_freesurfer(SUB, listing)
    assert {o.key for o in fs} == _on_disk(tree, layout.freesurfer_prefix(SUB))
    assert {layout.freesurfer_prefix(SUB) + n for n in FS_FILES} <= {o.key for o in fs}
    # Another subject's folders are not this subject's scope.
    assert select_anatomical("sub-01", listing) == [] and select_freesurfer("sub-01", listing) == []


def test_plan_scopes_combines_deduplicates_and_skips_held_out(
    tree: Path, listing: list[ObjectInfo]
) -> None:
    assert plan_scopes(SUB, listing) == []
    raw_on_disk = {k for k in _on_disk(tree, layout.raw_subject_prefix(SUB)) if "ses-31" not in k}
    everything = plan_scopes(SUB, listing + listing, include_anatomical=True,
                             include_freesurfer=True, include_raw=True)
    keys = [o.key for o in everything]
    assert len(keys) == len(set(keys))
    assert set(keys) == (_on_disk(tree, layout.anatomical_prefix(SUB))
                         | _on_disk(tree, layout.freesurfer_prefix(SUB)) | raw_on_disk)
    n_raw = SPEC.raw_runs * (len(layout.RAW_ECHOES) * len(layout.RAW_PARTS) * 2 + 1)
    assert len(raw_on_disk) == n_raw
    # download()'s ses/suffix/extension reach the raw tree only; anatomy stays whole.
    only_events = plan_scopes(SUB, listing, include_anatomical=True, include_raw=True,
                              raw_filters=RawFilters.from_args(suffix="events"))
    assert {o.key for o in only_events} == (
        _on_disk(tree, layout.anatomical_prefix(SUB))
        | {layout.raw_events_key(SUB, SES, r) for r in range(1, SPEC.raw_runs + 1)})


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, _raw_images((1, 2), (1, 2, 3), ("mag", "phase"))
         | {layout.raw_events_key(SUB, SES, r) for r in (1, 2)}),
        ({"run": 1, "echo": 2, "part": "mag"},
         _raw_images((1,), (2,), ("mag",)) | {layout.raw_events_key(SUB, SES, 1)}),
        ({"ses": "01", "run": ["run-02"], "echo": [1, "3"], "part": "phase", "suffix": "bold"},
         _raw_images((2,), (1, 3), ("phase",), ("bold",))),
        ({"suffix": "sbref", "echo": "echo-1"}, _raw_images((1, 2), (1,), ("mag", "phase"), ("sbref",))),
        ({"extension": ".tsv"}, {layout.raw_events_key(SUB, SES, r) for r in (1, 2)}),
        ({"suffix": "events", "run": 2}, {layout.raw_events_key(SUB, SES, 2)}),
    ],
    ids=["all", "one-run-echo-part", "lists", "sbref-echo1", "extension", "events-run2"],
)
def test_download_raw_honours_run_echo_part(listing: list[ObjectInfo], kwargs: dict,
                                            expected: set[str]) -> None:
    chosen = plan_download_raw(SUB, listing, **kwargs)
    assert {o.key for o in chosen} == expected
    assert all("ses-31" not in o.key for o in chosen)  # held out, never planned
    # Plain keys work the same.
    assert set(plan_download_raw(SUB, [o.key for o in listing], **kwargs)) == expected


def test_raw_filter_rules_on_other_raw_datatypes() -> None:
    fmap = f"{SUB}/{SES}/fmap/{SUB}_{SES}_dir-AP_epi.nii.gz"
    dwi = f"{SUB}/dwi/{SUB}_dwi.nii.gz"
    sidecar = layout.raw_image_key(SUB, SES, 1, 2).replace(".nii.gz", ".json")
    f = RawFilters.from_args(run=1, echo=2)
    assert raw_key_matches(fmap, f) and raw_key_matches(dwi, f)  # entity absent: kept
    assert not raw_key_matches(dwi, RawFilters.from_args(ses=1))  # ses is strict
    assert raw_key_matches(sidecar, RawFilters.from_args(suffix="bold", extension="nii.gz"))
    assert not raw_key_matches(sidecar, RawFilters.from_args(extension="nii.gz"))
    assert RawFilters.from_args(ses=["ses-1", 1]).ses == ("ses-01",)
    assert RawFilters.from_args(run=1, part="mag").describe() == "run=1 part=mag"


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"echo": 4}, FilterError, r"echo=4 does not exist.*1, 2, 3"),
        ({"part": "real"}, FilterError, r"Unknown part 'real'.*mag, phase"),
        ({"run": "first"}, FilterError, r"run= takes numbers"),
        ({"run": []}, FilterError, r"non-empty"),
        ({"run": True}, FilterError, r"run="),
        ({"ses": "x1"}, SessionNotFoundError, r"main sessions"),
        ({"ses": 2}, NoMatchingDataError, r"No raw file of sub-03 matches ses=ses-02.*ses=01"),
        ({"suffix": "T1w"}, NoMatchingDataError, r"suffix=T1w.*suffix=bold"),
    ],
)
def test_download_raw_errors(listing: list[ObjectInfo], kwargs: dict, error: type,
                             pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        plan_download_raw(SUB, listing, **kwargs)


def test_download_raw_without_raw_data(listing: list[ObjectInfo]) -> None:
    with pytest.raises(NoMatchingDataError, match=r"no raw BIDS data for sub-01"):
        plan_download_raw("sub-01", [o for o in listing if not o.key.startswith("sub-")])
    only_held_out = [o for o in listing if "ses-31" in o.key]
    assert only_held_out
    with pytest.raises(NoMatchingDataError, match="no raw BIDS data"):
        plan_download_raw(SUB, only_held_out)
