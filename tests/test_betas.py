"""The one betas reader: its cache decision, and its reads against plain nibabel."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from laion_fmri import _cache as cache
from laion_fmri import layout
from laion_fmri.betas import SessionBetas, cache_action
from laion_fmri.errors import DataNotDownloadedError
from laion_fmri.subject import Selection, load_subject

SUB, SES = "sub-01", "ses-01"


@pytest.mark.parametrize(("use", "cached", "writable"), list(itertools.product([True, False], repeat=3)))
def test_cache_action_table(use: bool, cached: bool, writable: bool) -> None:
    got = cache_action(use, cached, writable)
    if not use:
        assert got == "gather"
    elif cached:
        assert got == "map"
    else:
        assert got == ("decode_and_write" if writable else "gather")


def _truth(root: Path, source: str = "anatomical") -> np.ndarray:
    key = layout.anatomical_brain_mask_key(SUB) if source == "anatomical" else layout.r2mean_key(SUB)
    brain = nib.load(str(root / key)).get_fdata() != 0
    data = np.asarray(nib.load(str(root / layout.betas_key(SUB, SES))).get_fdata(dtype=np.float32))
    return data[brain].T


def test_reader_gathers_maps_and_writes_the_cache(downloaded: Path) -> None:
    sub = load_subject(SUB, data_dir=downloaded)
    reader = sub.betas_reader
    truth = _truth(downloaded)
    cols = np.array([0, 3, 7])
    entry = reader.entry(SES)
    # Cache off: only the requested columns, nothing written.
    np.testing.assert_array_equal(reader.read(SES, cols, cache=False), truth[:, cols])
    assert not entry.data.exists()
    # First cached read decodes the whole brain and writes the entry; the next maps it.
    np.testing.assert_array_equal(reader.read(SES, cols, cache=True), truth[:, cols])
    assert entry.data.is_file()
    mapped = reader.read(SES, None, cache=True)
    assert isinstance(mapped.base, np.memmap)  # a view of the memory map, not a copy
    np.testing.assert_array_equal(mapped, truth)
    assert reader.cache_file(SES) == entry.data
    assert reader.n_trials(SES) == truth.shape[0]


def test_reader_names_the_download_call(downloaded: Path) -> None:
    sub = load_subject(SUB, data_dir=downloaded)
    (downloaded / layout.betas_key(SUB, SES)).unlink()
    with pytest.raises(DataNotDownloadedError, match=r'ses="ses-01"'):
        sub.betas_reader.read(SES)


def test_selection_is_decided_once_and_frozen(shared_downloaded: Path) -> None:
    sub = load_subject(SUB, data_dir=shared_downloaded)
    sel = sub.select(["ses-01", "ses-02"], roi="face")
    assert isinstance(sel, Selection) and sel.sessions == ("ses-01", "ses-02") and not sel.single
    np.testing.assert_array_equal(sel.voxels_for(), sub.get_roi_mask("face"))
    assert sel.n_voxels == int(sub.get_roi_mask("face").sum())
    with pytest.raises(ValueError):
        sel.voxels[0] = not sel.voxels[0]  # read-only
    with pytest.raises(AttributeError):
        sel.sessions = ("ses-03",)  # type: ignore[misc]
    # A per-session threshold keeps different voxels per session: no shared set.
    per = sub.select(["ses-01", "ses-02"], nc_threshold=20)
    assert not per.shared
    with pytest.raises(ValueError, match="one session, or a common mask"):
        per.voxels_for()
    with pytest.raises(TypeError):
        per.per_session["ses-01"] = per.voxels_for("ses-02")  # type: ignore[index]
    for s in per.sessions:
        nc = sub.get_noise_ceiling(session=s)
        np.testing.assert_array_equal(per.voxels_for(s), nc >= 20)
    with pytest.raises(ValueError, match="several sessions"):
        sub.select(["ses-01", "ses-02"], nc_threshold=20, one_voxel_set=True)


def test_user_mask_is_not_frozen_by_a_selection(shared_downloaded: Path) -> None:
    sub = load_subject(SUB, data_dir=shared_downloaded)
    mask = np.ones(sub.get_n_voxels(), dtype=bool)
    sub.select("ses-01", mask=mask)
    mask[0] = False  # still the caller's, still writable


def test_reader_is_usable_without_a_subject(downloaded: Path) -> None:
    from laion_fmri.subject._brain import load_brain
    from laion_fmri.subject._files import SubjectFiles

    brain = load_brain(SubjectFiles(downloaded, SUB))
    reader = SessionBetas(downloaded, SUB, lambda: brain)
    np.testing.assert_array_equal(reader.read(SES, cache=False), _truth(downloaded))


def test_cache_is_keyed_by_mask_source(downloaded: Path) -> None:
    sub = load_subject(SUB, data_dir=downloaded)
    anat, r2 = sub.get_betas_reader("anatomical"), sub.get_betas_reader("rsquare")
    assert anat.entry(SES).data != r2.entry(SES).data
    # The default axis has the plain entry name; the other is tagged with its source.
    assert anat.entry(SES) == cache.entry_for(downloaded, SUB, SES)
    assert r2.entry(SES).data.name == "ses-01_mask-rsquare_betas.npy"
    for source, reader in (("anatomical", anat), ("rsquare", r2), ("anatomical", anat)):
        for _ in range(2):  # decode and write, then map
            got = sub.get_betas(SES, mask_source=source, cache=True)
            np.testing.assert_array_equal(got, _truth(downloaded, source))
        assert reader.entry(SES).data.is_file()
    assert sub.get_betas(SES, mask_source="RSquare").shape[1] == sub.get_n_voxels("rsquare")
    with pytest.raises(ValueError, match="Did you mean 'anatomical'"):
        sub.get_betas(SES, mask_source="anatomic")
