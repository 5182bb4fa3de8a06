"""``get_betas(..., fetch=True)``: sessions not on disk stream from the S3 source into the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from laion_fmri import _cache as cache
from laion_fmri import _ranged_reads as ranged
from laion_fmri import _remote_betas as rb
from laion_fmri import layout
from laion_fmri.errors import DataNotDownloadedError, IntegrityError
from laion_fmri.licenses import accept_dataset_license
from laion_fmri.subject import Subject, load_subject

SUB = "sub-03"
SES = "ses-01"


@pytest.fixture
def fetching(s3_source, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    accept_dataset_license(data_dir)
    monkeypatch.setenv("LAION_FMRI_DATA_DIR", str(data_dir))
    return data_dir


def _betas_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*SingletrialBetas_statmap.nii.gz*"))


def test_fetch_streams_into_the_cache_only(fetching: Path, shared_downloaded: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    reference = Subject(SUB, shared_downloaded)
    monkeypatch.setenv("LAION_FMRI_FETCH", "1")
    sub = load_subject(SUB)  # nothing of the subject on disk yet
    np.testing.assert_array_equal(sub.get_betas(SES), reference.get_betas(SES))
    assert _betas_files(fetching) == []  # no .nii.gz: the masked cache only
    assert not (fetching / "derivatives" / "rois").exists()  # no ROI asked, none fetched
    # An ROI brings the ROI masks through the download engine; the betas come from the cache.
    np.testing.assert_array_equal(sub.get_betas(SES, roi="face"), reference.get_betas(SES, roi="face"))
    assert list((fetching / "derivatives" / "rois").rglob("*_mask.nii.gz"))
    trials = fetching / layout.local_relpath(layout.trials_key(SUB, SES))
    assert trials.is_file()  # the small files came through the download engine
    meta = json.loads(cache.entry_for(fetching, SUB, SES).sidecar.read_text())
    assert set(meta["source"]) == {"etag", "size"} and meta["source"]["etag"]

    # A new process-like Subject reads the cache without the source (fetch off).
    monkeypatch.delenv("LAION_FMRI_FETCH")

    def no_stream(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the cached session must not be streamed again")

    monkeypatch.setattr(rb, "stream_betas", no_stream)
    again = Subject(SUB, fetching)
    np.testing.assert_array_equal(again.get_betas(SES), reference.get_betas(SES))
    np.testing.assert_array_equal(again.get_betas(SES, roi="face"), reference.get_betas(SES, roi="face"))


def test_fetch_roi_without_cache_and_keep(fetching: Path, shared_downloaded: Path) -> None:
    reference = Subject(SUB, shared_downloaded)
    sub = Subject(SUB, fetching)
    out = sub.get_betas(SES, roi="face", cache=False, fetch=True, mask_source="rsquare")
    np.testing.assert_array_equal(out, reference.get_betas(SES, roi="face", mask_source="rsquare"))
    assert _betas_files(fetching) == [] and not cache.entry_for(fetching, SUB, SES).data.exists()
    with pytest.raises(DataNotDownloadedError, match="fetch=True"):  # fetch off: says how
        sub.get_betas(SES, mask_source="rsquare")

    ses2 = "ses-02"
    kept = sub.get_betas(ses2, fetch=True, keep=True)
    np.testing.assert_array_equal(kept, reference.get_betas(ses2))
    rel = layout.local_relpath(layout.betas_key(SUB, ses2))
    assert (fetching / rel).read_bytes() == (shared_downloaded / rel).read_bytes()
    meta = json.loads(cache.entry_for(fetching, SUB, ses2).sidecar.read_text())
    assert set(meta["source"]) == {"size", "mtime_ns"}  # a kept file: the local stamp


def test_content_mismatch_caches_nothing(fetching: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from laion_fmri.errors import CorruptFileError

    real_read = ranged._get_range
    hit = []

    def damaged_read(store, key, start, end, etag=None):  # type: ignore[no-untyped-def]
        got, answer_etag, pieces = real_read(store, key, start, end, etag)
        data = bytearray(b"".join(pieces))
        if key.endswith("SingletrialBetas_statmap.nii.gz") and len(data) > 4096 and not hit:
            data[len(data) // 2] ^= 0xFF  # one byte flipped in transit
            hit.append(start)
        return got, answer_etag, [bytes(data)]

    monkeypatch.setattr(ranged, "_get_range", damaged_read)
    sub = Subject(SUB, fetching)
    with pytest.raises((IntegrityError, CorruptFileError), match="nothing was kept or cached"):
        sub.get_betas(SES, fetch=True, keep=True)
    assert hit
    entry = cache.entry_for(fetching, SUB, SES)
    assert not entry.data.exists() and not entry.sidecar.exists()
    assert _betas_files(fetching) == []
    monkeypatch.setattr(ranged, "_get_range", real_read)
    assert sub.get_betas(SES, fetch=True).shape[1] == sub.get_n_voxels()  # a retry works


def test_fetch_env_must_be_understood(fetching: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from laion_fmri.errors import ConfigError

    monkeypatch.setenv("LAION_FMRI_FETCH", "maybe")
    with pytest.raises(ConfigError, match="LAION_FMRI_FETCH"):
        Subject(SUB, fetching).get_betas(SES)
    assert os.environ["LAION_FMRI_FETCH"] == "maybe"


def test_fetch_all_sessions_pipelined(fetching: Path, shared_downloaded: Path) -> None:
    reference = Subject(SUB, shared_downloaded)
    public = [s for s in reference.get_sessions() if s not in layout.HELD_OUT_SESSIONS]
    out = Subject(SUB, fetching).get_betas("all", roi="face", fetch=True)
    assert list(out) == public  # held-out sessions are not streamed
    for s in public:
        np.testing.assert_array_equal(out[s], reference.get_betas(s, roi="face"))
    assert _betas_files(fetching) == []


def test_betas_are_asked_for_while_the_brain_mask_comes(fetching: Path, shared_downloaded: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh data dir: the betas' first ranges go out before the mask has arrived, once."""
    import threading
    import time

    events: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    real_range, real_object = ranged._get_range, rb.read_object

    def logged_range(store, key, start, end, etag=None):  # type: ignore[no-untyped-def]
        with lock:
            events.append(("range", key, start))
        return real_range(store, key, start, end, etag)

    def slow_object(store, key):  # type: ignore[no-untyped-def]
        time.sleep(0.2)  # a long link: the mask takes a while
        out = real_object(store, key)
        with lock:
            events.append(("object", key, 0))
        return out

    monkeypatch.setattr(ranged, "_get_range", logged_range)
    monkeypatch.setattr(rb, "read_object", slow_object)
    reference = Subject(SUB, shared_downloaded)
    sessions = [SES, "ses-02"]
    out = Subject(SUB, fetching).get_betas(sessions, fetch=True)
    for s in sessions:
        np.testing.assert_array_equal(out[s], reference.get_betas(s))
    mask_key = layout.anatomical_brain_mask_key(SUB)
    mask_at = events.index(("object", mask_key, 0))
    for s in sessions:
        first = ("range", layout.betas_key(SUB, s), 0)
        assert events.index(first) < mask_at  # asked for before the mask arrived
        assert events.count(first) == 1  # and used: not asked for again
    assert rb._STARTED == {}
    assert _betas_files(fetching) == []

    # A load that fails after the early start (an unknown ROI) leaves nothing held.
    fresh = fetching / "again"
    fresh.mkdir()
    accept_dataset_license(fresh)
    with pytest.raises(Exception, match="nope"):
        Subject(SUB, fresh).get_betas("ses-03", roi="nope", fetch=True)
    assert ("range", layout.betas_key(SUB, "ses-03"), 0) in events
    deadline = time.monotonic() + 5
    while rb.READ_AHEAD.held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rb.READ_AHEAD.held == 0 and rb._STARTED == {}
