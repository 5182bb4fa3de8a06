"""Load: a 100,000-key listing, and 32 threads reading cached betas at once.

The 100,000 keys are served over the real S3 protocol (ListObjectsV2 XML,
1,000 keys per page, continuation tokens) by the synthetic listing server
of ``tests/faults/listing.py``: moto needs ~2 s per page at this size
(over 3 minutes for the listing alone), which would only measure moto.
"""

from __future__ import annotations

import io
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from faults.helpers import SES, SUB
from faults.listing import ListingServer
from faults.record import record
from laion_fmri import layout

N_KEYS = 100_000
# Generous bounds for a shared 2-core CI runner (measured figures go to the log).
MAX_SECONDS = 60.0
MAX_PY_PEAK_MB = 400.0

pytestmark = pytest.mark.timeout(300)


def _keys() -> list[str]:
    n_sessions = 20
    per = N_KEYS // n_sessions
    keys = []
    for s in range(1, n_sessions + 1):
        ses = f"ses-{s:02d}"
        prefix = layout.session_func_prefix(SUB, ses)
        keys += [f"{prefix}{SUB}_{ses}_task-images_run-{i:05d}_desc-Load_statmap.nii.gz" for i in range(per)]
    return keys


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@pytest.fixture(scope="module")
def big_listing():  # type: ignore[no-untyped-def]
    with ListingServer("laion-fmri-load", _keys()) as server:
        yield server


def _measure(fn):  # type: ignore[no-untyped-def]
    rss0 = _rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, seconds, peak / 2**20, _rss_mb() - rss0


def test_listing_100k_keys(big_listing, monkeypatch, request):  # type: ignore[no-untyped-def]
    from laion_fmri.remote import open_store

    monkeypatch.setenv("LAION_FMRI_SOURCE", f"s3://{big_listing.bucket}")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", big_listing.url)
    store = open_store()

    def run() -> int:
        return sum(1 for _ in store.list(layout.subject_glm_prefix(SUB)))

    n, seconds, peak_mb, rss_mb = _measure(run)
    assert n == N_KEYS
    assert big_listing.counts["list"] >= N_KEYS // 1000
    assert seconds < MAX_SECONDS and peak_mb < MAX_PY_PEAK_MB
    record("load", request.node.nodeid, keys=n, seconds=round(seconds, 2),
           py_peak_mb=round(peak_mb, 1), rss_growth_mb=round(rss_mb, 1))


def test_dry_run_download_100k_keys(big_listing, monkeypatch, tmp_path, request):  # type: ignore[no-untyped-def]
    from laion_fmri.download import download

    monkeypatch.setenv("LAION_FMRI_SOURCE", f"s3://{big_listing.bucket}")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", big_listing.url)
    data = tmp_path / "data"
    data.mkdir()
    before = big_listing.counts["get"]

    def run():  # type: ignore[no-untyped-def]
        with redirect_stdout(io.StringIO()):
            return download(subject=SUB, dry_run=True, progress=False, data_dir=data)

    plan, seconds, peak_mb, rss_mb = _measure(run)
    assert len(plan.objects) == N_KEYS
    assert big_listing.counts["get"] == before  # no object GET in a dry run
    assert [p for p in data.rglob("*") if ".laion_fmri" not in p.parts] == []
    assert seconds < MAX_SECONDS and peak_mb < MAX_PY_PEAK_MB
    record("load", request.node.nodeid, keys=len(plan.objects), seconds=round(seconds, 2),
           py_peak_mb=round(peak_mb, 1), rss_growth_mb=round(rss_mb, 1))


def test_describe_100k_keys(big_listing, monkeypatch, request):  # type: ignore[no-untyped-def]
    from laion_fmri.discovery import describe

    monkeypatch.setenv("LAION_FMRI_SOURCE", f"s3://{big_listing.bucket}")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", big_listing.url)
    out = io.StringIO()

    def run() -> None:
        with redirect_stdout(out):
            describe()

    _, seconds, peak_mb, rss_mb = _measure(run)
    assert SUB in out.getvalue()
    assert seconds < MAX_SECONDS and peak_mb < MAX_PY_PEAK_MB
    record("load", request.node.nodeid, keys=N_KEYS, seconds=round(seconds, 2),
           py_peak_mb=round(peak_mb, 1), rss_growth_mb=round(rss_mb, 1))


def test_32_threads_read_cached_betas(downloaded: Path, request) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    sub = load_subject(SUB, data_dir=downloaded)
    reference = np.array(sub.get_betas(SES, cache=False))
    np.array(sub.get_betas(SES))  # writes the cache
    rois = sub.get_available_rois()
    assert rois

    def one(i: int) -> tuple[np.ndarray, np.ndarray]:
        whole = np.array(sub.get_betas(SES))
        part = np.array(sub.get_betas(SES, roi=rois[i % len(rois)]))
        return whole, part

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(one, range(32)))
    seconds = time.perf_counter() - t0
    for i, (whole, part) in enumerate(results):
        np.testing.assert_array_equal(whole, reference)
        expected = reference[:, sub.get_roi_mask(rois[i % len(rois)])]
        np.testing.assert_array_equal(part, expected)
    # A fresh subject object in each thread as well (no shared state needed).
    with ThreadPoolExecutor(max_workers=32) as pool:
        fresh = list(pool.map(lambda _: np.array(load_subject(SUB, data_dir=downloaded).get_betas(SES)),
                              range(32)))
    for arr in fresh:
        np.testing.assert_array_equal(arr, reference)
    record("load", request.node.nodeid, threads=32, calls=96, seconds=round(seconds, 2),
           bytes_verified=int(reference.nbytes) * 96)
