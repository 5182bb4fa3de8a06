"""Damage on the local disk after a download: data files and cache files.

* a downloaded file altered or truncated: ``laion-fmri verify`` reports it and
  ``--repair`` restores the source bytes;
* a cache file altered, truncated or with a broken sidecar: detected, rebuilt,
  and never returned as data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from faults.helpers import BETAS_KEY, SES, SUB, accept_license, assert_mirror
from laion_fmri import _cache, layout
from laion_fmri.cli import main
from laion_fmri.download import download

pytestmark = pytest.mark.timeout(120)


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_verify_reports_and_repair_restores(
    proxy, data_dir, sample_root, snapshot, capsys, fault_log
):  # type: ignore[no-untyped-def]
    accept_license(data_dir)
    report = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert report.failed == {}
    keys = report.downloaded
    good = snapshot(data_dir)
    trials = layout.trials_key(SUB, SES)
    r2 = layout.r2mean_key(SUB)
    betas = layout.local_path(data_dir, BETAS_KEY)
    _flip(betas, betas.stat().st_size // 2)  # same size, other bytes
    trials_path = layout.local_path(data_dir, trials)
    trials_path.write_bytes(trials_path.read_bytes()[:-7])  # truncated
    layout.local_path(data_dir, r2).unlink()  # gone
    capsys.readouterr()

    code = main(["verify", "--data-dir", str(data_dir), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"ALTERED {BETAS_KEY}" in out
    assert f"TRUNCATED {trials}" in out
    assert f"MISSING {r2}" in out
    assert "3 missing" not in out and "1 missing, 1 truncated, 1 altered" in out

    proxy.reset_records()
    code = main(["verify", "--repair", "--data-dir", str(data_dir), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 repaired" in out
    fetched = {r.key for r in proxy.requests("GET") if r.key and r.status in (200, 206)}
    assert fetched == {BETAS_KEY, trials, r2}  # only the damaged files travelled
    after = snapshot(data_dir)
    assert after == good
    verified = assert_mirror(data_dir, sample_root, keys, good, after)
    assert main(["verify", "--data-dir", str(data_dir), "--no-progress"]) == 0
    fault_log("local_file_damaged", injected=3, bytes_verified=verified)


def test_rerun_download_refetches_altered_file(proxy, data_dir, sample_root, snapshot, fault_log):  # type: ignore[no-untyped-def]
    accept_license(data_dir)
    first = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    good = snapshot(data_dir)
    betas = layout.local_path(data_dir, BETAS_KEY)
    betas.write_bytes(betas.read_bytes()[: betas.stat().st_size // 3])  # truncated by a crash
    second = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert second.downloaded == [BETAS_KEY]
    after = snapshot(data_dir)
    assert after == good
    verified = assert_mirror(data_dir, sample_root, first.downloaded, good, after)
    fault_log("local_file_truncated_rerun", injected=1, bytes_verified=verified)


# --------------------------------------------------------------------------- cache
@pytest.fixture
def cached(downloaded: Path):  # type: ignore[no-untyped-def]
    """A private data dir with the sample, one session decoded into the cache."""
    from laion_fmri.subject import load_subject

    sub = load_subject(SUB, data_dir=downloaded)
    reference = np.array(sub.get_betas(SES, cache=False))
    first = np.array(sub.get_betas(SES))
    np.testing.assert_array_equal(first, reference)
    entry = _cache.entry_for(downloaded, SUB, SES)
    assert entry.data.is_file() and entry.sidecar.is_file()
    return sub, reference, entry


def _data_start(path: Path) -> int:
    # The array data fills the end of a .npy file, right after its header.
    arr = np.load(path, mmap_mode="r")
    return path.stat().st_size - int(arr.nbytes)


def _damage_cases(entry: _cache.CacheEntry) -> dict[str, object]:
    size = entry.data.stat().st_size
    start = _data_start(entry.data)
    step = (size - 4096) // 63  # the cache samples 64 blocks of 4 KiB for its quick check

    def middle() -> None:
        _flip(entry.data, start + (size - start) // 2)

    def between_samples() -> None:
        # A byte the 64-block fingerprint does not read (when the file is large enough).
        offset = step + 4096 + (step - 4096) // 2 if step > 8192 else start + 1
        _flip(entry.data, max(offset, start))

    def truncate() -> None:
        with open(entry.data, "r+b") as fh:
            fh.truncate(size - 4 * 17)

    def extend() -> None:
        with open(entry.data, "ab") as fh:
            fh.write(b"\0" * 64)

    def sidecar_garbage() -> None:
        entry.sidecar.write_text("{not json")

    def sidecar_lies() -> None:
        meta = json.loads(entry.sidecar.read_text())
        meta["shape"] = [meta["shape"][0] + 1, meta["shape"][1]]
        entry.sidecar.write_text(json.dumps(meta))

    def replaced_with_other_array() -> None:
        arr = np.load(entry.data)
        np.save(entry.data, arr[::-1].copy())  # same shape and size, rows reversed

    return {
        "flip_middle": middle,
        "flip_between_samples": between_samples,
        "truncate": truncate,
        "extend": extend,
        "sidecar_garbage": sidecar_garbage,
        "sidecar_lies": sidecar_lies,
        "same_size_other_array": replaced_with_other_array,
    }


@pytest.mark.parametrize(
    "damage",
    [
        "flip_middle",
        "flip_between_samples",
        "truncate",
        "extend",
        "sidecar_garbage",
        "sidecar_lies",
        "same_size_other_array",
    ],
)
def test_damaged_cache_is_rebuilt_never_returned(cached, damage, fault_log):  # type: ignore[no-untyped-def]
    sub, reference, entry = cached
    _damage_cases(entry)[damage]()  # type: ignore[operator]
    got = np.array(sub.get_betas(SES))
    np.testing.assert_array_equal(got, reference)
    # The entry was rebuilt: valid again and byte-identical content.
    assert _cache.verify(entry)
    again = np.array(sub.get_betas(SES))
    np.testing.assert_array_equal(again, reference)
    fault_log(f"cache_{damage}", injected=1, bytes_verified=int(reference.nbytes))


def test_cache_ignored_when_source_file_changes(cached, fault_log):  # type: ignore[no-untyped-def]
    """A re-downloaded (newer) beta file invalidates the cache."""
    sub, reference, entry = cached
    path = layout.local_path(sub.data_dir, BETAS_KEY)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))
    mtime_before = entry.data.stat().st_mtime_ns
    got = np.array(sub.get_betas(SES))
    np.testing.assert_array_equal(got, reference)
    assert entry.data.stat().st_mtime_ns != mtime_before  # rewritten for the new source
    fault_log("cache_source_changed", injected=1, bytes_verified=int(reference.nbytes))


def test_corrupt_manifest_is_set_aside_and_files_rechecked(
    proxy, data_dir, sample_root, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    """A garbage manifest (not an SQLite file) costs a re-check, never a crash or a re-download."""
    accept_license(data_dir)
    first = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    good = snapshot(data_dir)
    manifest = layout.manifest_path(data_dir)
    manifest.write_bytes(b"this is not an sqlite database " * 200)
    for side in (manifest.with_name(manifest.name + "-wal"), manifest.with_name(manifest.name + "-shm")):
        side.unlink(missing_ok=True)
    proxy.reset_records()
    with pytest.warns(UserWarning, match="manifest"):
        second = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert second.failed == {}
    assert sorted(second.skipped) == sorted(first.downloaded)  # re-checked by hash, not fetched
    assert [r for r in proxy.requests("GET") if r.key and "list-type" not in r.query] == []
    after = snapshot(data_dir)
    assert after == good
    verified = assert_mirror(data_dir, sample_root, first.downloaded, good, after)
    fault_log("manifest_corrupted", injected=1, bytes_verified=verified)
