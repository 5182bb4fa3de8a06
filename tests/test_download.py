"""End-to-end downloads through real HTTP (loopback moto S3) and from a local folder."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.download import Plan, download, download_captions, download_embeddings
from laion_fmri.download.manifest import Manifest
from laion_fmri.errors import FilterError, NoMatchingDataError, SubjectNotFoundError
from laion_fmri.licenses import accept_dataset_license
from laion_fmri.remote import open_store
from laion_fmri.sample import spec_for

SPEC = spec_for("tiny")
SUB = "sub-03"


@pytest.fixture
def accepted(data_dir: Path) -> Path:
    accept_dataset_license(data_dir)
    return data_dir


def _sample_keys(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith(layout.STATE_DIRNAME)
    )


def _expected_session_download(root: Path, sub: str, ses: str) -> set[str]:
    """What the documented rules say ``download(sub, ses=ses)`` brings (from the tree)."""
    keys = _sample_keys(root)
    out = {k for k in keys if k in layout.DATASET_LEVEL_KEYS}
    out |= {k for k in keys if k.startswith(layout.session_func_prefix(sub, ses))}
    out |= {k for k in keys if k in layout.brain_mask_keys(sub)}
    out |= {k for k in keys if k.startswith(layout.roi_prefix(sub))}
    out |= {k for k in keys
            if k.startswith(layout.localizer_prefix(sub)) and layout.session_of(k) == ses}
    # The anatomical brain mask (the default voxel axis) comes with the betas.
    if layout.betas_key(sub, ses) in out:
        out |= {k for k in keys if k == layout.anatomical_brain_mask_key(sub)}
    return out


def _local_files(data_dir: Path) -> set[str]:
    return {
        p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*")
        if p.is_file() and layout.STATE_DIRNAME not in p.relative_to(data_dir).parts
    }


def _assert_same_bytes(data_dir: Path, root: Path, keys: set[str]) -> None:
    for key in keys:
        local = layout.local_path(data_dir, key)
        assert local.read_bytes() == (root / key).read_bytes(), key


class _CountingOpen:
    """Records every GET the store makes (wraps the real method of the shared store)."""

    def __init__(self, store: object) -> None:
        self.calls: list[tuple[str, int, str | None]] = []
        self._inner = store.open  # type: ignore[attr-defined]

    def __call__(self, key: str, start: int = 0, if_match: str | None = None, **kw: object):  # type: ignore[no-untyped-def]
        self.calls.append((key, start, if_match))
        return self._inner(key, start=start, if_match=if_match, **kw)


def test_session_download_over_s3(s3_source, accepted: Path, sample_root: Path, capsys) -> None:
    report = download(subject=SUB, ses="ses-01", n_jobs=4, data_dir=accepted)
    expected = _expected_session_download(sample_root, SUB, "ses-01")
    assert set(report.downloaded) == expected
    assert not report.failed and not report.skipped
    assert report.bytes == sum((sample_root / k).stat().st_size for k in expected)
    local = _local_files(accepted)
    assert local == {layout.local_relpath(k) for k in expected}
    # Bucket labels with hyphens are stored de-hyphenated locally.
    assert any("label-FFA1_" in p for p in local) and not any("label-FFA-1" in p for p in local)
    _assert_same_bytes(accepted, sample_root, expected)
    assert not list(accepted.rglob("*.part*"))
    assert str(report) in capsys.readouterr().out
    with Manifest(accepted) as manifest:
        assert {r["key"] for r in manifest.records()} == expected


def test_rerun_makes_no_get(s3_source, accepted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = download(subject=SUB, ses=["01", "02"], n_jobs=4, data_dir=accepted)
    store = open_store()
    counter = _CountingOpen(store)
    monkeypatch.setattr(store, "open", counter)
    again = download(subject=SUB, ses=["ses-01", "ses-02"], n_jobs=4, data_dir=accepted)
    assert counter.calls == []
    assert sorted(again.skipped) == sorted(first.downloaded) and not again.downloaded


def test_touched_file_is_rehashed_not_refetched(
    s3_source, accepted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download(subject=SUB, ses="01", data_dir=accepted, progress=False)
    path = layout.local_path(accepted, layout.trials_key(SUB, "ses-01"))
    path.touch()  # new mtime, same bytes
    store = open_store()
    counter = _CountingOpen(store)
    monkeypatch.setattr(store, "open", counter)
    again = download(subject=SUB, ses="01", data_dir=accepted, progress=False)
    assert counter.calls == [] and layout.trials_key(SUB, "ses-01") in again.skipped


def test_averages_only_subject_level(s3_source, accepted: Path, sample_root: Path) -> None:
    report = download(subject="03", ses="averages", data_dir=accepted)
    glm = {k for k in report.downloaded if k.startswith(layout.GLM_ROOT)}
    assert glm == {
        k for k in _sample_keys(sample_root)
        if k.startswith(layout.subject_glm_prefix(SUB)) and layout.session_of(k) is None
    }
    assert layout.r2mean_key(SUB) in glm


def test_held_out_skipped_with_one_line(s3_source, accepted: Path, sample_root: Path, capsys) -> None:
    report = download(subject=SUB, n_jobs=4, data_dir=accepted)
    out = capsys.readouterr().out
    held = [ln for ln in out.splitlines() if "held-out" in ln.lower() and "Skipping" in ln]
    assert len(held) == 1 and "ses-31" in held[0]
    assert not report.failed
    expected_held = {k for k in _sample_keys(sample_root)
                     if k.startswith(layout.subject_glm_prefix(SUB)) and "/ses-31/" in k}
    assert set(report.held_out) == expected_held
    assert not any("ses-31" in p for p in _local_files(accepted))


def test_entity_filters_and_globs(s3_source, accepted: Path, sample_root: Path) -> None:
    report = download(subject=SUB, ses="ses-02", suffix="trials", extension="tsv",
                      data_dir=accepted)
    glm = {k for k in report.downloaded if k.startswith(layout.subject_glm_prefix(SUB))}
    pinned = {k for k in layout.brain_mask_keys(SUB) if (sample_root / k).exists()}
    trials = layout.trials_key(SUB, "ses-02")
    assert glm == {trials, layout.sidecar_key(trials)} | pinned
    rep2 = download(subject=SUB, ses="ses-03", include="*func/*", exclude="*.json",
                    data_dir=accepted)
    pinned_keys = {*layout.brain_mask_keys(SUB), layout.anatomical_brain_mask_key(SUB)}
    fetched = set(rep2.downloaded) - pinned_keys
    assert fetched and all("/func/" in k and not k.endswith(".json") for k in fetched)


def test_dry_run_writes_nothing(s3_source, data_dir: Path, sample_root: Path) -> None:
    before = sorted(p.relative_to(data_dir) for p in data_dir.rglob("*"))
    plan = download(subject=SUB, ses="01", dry_run=True, data_dir=data_dir)
    assert isinstance(plan, Plan)
    expected = _expected_session_download(sample_root, SUB, "ses-01")
    assert set(plan.keys) == expected
    assert plan.total_bytes == sum((sample_root / k).stat().st_size for k in expected)
    assert sorted(p.relative_to(data_dir) for p in data_dir.rglob("*")) == before


def test_no_match_and_bad_arguments(s3_source, accepted: Path) -> None:
    with pytest.raises(NoMatchingDataError, match="ses-01"):
        download(subject=SUB, ses="ses-09", data_dir=accepted)
    with pytest.raises(NoMatchingDataError, match="ses-31 is held out"):
        download(subject=SUB, ses="31", data_dir=accepted)
    assert _local_files(accepted) == set()
    with pytest.raises(SubjectNotFoundError):
        download(subject="sub-42", data_dir=accepted)
    with pytest.raises(FilterError):
        download(subject=SUB, datatype="eeg", data_dir=accepted)
    with pytest.warns(UserWarning, match="positive int"):
        report = download(subject=SUB, ses="averages", n_jobs=0, data_dir=accepted, progress=False)
    assert report.downloaded


def test_all_subjects(s3_source, accepted: Path) -> None:
    report = download(subject="all", ses="averages", n_jobs=4, data_dir=accepted)
    assert {layout.subject_of(k) for k in report.downloaded} - {None} == set(SPEC.subjects)


def test_public_stimulus_files(s3_source, accepted: Path, sample_root: Path) -> None:
    def with_sidecar(key: str) -> set[str]:
        side = layout.sidecar_key(key)
        return {key} | ({side} if (sample_root / side).exists() else set())

    clip = with_sidecar(layout.embeddings_key("CLIP"))
    rep = download_embeddings(models=["clip"], data_dir=accepted)
    assert set(rep.downloaded) == clip
    rep = download_captions(data_dir=accepted)
    assert set(rep.downloaded) == with_sidecar(layout.CAPTIONS_KEY)
    _assert_same_bytes(accepted, sample_root, clip | {layout.CAPTIONS_KEY})
    again = download_embeddings(models="CLIP", data_dir=accepted)
    assert set(again.skipped) == clip and not again.downloaded


def test_concurrent_runs_both_finish(s3_source, accepted: Path, sample_root: Path) -> None:
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(download(subject=SUB, ses="02", n_jobs=3, data_dir=accepted,
                                    progress=False))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 2
    expected = _expected_session_download(sample_root, SUB, "ses-02")
    downloaded = [set(r.downloaded) for r in results]  # type: ignore[attr-defined]
    # The lock serialises the runs: one fetches everything, the other finds it done.
    assert sorted(len(d) for d in downloaded) == [0, len(expected)]
    _assert_same_bytes(accepted, sample_root, expected)


def test_local_folder_source(local_source: Path, accepted: Path) -> None:
    report = download(subject=SUB, ses="ses-03", n_jobs=2, data_dir=accepted)
    expected = _expected_session_download(local_source, SUB, "ses-03")
    assert set(report.downloaded) == expected
    _assert_same_bytes(accepted, local_source, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = download(subject=SUB, ses="ses-03", data_dir=accepted)
    assert set(again.skipped) == expected and not again.downloaded


def test_cli_download_and_dry_run(s3_source, accepted: Path, sample_root: Path, capsys) -> None:
    from laion_fmri.cli import main

    assert main(["download", "--subject", "sub-03", "--ses", "01", "--dry-run"]) == 0
    out = capsys.readouterr().out
    expected = _expected_session_download(sample_root, SUB, "ses-01")
    assert all(k in out for k in expected) and f"Total: {len(expected)} file(s)" in out
    assert _local_files(accepted) == set()
    args = ["download", "--subject", "03", "--ses", "ses-01", "ses-02", "--suffix", "trials",
            "--extension", "tsv", "--exclude", "*.json", "--n-jobs", "2", "--no-progress"]
    assert main(args) == 0
    glm = {p for p in _local_files(accepted) if p.startswith(layout.GLM_ROOT)}
    pinned = {k for k in layout.brain_mask_keys(SUB) if (sample_root / k).exists()}
    assert glm == {layout.trials_key(SUB, "ses-01"), layout.trials_key(SUB, "ses-02")} | pinned
    assert main(["download", "--subject", "3", "--ses", "9"]) == 2
    assert "No objects" in capsys.readouterr().err


def test_progress_display_only_on_a_terminal(
    s3_source, accepted: Path, sample_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    download(subject=SUB, ses="01", data_dir=accepted)  # captured output: not a terminal
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal
    monkeypatch.setenv("COLUMNS", "120")
    download(subject=SUB, ses="02", data_dir=accepted)
    err = capsys.readouterr().err
    # Only the ses-02 files are new (dataset-level, ROI and mask files are up to date).
    n = len([k for k in _sample_keys(sample_root)
             if k.startswith(layout.session_func_prefix(SUB, "ses-02"))])
    assert f"files {n}/{n}" in err


def test_cli_public_stimulus_downloads(s3_source, accepted: Path, sample_root: Path) -> None:
    from laion_fmri.cli import main

    assert main(["download-embeddings", "--models", "DINOv2", "SigLIP2", "--no-progress"]) == 0
    assert main(["download-segmentations", "--no-progress"]) == 0
    assert main(["download-captions", "--no-progress"]) == 0
    keys = {layout.embeddings_key("DINOv2"), layout.embeddings_key("SigLIP2"),
            layout.SEGMENTATIONS_KEY, layout.SEGMENTATIONS_METADATA_KEY, layout.CAPTIONS_KEY}
    keys |= {s for k in keys if (sample_root / (s := layout.sidecar_key(k))).exists()}
    assert {k for k in _local_files(accepted) if k.startswith("stimuli/")} == keys
    _assert_same_bytes(accepted, sample_root, keys)
    assert main(["download-embeddings", "--models", "NoSuchModel"]) == 2


def test_include_stimuli(local_source: Path, accepted: Path) -> None:
    from laion_fmri.access import record_local_agreement

    record_local_agreement(accepted)  # the sample's stand-in for the data-use agreement
    report = download(subject=SUB, ses="averages", include_stimuli=True, data_dir=accepted)
    public = set(layout.public_stimulus_keys())
    public |= {s for k in public if (local_source / (s := layout.sidecar_key(k))).exists()}
    assert public <= set(report.downloaded)
    keys = public | set(layout.GATED_STIMULUS_KEYS)
    assert {k for k in _local_files(accepted) if k.startswith("stimuli/")} == keys
    _assert_same_bytes(accepted, local_source, keys)
