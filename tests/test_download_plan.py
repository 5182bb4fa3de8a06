"""Pure selection rules of a download, on synthetic key lists built from layout."""

from __future__ import annotations

import os
import warnings

import pytest

from laion_fmri import layout
from laion_fmri.download.plan import (
    Filters,
    decide,
    format_bytes,
    is_held_out_key,
    key_matches,
    select_subject,
    subject_prefixes,
    validate_n_jobs,
)
from laion_fmri.errors import FilterError, SessionNotFoundError
from laion_fmri.remote import ObjectInfo

SUB = "sub-03"
SESSIONS = ("ses-01", "ses-02", "ses-31")


def _session_keys(ses: str) -> list[str]:
    keys = [
        layout.betas_key(SUB, ses),
        layout.session_nc_key(SUB, ses),
        layout.session_r2_key(SUB, ses),
        layout.trials_key(SUB, ses),
    ]
    return keys + [layout.sidecar_key(k) for k in keys]


def _listing() -> list[ObjectInfo]:
    keys = [k for ses in SESSIONS for k in _session_keys(ses)]
    keys += [layout.r2mean_key(SUB), layout.subject_nc_key(SUB, "Noiseceiling12rep")]
    keys += [layout.roi_volume_key(SUB, "face", "FFA-1"), layout.roi_volume_key(SUB, "place", "PPA")]
    return [ObjectInfo(k, 10 + i, f"{i:032x}", None) for i, k in enumerate(keys)]


def _select(**filters: object) -> tuple[list[str], list[str]]:
    plan = select_subject(SUB, _listing(), Filters.from_args(**filters))
    return plan.keys, [o.key for o in plan.held_out]


def test_no_filters_takes_everything_but_held_out() -> None:
    keys, held = _select()
    assert held == _session_keys("ses-31")
    assert len(keys) == len(_listing()) - len(held)
    assert not any("ses-31" in k for k in keys)


def test_held_out_is_dropped_even_when_asked_for() -> None:
    keys, held = _select(ses="31")
    assert not any("ses-31" in k for k in keys)
    assert held == _session_keys("ses-31")


def test_held_out_is_only_mentioned_when_the_filters_select_it() -> None:
    _, held = _select(ses="ses-01")
    assert held == []
    _, held = _select(ses=["01", "31"], suffix="trials")
    # The trial table and (suffix filters keep sidecars) its JSON sidecar.
    trials = layout.trials_key(SUB, "ses-31")
    assert held == [trials, layout.sidecar_key(trials)]


@pytest.mark.parametrize("value", ["01", "ses-01", "1", 1, ["ses-01"]])
def test_ses_bare_prefixed_or_int_are_equivalent(value: object) -> None:
    keys, _ = _select(ses=value)
    session_keys = [k for k in keys if layout.session_of(k)]
    assert session_keys == _session_keys("ses-01")


def test_ses_is_strict_and_pins_brain_mask_and_keeps_rois() -> None:
    keys, _ = _select(ses="ses-02")
    assert layout.r2mean_key(SUB) in keys  # pinned
    assert layout.subject_nc_key(SUB, "Noiseceiling12rep") not in keys  # strict ses
    assert layout.roi_volume_key(SUB, "face", "FFA-1") in keys  # ROIs ignore ses
    assert {layout.session_of(k) for k in keys} == {None, "ses-02"}


def test_averages_selects_subject_level_only_without_pinning_rule() -> None:
    keys, _ = _select(ses="averages")
    glm = [k for k in keys if k.startswith(layout.GLM_ROOT)]
    assert sorted(glm) == sorted([layout.r2mean_key(SUB), layout.subject_nc_key(SUB, "Noiseceiling12rep")])
    both, _ = _select(ses=["01", "averages"])
    assert set(glm) | set(_session_keys("ses-01")) <= set(both)


def test_permissive_entity_keeps_keys_without_it() -> None:
    keys, _ = _select(desc="SingletrialBetas")
    # ROI masks and trial tables without/with matching desc pass; other descs do not.
    assert layout.roi_volume_key(SUB, "place", "PPA") in keys
    assert layout.trials_key(SUB, "ses-01") in keys
    assert layout.session_nc_key(SUB, "ses-01") not in keys
    assert layout.r2mean_key(SUB) not in keys


def test_suffix_and_extension_with_sidecar_rule() -> None:
    keys, _ = _select(suffix="trials", extension=".tsv")
    assert layout.trials_key(SUB, "ses-01") in keys
    assert layout.sidecar_key(layout.trials_key(SUB, "ses-01")) in keys  # sidecar passes
    assert layout.betas_key(SUB, "ses-01") not in keys
    only_ext, _ = _select(extension="nii.gz")
    assert all(k.endswith(".nii.gz") for k in only_ext)


def test_include_exclude_globs() -> None:
    keys, _ = _select(include="*_trials.*", exclude="*.json")
    assert keys and all(k.endswith("_trials.tsv") for k in keys)


def test_bad_filters_raise_documented_errors() -> None:
    with pytest.raises(SessionNotFoundError):
        Filters.from_args(ses="first")
    with pytest.raises(FilterError, match="datatype"):
        Filters.from_args(datatype="eeg")
    with pytest.raises(FilterError):
        Filters.from_args(desc=[])
    with pytest.raises(FilterError):
        Filters.from_args(task=[None])


def test_datatype_adds_raw_prefix() -> None:
    assert layout.raw_subject_prefix(SUB) not in subject_prefixes(SUB, Filters())
    assert layout.raw_subject_prefix(SUB) in subject_prefixes(SUB, Filters.from_args(datatype="anat"))
    raw = "sub-03/ses-01/anat/sub-03_ses-01_T1w.nii.gz"
    func = "sub-03/ses-01/func/sub-03_ses-01_task-images_run-01_bold.nii.gz"
    f = Filters.from_args(datatype="anat")
    assert key_matches(raw, f) and not key_matches(func, f)


def test_held_out_key_detection() -> None:
    assert is_held_out_key(layout.trials_key(SUB, "ses-34"))
    assert is_held_out_key("sub-03/ses-32/func/x.nii.gz")
    assert not is_held_out_key(layout.trials_key(SUB, "ses-03"))
    assert not is_held_out_key(layout.r2mean_key(SUB))


def test_plan_dedupes_and_totals() -> None:
    objs = _listing()
    plan = select_subject(SUB, objs + objs[:3], Filters())
    assert len(plan.keys) == len(set(plan.keys))
    assert plan.total_bytes == sum(o.size for o in objs if not is_held_out_key(o.key))
    assert "held-out" in (plan.held_out_summary() or "")
    assert "ses-31" in (plan.held_out_summary() or "")


class _Stat:
    def __init__(self, size: int, mtime_ns: int) -> None:
        self.st_size = size
        self.st_mtime_ns = mtime_ns


def test_decide_rules() -> None:
    obj = ObjectInfo("k", 100, "a" * 32, None)
    rec = {"size": 100, "etag": "a" * 32, "mtime_ns": 5}
    assert decide(obj, None, None) == "fetch"
    assert decide(obj, rec, _Stat(100, 5)) == "skip"  # type: ignore[arg-type]
    assert decide(obj, rec, _Stat(100, 6)) == "check"  # touched since: hash it
    assert decide(obj, rec, _Stat(99, 5)) == "fetch"  # truncated
    assert decide(obj, None, _Stat(100, 5)) == "check"  # present, unknown to manifest
    changed = ObjectInfo("k", 100, "b" * 32, None)
    assert decide(changed, rec, _Stat(100, 5)) == "fetch"  # new object in the source
    local = ObjectInfo("k", 100, None, None)
    assert decide(local, rec, _Stat(100, 5)) == "skip"


def test_md5_only_for_single_part_etags() -> None:
    assert ObjectInfo("k", 1, "0123456789abcdef0123456789abcdef", None).md5
    assert ObjectInfo("k", 1, "0123456789abcdef0123456789abcdef-3", None).md5 is None
    assert ObjectInfo("k", 1, None, None).md5 is None


def test_validate_n_jobs() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert validate_n_jobs(3) == 3
    for bad in (0, -2, True, "4", 2.5):
        with pytest.warns(UserWarning, match="positive int"):
            assert validate_n_jobs(bad) == 1
    limit = max(32, 2 * (os.cpu_count() or 1))
    with pytest.warns(UserWarning, match="higher than recommended"):
        assert validate_n_jobs(limit + 1) == limit


def test_format_bytes() -> None:
    assert format_bytes(999) == "999 B"
    assert format_bytes(1_500_000) == "1.5 MB"
