"""The download scopes through the real engine: loopback S3 server and local-folder source.

``download(..., include_anatomical/freesurfer/raw=True)``, ``download_raw(...)``
and their CLI forms fetch exactly what the pure scope rules select, byte for
byte, and ``download()`` brings the anatomical brain mask with any subject's
betas (the default voxel axis), as it brings ``R2mean``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.download import Plan, download, download_raw
from laion_fmri.download_scopes import select_raw
from laion_fmri.errors import FilterError, NoMatchingDataError, SubjectNotFoundError
from laion_fmri.licenses import accept_dataset_license

SUB = "sub-03"


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not p.relative_to(root).as_posix().startswith(".laion_fmri")}


def _same_bytes(source: Path, data: Path, keys: set[str]) -> None:
    for key in keys:
        assert hashlib.md5((data / key).read_bytes()).digest() == \
            hashlib.md5((source / key).read_bytes()).digest(), key


def _under(source: Path, prefix: str) -> set[str]:
    return {k for k in _files(source) if k.startswith(prefix)}


@pytest.fixture(params=["s3", "local"])
def source(request, sample_root: Path, monkeypatch):  # type: ignore[no-untyped-def]
    """The sample as a loopback S3 bucket and as a local folder."""
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        monkeypatch.setenv("LAION_FMRI_SOURCE", f"s3://{server.bucket}")
        monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", server.endpoint_url)
    else:
        monkeypatch.setenv("LAION_FMRI_SOURCE", str(sample_root))
    return sample_root


def test_betas_bring_the_anatomical_brain_mask(source: Path, data_dir: Path) -> None:
    accept_dataset_license(data_dir)
    download(SUB, ses="ses-01", desc="SingletrialBetas", progress=False)
    have = _files(data_dir)
    mask = layout.anatomical_brain_mask_key(SUB)
    assert layout.betas_key(SUB, "ses-01") in have
    assert mask in have and layout.r2mean_key(SUB) in have
    # Only the mask: the rest of the anatomical folder is a scope of its own.
    assert {k for k in have if k.startswith(layout.anatomical_prefix(SUB))} == {mask}
    _same_bytes(source, data_dir, {mask})
    # The default voxel axis now loads without any other step.
    from laion_fmri.subject import load_subject

    sub = load_subject(SUB, data_dir=data_dir)
    assert sub.get_betas(session="ses-01").shape[1] == sub.get_n_voxels()


def test_no_betas_no_anatomical_mask(source: Path, data_dir: Path) -> None:
    accept_dataset_license(data_dir)
    plan = download(SUB, ses="averages", dry_run=True)
    assert isinstance(plan, Plan)
    assert layout.anatomical_brain_mask_key(SUB) not in plan.keys


def test_include_anatomical_and_freesurfer_take_the_folders_whole(source: Path, data_dir: Path) -> None:
    accept_dataset_license(data_dir)
    # Filters that no anatomy or FreeSurfer file carries do not narrow them.
    download(SUB, ses="ses-01", desc="SingletrialBetas", include_anatomical=True,
             include_freesurfer=True, progress=False)
    have = _files(data_dir)
    anat = _under(source, layout.anatomical_prefix(SUB))
    fs = _under(source, layout.freesurfer_prefix(SUB))
    assert len(anat) >= 6 and len(fs) >= 7
    assert anat | fs <= have
    _same_bytes(source, data_dir, anat | fs)
    # Nothing of the other subject, nothing raw.
    assert not {k for k in have if k.startswith(("derivatives/anatomical/sub-01",
                                                  "derivatives/freesurfer/sub-01", f"{SUB}/"))}


def test_include_raw_honours_ses_and_suffix(source: Path, data_dir: Path) -> None:
    accept_dataset_license(data_dir)
    download(SUB, ses="ses-01", suffix=["statmap", "events"], include_raw=True, progress=False)
    have = _files(data_dir)
    raw = _under(source, layout.raw_subject_prefix(SUB))
    expected = {k for k in raw if k.endswith("_events.tsv")}
    assert len(expected) == 2
    assert {k for k in have if k.startswith(layout.raw_subject_prefix(SUB))} == expected
    _same_bytes(source, data_dir, expected)


def test_download_raw_run_echo_part(source: Path, data_dir: Path) -> None:
    accept_dataset_license(data_dir)
    report = download_raw(SUB, ses=1, run=2, echo=[1, 3], part="mag", progress=False)
    raw_keys = sorted(_under(source, layout.raw_subject_prefix(SUB)))
    from laion_fmri.download_scopes import RawFilters

    expected = set(select_raw(SUB, raw_keys, RawFilters.from_args(ses=1, run=2, echo=[1, 3],
                                                                  part="mag")))
    # Run 2's events table (no echo/part) and bold + sbref for echoes 1 and 3.
    assert len(expected) == 5
    assert set(report.downloaded) == expected
    assert _files(data_dir) == expected
    _same_bytes(source, data_dir, expected)
    again = download_raw(SUB, ses=1, run=2, echo=[1, 3], part="mag", progress=False)
    assert again.downloaded == [] and set(again.skipped) == expected
    # The subject loader reads what was fetched.
    from laion_fmri.subject import load_subject

    download(SUB, ses="ses-01", progress=False)
    sub = load_subject(SUB, data_dir=data_dir)
    assert sub.get_raw_bold("ses-01", run=2, echo=3).shape[1] == sub.get_n_voxels()


def test_download_raw_errors(local_source: Path, data_dir: Path) -> None:
    accept_dataset_license(data_dir)
    with pytest.raises(NoMatchingDataError, match="echo=1"):
        download_raw(SUB, run=7)
    with pytest.raises(FilterError, match="echo=4 does not exist"):
        download_raw(SUB, echo=4)
    with pytest.raises(SubjectNotFoundError):
        download_raw("sub-09")
    with pytest.raises(FilterError, match="include_raw"):
        download(SUB, include_raw="yes")
    assert _files(data_dir) == set()


def test_cli_scope_flags_and_download_raw(local_source: Path, data_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from laion_fmri.cli import main

    accept_dataset_license(data_dir)
    assert main(["download", "--subject", SUB, "--ses", "01", "--include-anatomical",
                 "--include-freesurfer", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for key in (_under(local_source, layout.anatomical_prefix(SUB))
                | _under(local_source, layout.freesurfer_prefix(SUB))):
        assert key in out
    assert main(["download-raw", "--subject", "3", "--ses", "01", "--run", "1", "--echo", "2",
                 "--part", "phase", "--no-progress"]) == 0
    have = {k for k in _files(data_dir) if k.startswith(layout.raw_subject_prefix(SUB))}
    assert have == {layout.raw_events_key(SUB, "ses-01", 1),
                    *(k for k in _under(local_source, layout.raw_subject_prefix(SUB))
                      if "run-01_echo-2_part-phase" in k)}
    assert len(have) == 3
