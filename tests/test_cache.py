"""Decoded-betas cache: hits, invalidation, opt-out, corruption and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from laion_fmri import _cache as cache
from laion_fmri import layout
from laion_fmri.cli import main
from laion_fmri.errors import CorruptFileError
from laion_fmri.sample import spec_for
from laion_fmri.subject import load_subject

SPEC = spec_for("tiny")
SUB = "sub-03"
SES = "ses-02"


def _truth(root: Path, session: str = SES) -> np.ndarray:
    brain = nib.load(str(root / layout.anatomical_brain_mask_key(SUB))).get_fdata() != 0
    data = nib.load(str(root / layout.betas_key(SUB, session))).get_fdata(dtype=np.float32)
    return data[brain].T


def _entry(root: Path, subject: str = SUB, session: str = SES) -> cache.CacheEntry:
    """The cache entry of the default voxel axis (keyed by the mask source)."""
    return load_subject(subject, data_dir=root).betas_reader.entry(session)


def _is_mapped(arr: np.ndarray) -> bool:
    base = arr
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
    return False


def test_first_load_writes_then_maps(downloaded: Path) -> None:
    sub = load_subject(SUB)
    entry = _entry(downloaded)
    assert not entry.data.exists()
    first = sub.get_betas(SES)
    assert entry.data.is_file() and entry.sidecar.is_file()
    assert not _is_mapped(first)
    meta = json.loads(entry.sidecar.read_text())
    source = downloaded / layout.betas_key(SUB, SES)
    assert meta["source_key"] == layout.betas_key(SUB, SES)
    assert meta["source"] == {"size": source.stat().st_size, "mtime_ns": source.stat().st_mtime_ns}
    assert meta["shape"] == list(first.shape) and meta["dtype"] == "float32"
    assert cache.verify(entry)
    second = sub.get_betas(SES)
    assert _is_mapped(second) and second.flags.c_contiguous and second.flags.writeable
    np.testing.assert_array_equal(first, second)
    second[0, 0] = 12345.0  # copy-on-write: never reaches the file
    np.testing.assert_array_equal(np.load(entry.data)[0, 0], first[0, 0])
    roi = sub.get_betas(SES, roi="face")
    np.testing.assert_array_equal(roi, first[:, sub.get_roi_mask("face")])
    assert roi.flags.c_contiguous and not _is_mapped(roi)


def test_filtered_first_load_caches_whole_brain(downloaded: Path) -> None:
    sub = load_subject(SUB)
    got = sub.get_betas(SES, roi="FFA1")
    entry = _entry(downloaded)
    mm = np.load(entry.data, mmap_mode="r")
    assert mm.shape == (SPEC.n_trials_in(SUB, SES), SPEC.n_anatomical_voxels)
    truth = _truth(downloaded)
    np.testing.assert_allclose(got, truth[:, sub.get_roi_mask("FFA1")], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(mm), truth, rtol=1e-6)


def test_same_stamp_is_trusted_changed_stamp_is_not(downloaded: Path) -> None:
    """Size + mtime_ns decide: an equal stamp serves the cache without decoding."""
    sub = load_subject(SUB)
    source = downloaded / layout.betas_key(SUB, SES)
    original = sub.get_betas(SES)
    st = source.stat()
    raw = bytearray(source.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 16] = bytes(b ^ 0x5A for b in raw[mid : mid + 16])
    source.write_bytes(bytes(raw))
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    # Same size and mtime: the damaged source is never decoded.
    np.testing.assert_array_equal(sub.get_betas(SES), original)
    # Touching it invalidates the entry, and decoding now reports the damage.
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(CorruptFileError, match=source.name):
        sub.get_betas(SES)


def test_touch_invalidates(downloaded: Path) -> None:
    sub = load_subject(SUB)
    sub.get_betas(SES)
    entry = _entry(downloaded)
    before = json.loads(entry.sidecar.read_text())["source"]["mtime_ns"]
    source = downloaded / layout.betas_key(SUB, SES)
    os.utime(source, ns=(before + 10**9, before + 10**9))
    assert cache.open_cached(entry, source, layout.betas_key(SUB, SES),
                             sub._load_brain().digest) is None
    sub.get_betas(SES)
    assert json.loads(entry.sidecar.read_text())["source"]["mtime_ns"] == before + 10**9


def test_mask_change_invalidates(downloaded: Path) -> None:
    sub = load_subject(SUB)
    old = sub.get_betas(SES)
    mask_path = downloaded / layout.anatomical_brain_mask_key(SUB)
    img = nib.load(str(mask_path))
    data = img.get_fdata()
    first = tuple(np.argwhere(data != 0)[0])
    data[first] = 0
    nib.save(nib.Nifti1Image(data.astype(np.uint8), img.affine), str(mask_path))
    fresh = load_subject(SUB)
    new = fresh.get_betas(SES)
    assert new.shape[1] == old.shape[1] - 1
    np.testing.assert_array_equal(new, old[:, 1:])  # the first C-order voxel was dropped
    entry = _entry(downloaded)
    assert json.loads(entry.sidecar.read_text())["mask_hash"] == fresh._load_brain().digest


def test_truncated_or_altered_cache_is_rebuilt(downloaded: Path) -> None:
    sub = load_subject(SUB)
    truth = sub.get_betas(SES)
    entry = _entry(downloaded)
    raw = entry.data.read_bytes()
    entry.data.write_bytes(raw[: len(raw) - 100])
    assert not cache.verify(entry)
    np.testing.assert_array_equal(sub.get_betas(SES), truth)
    assert cache.verify(entry)
    # Flip bytes inside the first sampled block (after the .npy header).
    raw = bytearray(entry.data.read_bytes())
    raw[200:208] = b"\xff" * 8
    entry.data.write_bytes(bytes(raw))
    np.testing.assert_array_equal(sub.get_betas(SES), truth)
    # A change outside the sampled blocks passes the cheap check; verify() catches it.
    raw = bytearray(entry.data.read_bytes())
    meta = json.loads(entry.sidecar.read_text())
    pos = len(raw) - 4096 - 4096 // 2 if len(raw) > 64 * 4096 else None
    if pos is not None:
        raw[pos : pos + 4] = b"\x00\x00\xc0\x7f"
        entry.data.write_bytes(bytes(raw))
        assert not cache.verify(entry)
    assert isinstance(meta["crc32"], int)


def test_cache_opt_out(downloaded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = load_subject(SUB)
    truth = _truth(downloaded)
    np.testing.assert_allclose(sub.get_betas(SES, cache=False), truth, rtol=1e-6)
    assert not layout.cache_dir(downloaded).exists()
    monkeypatch.setenv("LAION_FMRI_CACHE", "0")
    np.testing.assert_allclose(sub.get_betas(SES, roi="FFA1"),
                               truth[:, sub.get_roi_mask("FFA1")], rtol=1e-6)
    assert not layout.cache_dir(downloaded).exists()
    sub.get_betas(SES, cache=True)  # an explicit argument wins over the variable
    assert _entry(downloaded).data.is_file()


def test_cli_info_and_clear(downloaded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sub = load_subject(SUB)
    sub.get_betas(SES)
    sub.get_betas("ses-01")
    load_subject("sub-01").get_betas("ses-01")
    assert main(["cache", "info", "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"{SUB} {SES}" in out and "3 session(s)" in out and "ok" in out
    shape = f"{SPEC.n_trials_in(SUB, SES)}x{SPEC.n_anatomical_voxels}"
    assert shape in out
    assert main(["cache", "clear", "--subject", "3"]) == 0
    assert "freed" in capsys.readouterr().out
    assert [e.subject for e in cache.list_entries(downloaded)] == ["sub-01"]
    entry = _entry(downloaded, "sub-01", "ses-01")
    raw = bytearray(entry.data.read_bytes())
    raw[-3] ^= 0xFF
    entry.data.write_bytes(bytes(raw))
    assert main(["cache", "info", "--verify"]) == 1
    assert "CORRUPT" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert list(cache.list_entries(downloaded)) == []
    assert main(["cache", "info", "--subject", "sub-0_9"]) == 2
    assert "Unknown subject" in capsys.readouterr().err


def test_unwritable_cache_falls_back_to_filtered_decoding(downloaded, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A cache that cannot be written warns once, then ROI loads gather only their voxels."""
    import warnings

    from laion_fmri import _cache as cache_mod
    from laion_fmri import _nifti as nifti
    from laion_fmri.subject import load_subject

    sub = load_subject("sub-03")
    ses = sub.get_sessions()[0]
    truth = sub.get_betas(ses, roi="FFA1", cache=False)

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError("read-only file system")

    monkeypatch.setattr(cache_mod, "write_cache", refuse)
    gathered: list[int] = []
    real = nifti.read_masked

    def spy(path, offsets=None, **kwargs):  # type: ignore[no-untyped-def]
        gathered.append(len(offsets))
        return real(path, offsets, **kwargs)

    monkeypatch.setattr(nifti, "read_masked", spy)
    with pytest.warns(UserWarning, match="LAION_FMRI_CACHE_DIR"):
        first = sub.get_betas(ses, roi="FFA1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = sub.get_betas(ses, roi="FFA1")
    np.testing.assert_array_equal(first, truth)
    np.testing.assert_array_equal(second, truth)
    # First call decoded the whole brain (to fill the cache); the second only the ROI.
    assert gathered == [sub.get_n_voxels(), truth.shape[1]]


def test_cache_dir_env_moves_the_cache(downloaded, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    monkeypatch.setenv("LAION_FMRI_CACHE_DIR", str(tmp_path / "elsewhere"))
    sub = load_subject("sub-03")
    sub.get_betas(sub.get_sessions()[0])
    written = list((tmp_path / "elsewhere").rglob("*_betas.npy"))
    assert len(written) == 1
    assert not list((downloaded / ".laion_fmri" / "cache").rglob("*_betas.npy"))


# --------------------------------------------------------------------------- issue 15
def test_symlinked_cache_folder_is_never_written_or_cleared_through(
    downloaded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    root = cache.cache_root(downloaded)
    root.parent.mkdir(parents=True, exist_ok=True)
    root.symlink_to(elsewhere, target_is_directory=True)
    sub = load_subject(SUB)
    with pytest.warns(UserWarning, match="symbolic link"):
        got = sub.get_betas(SES)
    np.testing.assert_allclose(got, _truth(downloaded), rtol=1e-6)
    assert sorted(p.name for p in elsewhere.rglob("*")) == ["precious.txt"]
    assert main(["cache", "clear"]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err and f"rm {root}" in err and err.count("\n") == 1
    assert (elsewhere / "precious.txt").read_text() == "keep me"
    with pytest.raises(OSError, match="refuses to clear"):
        cache.clear(downloaded, SUB)


def test_symlinked_state_folder_is_refused_too(downloaded: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "state-elsewhere"
    elsewhere.mkdir()
    state = downloaded / ".laion_fmri"
    state.rmdir()
    state.symlink_to(elsewhere, target_is_directory=True)
    entry = _entry(downloaded)
    with pytest.raises(OSError, match="symbolic link"):
        cache.write_cache(entry, np.zeros((2, 3), np.float32), downloaded / layout.betas_key(SUB, SES),
                          "k", "d")
    assert list(elsewhere.rglob("*")) == []


def test_symlinked_subject_folder_or_entry_is_not_followed(downloaded: Path, tmp_path: Path) -> None:
    sub = load_subject(SUB)
    truth = sub.get_betas(SES)
    entry = _entry(downloaded)
    # A planted data file that is a link: never mapped, the NIfTI is decoded instead.
    decoy = tmp_path / "decoy.npy"
    np.save(decoy, np.full_like(truth, 7.0))
    entry.data.unlink()
    entry.data.symlink_to(decoy)
    assert cache.open_cached(entry, downloaded / layout.betas_key(SUB, SES),
                             layout.betas_key(SUB, SES), "x") is None
    np.testing.assert_array_equal(load_subject(SUB).get_betas(SES), truth)
    assert np.load(decoy).max() == 7.0  # written around, not through
    # A subject folder that is a link: refused for writing, removed (not emptied) by clear.
    other = tmp_path / "other-subject"
    other.mkdir()
    (other / "ses-01_betas.npy").write_bytes(b"not ours")
    sub_dir = cache.cache_root(downloaded) / "sub-01"
    sub_dir.symlink_to(other, target_is_directory=True)
    with pytest.warns(UserWarning, match="symbolic link"):
        load_subject("sub-01").get_betas("ses-01")
    cache.clear(downloaded)
    assert not sub_dir.exists() and (other / "ses-01_betas.npy").read_bytes() == b"not ours"


@pytest.mark.parametrize(
    "sidecar",
    [b"[" * 50_000 + b"]" * 50_000, b"null", b"[]", b'{"version": true}',
     b'{"version": 1, "shape": "x", "source": [1]}', b"\x00" * 1000,
     b'{"version": 1, "p": "' + b"x" * (1 << 17) + b'"}'],
    ids=["deep", "null", "list", "bool_version", "wrong_types", "binary", "too_large"],
)
def test_bad_sidecar_is_ignored_and_rebuilt(sidecar: bytes, downloaded: Path) -> None:
    sub = load_subject(SUB)
    truth = sub.get_betas(SES)
    entry = _entry(downloaded)
    entry.sidecar.write_bytes(sidecar)
    assert cache.verify(entry) is False
    assert [e.shape for e in cache.list_entries(downloaded)] == [None]
    np.testing.assert_array_equal(load_subject(SUB).get_betas(SES), truth)
    assert json.loads(entry.sidecar.read_text())["version"] == cache.CACHE_VERSION
    assert cache.verify(entry)


def test_clear_keeps_lock_files_and_reports_bytes(downloaded: Path) -> None:
    load_subject(SUB).get_betas(SES)
    entry = _entry(downloaded)
    stray = entry.data.with_name(f".{entry.data.name}.99999.tmp")
    stray.write_bytes(b"x" * 100)  # left by a writer that died
    # The derived brain-mask index next to the entry goes too (and is counted).
    derived = [p for p in entry.data.parent.rglob("*") if p.is_file() and p.parent.name.startswith("mask-")]
    assert sorted(p.name for p in derived) == ["c_index.npy", "meta.json", "offsets.npy"]
    others = [p for p in entry.data.parent.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    expected = sum(p.stat().st_size for p in others)
    assert expected > entry.data.stat().st_size + entry.sidecar.stat().st_size + 100
    assert cache.clear(downloaded) == expected
    assert sorted(p.name for p in entry.data.parent.iterdir()) == [entry.lock.name]
    assert cache.clear(downloaded) == 0


def test_info_does_not_list_through_a_linked_cache_folder(downloaded: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / SUB).mkdir(parents=True)
    (elsewhere / SUB / f"{SES}_betas.npy").write_bytes(b"x" * 10)
    root = cache.cache_root(downloaded)
    root.parent.mkdir(parents=True, exist_ok=True)
    root.symlink_to(elsewhere, target_is_directory=True)
    assert list(cache.list_entries(downloaded)) == []
