"""Faults of the process and the disk: SIGKILL, two concurrent runs, a full disk.

Downloads that must be killed or run side by side run in child processes
(``python -c ...``) that talk to the fault proxy of this test process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from faults.helpers import (
    BETAS_KEY,
    SES,
    SUB,
    accept_license,
    assert_mirror,
    expected_files,
    subprocess_env,
    temp_files,
    verify_keys,
)
from faults.proxy import Rule
from laion_fmri import layout
from laion_fmri.download import download
from laion_fmri.download.transfer import fetch_objects
from laion_fmri.remote import open_store

pytestmark = pytest.mark.timeout(180)

_DOWNLOAD = textwrap.dedent(
    """
    import sys
    from laion_fmri.download import download
    report = download(subject={sub!r}, ses={ses!r}, progress=False, data_dir=sys.argv[1])
    sys.exit(1 if report.failed else 0)
    """
)

_FETCH_ONE = textwrap.dedent(
    """
    import sys
    from laion_fmri.download.transfer import fetch_objects
    from laion_fmri.remote import open_store
    store = open_store()
    objs = [o for o in store.list({prefix!r}) if o.key == {key!r}]
    report = fetch_objects(objs, store, sys.argv[1], n_jobs=1, connections=1, progress=False,
                           chunk_size=65536,
                           part_size={part})
    sys.exit(1 if report.failed else 0)
    """
)


def _spawn(code: str, data_dir: Path, env: dict[str, str], preexec=None) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec,
    )


def _wait_for_part(target: Path, proc: subprocess.Popen, min_bytes: int, timeout: float = 60) -> int:
    part = layout.partial_path(target)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with contextlib.suppress(FileNotFoundError):
            size = part.stat().st_size
            if size >= min_bytes:
                return size
        time.sleep(0.01)
    raise AssertionError(f"{part} never reached {min_bytes} bytes")


def _wait_for_ranges(target: Path, proc: subprocess.Popen, n: int, timeout: float = 60) -> dict:  # type: ignore[type-arg]
    """Wait until the resume record lists ``n`` completed ranges; return them."""
    state = layout.partial_state_path(target)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with contextlib.suppress(OSError, ValueError, KeyError):
            done = json.loads(state.read_text())["done"]
            if len(done) >= n:
                return done  # type: ignore[no-any-return]
        time.sleep(0.01)
    raise AssertionError(f"{state} never listed {n} completed ranges")


def _wait_for_request(proxy, proc: subprocess.Popen, key: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not proxy.requests("GET", key):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the child never requested {key}"
        time.sleep(0.01)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_download_then_rerun(
    proxy, s3_server, data_dir, sample_root, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    accept_license(data_dir)
    before = snapshot(data_dir)
    proxy.add(Rule("drip", match=BETAS_KEY, times=1, drip_bytes=8192, drip_interval=0.02))
    env = subprocess_env(proxy.url, s3_server.bucket)
    proc = _spawn(_DOWNLOAD.format(sub=SUB, ses=SES), data_dir, env)
    target = layout.local_path(data_dir, BETAS_KEY)
    # The body is trickling in (download() buffers whole chunks, so the .part
    # may still be empty): kill the child in the middle of it.
    _wait_for_request(proxy, proc, BETAS_KEY)
    time.sleep(0.3)
    _kill(proc)
    assert not target.exists()  # never a partial file under the final name
    report = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert report.failed == {}
    assert BETAS_KEY in report.downloaded
    verified = assert_mirror(data_dir, sample_root, report.downloaded + report.skipped,
                             before, snapshot(data_dir))
    assert temp_files(data_dir) == []
    fault_log("sigkill_download", injected=1, bytes_verified=verified)


PART = 128 * 1024


def test_sigkill_then_resume_with_range(
    proxy, s3_server, data_dir, sample_root, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    before = snapshot(data_dir)
    proxy.add(Rule("drip", match=BETAS_KEY, times=None, drip_bytes=16384, drip_interval=0.02))
    env = subprocess_env(proxy.url, s3_server.bucket)
    prefix = layout.session_func_prefix(SUB, SES)
    proc = _spawn(_FETCH_ONE.format(prefix=prefix, key=BETAS_KEY, part=PART), data_dir, env)
    target = layout.local_path(data_dir, BETAS_KEY)
    _wait_for_ranges(target, proc, 2)
    _kill(proc)
    done = json.loads(layout.partial_state_path(target).read_text())["done"]
    assert not target.exists()
    proxy.clear()
    proxy.reset_records()
    store = open_store()
    objects = [o for o in store.list(prefix) if o.key == BETAS_KEY]
    size = objects[0].size
    report = fetch_objects(objects, store, data_dir, n_jobs=1, connections=1, progress=False,
                           chunk_size=65536,
                           part_size=PART)
    assert report.failed == {}
    ranges = [(a, min(a + PART, size)) for a in range(0, size, PART)]
    missing = [r for i, r in enumerate(ranges) if str(i) not in done]
    asked = sorted(g.range for g in proxy.requests("GET", BETAS_KEY))
    assert asked == sorted(f"bytes={a}-{b - 1}" for a, b in missing)  # only the missing ranges
    assert report.bytes == sum(b - a for a, b in missing)
    verified = assert_mirror(data_dir, sample_root, [BETAS_KEY], before, snapshot(data_dir))
    fault_log("sigkill_resume_range", injected=1, bytes_verified=verified)


def test_two_concurrent_downloads_same_dir(
    proxy, s3_server, data_dir, sample_root, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    accept_license(data_dir)
    before = snapshot(data_dir)
    # Slow the first transfer of the big file so the runs overlap.
    proxy.add(Rule("drip", match=BETAS_KEY, times=1, drip_bytes=32768, drip_interval=0.02))
    env = subprocess_env(proxy.url, s3_server.bucket)
    code = _DOWNLOAD.format(sub=SUB, ses=SES)
    procs = [_spawn(code, data_dir, env) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, (out, err)
    # Each object arrived exactly once: the second run found the first run's files.
    gets = [r for r in proxy.requests("GET", BETAS_KEY) if r.status == 200]
    assert len(gets) == 1
    local = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir, dry_run=True)
    keys = [o.key for o in local.objects]
    verified = assert_mirror(data_dir, sample_root, keys, before, snapshot(data_dir))
    fault_log("two_concurrent_runs", injected=1, bytes_verified=verified)


def test_ctrl_c_mid_download_then_rerun(
    proxy, s3_server, data_dir, tmp_path, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    """SIGINT (Ctrl-C) on ``laion-fmri download`` stops within a chunk; a rerun resumes."""
    ses = "ses-05"  # an extra session holding one large (32 MB, four 8 MB chunks) beta file
    key = layout.betas_key(SUB, ses)
    body = os.urandom(32 * 1024 * 1024)
    s3_server.put(key, body)
    try:
        accept_license(data_dir)
        before = snapshot(data_dir)
        # Every range at ~2 MB/s over two connections: 8 MB ranges take ~4 s each.
        proxy.add(Rule("drip", match=key, times=None, drip_bytes=128 * 1024, drip_interval=0.0625))
        env = subprocess_env(proxy.url, s3_server.bucket)
        code = "from laion_fmri.cli import main; raise SystemExit(main())"
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "download", "--subject", SUB, "--ses", ses,
             "--data-dir", str(data_dir), "--no-progress", "--n-jobs", "2"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        target = layout.local_path(data_dir, key)
        _wait_for_ranges(target, proc, 1)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        stop_seconds = time.monotonic() - t0
        assert proc.returncode == 130, (out, err)
        assert b"Traceback" not in err, err
        assert not target.exists()  # never a partial file under the final name
        # It stopped at the next chunk instead of finishing the ranges in flight (~2+ s).
        assert stop_seconds < 1.5, stop_seconds
        done = json.loads(layout.partial_state_path(target).read_text())["done"]
        assert 1 <= len(done) < 4
        proxy.clear()
        proxy.reset_records()
        report = download(subject=SUB, ses=ses, progress=False, data_dir=data_dir)
        assert report.failed == {}
        step = 8 * 1024 * 1024
        asked = sorted(g.range for g in proxy.requests("GET", key))
        assert asked == sorted(f"bytes={i * step}-{(i + 1) * step - 1}" for i in range(4)
                               if str(i) not in done)
        assert target.read_bytes() == body
        after = snapshot(data_dir)
        assert temp_files(data_dir) == []
        assert {k: v for k, v in after.items() if k in before} == before
        fault_log("sigint_download", injected=1, bytes_verified=len(body),
                  stop_seconds=round(stop_seconds, 2))
    finally:
        s3_server.delete(key)


# --------------------------------------------------------------------------- disk full
@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 384 KiB tmpfs (needs root); skipped where mounting is not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the RLIMIT_FSIZE test covers this case")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(mnt)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_fails_cleanly(proxy, tiny_disk, sample_root, snapshot, fault_log):  # type: ignore[no-untyped-def]
    data_dir = tiny_disk / "data"
    data_dir.mkdir()
    accept_license(data_dir)
    (data_dir / "keep.bin").write_bytes(os.urandom(4096))
    before = snapshot(data_dir, include_state=True)
    size = (sample_root / BETAS_KEY).stat().st_size
    assert size > 384 * 1024 - 4096 * 40  # cannot fit next to the small files
    with pytest.warns(UserWarning):
        report = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert BETAS_KEY in report.failed
    assert "No space left" in report.failed[BETAS_KEY] and BETAS_KEY in report.failed[BETAS_KEY]
    assert not layout.local_path(data_dir, BETAS_KEY).exists()
    after = snapshot(data_dir, include_state=True)
    for rel, digest in before.items():
        if not rel.startswith(".laion_fmri/manifest"):
            assert after.get(rel) == digest, rel
    # Whatever arrived under a final name is complete and correct (a file can
    # be in place yet reported failed when its manifest record did not fit).
    new = sorted(set(after) - set(before) - {p for p in after if p.endswith((".part", ".part.json"))})
    new = [p for p in new if not p.startswith(".laion_fmri/")]
    assert expected_files(report.downloaded) <= set(new)
    verified = sum(_same_as_source(data_dir, sample_root, rel) for rel in new)
    fault_log("disk_full_enospc", injected=len(report.failed), bytes_verified=verified)


def test_disk_full_leaves_no_unresumable_part(proxy, tiny_disk, sample_root):  # type: ignore[no-untyped-def]
    """A ``.part`` that hit ENOSPC and has no resume record is removed, freeing its space."""
    data_dir = tiny_disk / "data"
    data_dir.mkdir()
    accept_license(data_dir)
    with pytest.warns(UserWarning):
        report = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert BETAS_KEY in report.failed
    assert temp_files(data_dir) == []
    verify_keys(data_dir, sample_root, report.downloaded)


def _same_as_source(data_dir: Path, source: Path, rel: str) -> int:
    # Local paths equal keys except for de-hyphenated ROI labels.
    matches = [k for k in (p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
               if layout.local_relpath(k) == rel]
    assert len(matches) == 1, rel
    expected = (source / matches[0]).read_bytes()
    assert (data_dir / rel).read_bytes() == expected, f"{rel} differs from the source"
    return len(expected)


def _limit_file_size(limit: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_file_size_limit_fails_cleanly(
    proxy, s3_server, data_dir, sample_root, snapshot, fault_log
):  # type: ignore[no-untyped-def]
    accept_license(data_dir)
    before = snapshot(data_dir)
    env = subprocess_env(proxy.url, s3_server.bucket)
    proc = _spawn(_DOWNLOAD.format(sub=SUB, ses=SES), data_dir, env,
                  preexec=_limit_file_size(200 * 1024))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)  # a report with failures, not a crash
    text = out.decode() + err.decode()
    assert "Traceback" not in text, text
    assert BETAS_KEY in text and "File too large" in text
    assert not layout.local_path(data_dir, BETAS_KEY).exists()
    # A clean rerun without the limit completes everything.
    report = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert report.failed == {}
    keys = report.downloaded + report.skipped
    verified = assert_mirror(data_dir, sample_root, keys, before, snapshot(data_dir))
    fault_log("file_size_limit_efbig", injected=1, bytes_verified=verified)
