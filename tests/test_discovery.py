"""Discovery from the loopback S3 server, the local-folder source and the offline fallback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from laion_fmri import discovery
from laion_fmri.cli import main
from laion_fmri.errors import RoiNotFoundError, SourceUnavailableError, SubjectNotFoundError
from laion_fmri.sample import spec_for

SPEC = spec_for("tiny")
ALL_ROIS = sorted({r for rois in SPEC.rois.values() for r in rois})


@pytest.fixture(autouse=True)
def _fresh_reachability() -> Iterator[None]:
    """Each test starts without remembered unreachable sources."""
    discovery.forget_unreachable()
    yield
    discovery.forget_unreachable()


@pytest.fixture(params=["s3", "local"])
def source(request: pytest.FixtureRequest) -> object:
    return request.getfixturevalue("s3_source" if request.param == "s3" else "local_source")


def test_subjects_rois_categories(source: object) -> None:
    assert discovery.get_subjects() == sorted(SPEC.subjects)
    assert discovery.get_categories("sub-03") == sorted(SPEC.rois)
    assert discovery.get_categories() == sorted(SPEC.rois)
    assert discovery.get_rois("sub-03", category="face") == sorted(SPEC.rois["face"])
    assert discovery.get_rois(3) == ALL_ROIS
    assert discovery.get_rois() == ALL_ROIS
    assert "FFA1" in discovery.get_rois("03") and "FFA-1" not in discovery.get_rois("03")


def test_bad_queries(s3_source: object) -> None:
    with pytest.raises(RoiNotFoundError, match="Available categories"):
        discovery.get_rois("sub-03", category="smell")
    with pytest.raises(SubjectNotFoundError):
        discovery.get_rois("sub-99")


def test_describe_and_inspect(s3_source: object, capsys: pytest.CaptureFixture[str]) -> None:
    discovery.describe()
    out = capsys.readouterr().out
    for sub in SPEC.subjects:
        assert f"  {sub}: {len(SPEC.sessions) + len(SPEC.held_out_sessions)} session(s)" in out
    assert "ses-31*" in out and "held-out" in out
    assert ", ".join(sorted(SPEC.rois)) in out
    assert "task-images_desc-captions.csv" in out and "Total:" in out
    tree = discovery.inspect_bucket()
    out = capsys.readouterr().out
    assert "derivatives/" in tree[""] and "Top-level prefixes" in out
    assert "derivatives/: " in out
    assert sorted(tree["derivatives/"]) == tree["derivatives/"]


def test_unreachable_source_falls_back_to_disk(
    downloaded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAION_FMRI_SOURCE", "s3://laion-fmri")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens
    t0 = time.monotonic()
    assert discovery.get_subjects() == sorted(SPEC.subjects)
    assert time.monotonic() - t0 < 20
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreachable" in err[0] and str(downloaded) in err[0]


def test_unreachable_without_data_dir_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(SourceUnavailableError):
        discovery.get_subjects()


def test_cli_info(s3_source: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    assert "Subjects (2)" in capsys.readouterr().out
    assert main(["info", "--subject", "3"]) == 0
    out = capsys.readouterr().out
    assert f"face: {', '.join(sorted(SPEC.rois['face']))}" in out
    assert "ses-31 (held out)" in out


def test_get_sessions(source: object) -> None:
    assert discovery.get_sessions("sub-01") == list(SPEC.sessions)
    assert discovery.get_sessions(1, include_held_out=True) == sorted(
        SPEC.sessions + SPEC.held_out_sessions)


# Bound but never listening: connections are refused, and holding the socket keeps
# the kernel from picking this port as a client's ephemeral source port (a
# released port can make a loopback connect talk to itself).
_HELD_SOCKETS: list[socket.socket] = []


@pytest.fixture(autouse=True, scope="module")
def _close_held_sockets() -> Iterator[None]:
    yield
    while _HELD_SOCKETS:
        _HELD_SOCKETS.pop().close()


def _refused_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD_SOCKETS.append(s)
    return s.getsockname()[1]


@pytest.fixture
def stalled_endpoint() -> Iterator[str]:
    """A loopback server that accepts connections (kernel backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if "unreachable" in line]


def test_info_subject_unreachable_warns_once(
    downloaded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAION_FMRI_SOURCE", "s3://laion-fmri")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", f"http://127.0.0.1:{_refused_port()}")
    assert main(["info", "--subject", "3"]) == 0
    captured = capsys.readouterr()
    assert len(_warnings(captured.err)) == 1
    assert f"face: {', '.join(sorted(SPEC.rois['face']))}" in captured.out
    # Later calls in the same process go to disk at once, without a new warning.
    assert discovery.get_sessions("sub-03") == list(SPEC.sessions)
    assert _warnings(capsys.readouterr().err) == []


def test_info_subject_stalled_source_waits_once(
    downloaded: Path, stalled_endpoint: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LAION_FMRI_SOURCE", "s3://laion-fmri")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", stalled_endpoint)
    monkeypatch.setenv("LAION_FMRI_READ_TIMEOUT", "1")
    t0 = time.monotonic()
    discovery.get_subjects()
    first = time.monotonic() - t0
    assert first >= 1  # it really waited for the read timeout
    t0 = time.monotonic()
    assert main(["info", "--subject", "3"]) == 0
    # One stall is remembered: the 1 + 1 + n_categories later calls do not wait again.
    assert time.monotonic() - t0 < 1
    assert len(_warnings(capsys.readouterr().err)) == 1


def test_subject_not_in_source(source: object, capsys: pytest.CaptureFixture[str]) -> None:
    from laion_fmri import layout

    missing = next(s for s in layout.SUBJECTS if s not in SPEC.subjects)
    listed = ", ".join(sorted(SPEC.subjects))
    for call in (discovery.get_sessions, discovery.get_categories, discovery.get_rois):
        with pytest.raises(SubjectNotFoundError, match=f"{missing} is not in .*; subjects there: {listed}"):
            call(missing)
    assert main(["info", "--subject", missing[len("sub-"):]]) == 2
    captured = capsys.readouterr()
    assert f"{missing} is not in" in captured.err and "sessions (0)" not in captured.out


def test_offline_subject_check_uses_disk_and_known_list(
    downloaded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from laion_fmri import layout

    monkeypatch.setenv("LAION_FMRI_SOURCE", "s3://laion-fmri")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", f"http://127.0.0.1:{_refused_port()}")
    missing = next(s for s in layout.SUBJECTS if s not in SPEC.subjects)
    # Offline, a published subject that is not on disk yet is not an error.
    assert discovery.get_sessions(missing) == []
    assert discovery.get_sessions("sub-03") == list(SPEC.sessions)


def test_every_entry_point_takes_data_dir(
    sample_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No configured data directory; the explicit one is the offline fallback.
    monkeypatch.setenv("LAION_FMRI_SOURCE", "s3://laion-fmri")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", f"http://127.0.0.1:{_refused_port()}")
    assert discovery.get_sessions("sub-03", data_dir=sample_copy) == list(SPEC.sessions)
    assert discovery.get_categories("sub-03", data_dir=sample_copy) == sorted(SPEC.rois)
    assert discovery.get_rois("sub-03", category="face", data_dir=sample_copy) == sorted(
        SPEC.rois["face"])
    tree = discovery.inspect_bucket(data_dir=sample_copy)
    assert "derivatives/" in tree[""]
    assert len(_warnings(capsys.readouterr().err)) == 1
