"""Group of subjects on the tiny sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from laion_fmri.errors import DataNotDownloadedError, SubjectNotFoundError
from laion_fmri.group import load_subjects
from laion_fmri.sample import spec_for

SPEC = spec_for("tiny")


def test_load_all_and_index(shared_downloaded: Path) -> None:
    group = load_subjects("all", data_dir=shared_downloaded)
    assert len(group) == len(SPEC.subjects)
    assert [sid for sid, _ in group] == sorted(SPEC.subjects)
    assert group[0].subject_id == "sub-01" and group[1].subject_id == "sub-03"
    assert group["sub-03"].subject_id == "sub-03" and group["3"].subject_id == "sub-03"
    with pytest.raises(KeyError, match="sub-05"):
        group["sub-05"]
    with pytest.raises(SubjectNotFoundError):
        group["sub-9_9"]
    with pytest.raises(TypeError):
        group[1.5]  # type: ignore[index]
    with pytest.raises(IndexError):
        group[5]


def test_subset_and_errors(shared_downloaded: Path, data_dir: Path) -> None:
    group = load_subjects([3], data_dir=shared_downloaded)
    assert group.subject_ids == ["sub-03"]
    with pytest.raises(DataNotDownloadedError, match="subject=\"all\""):
        load_subjects("all", data_dir=data_dir)
    with pytest.raises(DataNotDownloadedError, match="sub-01"):
        load_subjects(["sub-01"], data_dir=data_dir)


def test_shared_betas(shared_downloaded: Path) -> None:
    group = load_subjects("all", data_dir=shared_downloaded)
    out = group.get_shared_betas("ses-01", roi="face")
    assert list(out) == ["sub-01", "sub-03"]
    for sid, sub in group:
        labels = sub.get_trial_info("ses-01")["label"].astype(str)
        rows = labels.str.startswith("shared_").to_numpy()
        full = sub.get_betas("ses-01", roi="face")
        np.testing.assert_array_equal(out[sid], full[rows])
