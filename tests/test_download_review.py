"""Review findings on downloads: agreements first, typo'd filters, unknown subjects, verify.

Everything runs through the real code paths: the loopback moto S3 server or
the sample dataset as a local-folder source, and the command line.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.cli import main
from laion_fmri.download import download, verify
from laion_fmri.errors import LicenseNotAcceptedError, NoMatchingDataError, SubjectNotFoundError
from laion_fmri.licenses import accept_dataset_license
from laion_fmri.sample import spec_for

SPEC = spec_for("tiny")
SUB = "sub-03"


@pytest.fixture
def accepted(data_dir: Path) -> Path:
    accept_dataset_license(data_dir)
    return data_dir


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not p.relative_to(root).as_posix().startswith(layout.STATE_DIRNAME)}


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


# --------------------------------------------------------------------------- agreements first
def test_include_stimuli_without_agreement_transfers_nothing(
    local_source: Path, accepted: Path
) -> None:
    # No data-use agreement recorded and no terminal: fail before any byte moves.
    with pytest.raises(LicenseNotAcceptedError):
        download(subject=SUB, ses="ses-01", include_stimuli=True, data_dir=accepted,
                 progress=False)
    assert _files(accepted) == set()


def test_dry_run_lists_gated_stimuli(
    local_source: Path, accepted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = download(subject=SUB, ses="averages", include_stimuli=True, dry_run=True,
                    data_dir=accepted)
    assert [o.key for o in plan.gated] == list(layout.GATED_STIMULUS_KEYS)
    assert not set(plan.keys) & set(layout.GATED_STIMULUS_KEYS)
    capsys.readouterr()
    assert main(["download", "--subject", "3", "--ses", "averages", "--include-stimuli",
                 "--dry-run", "--data-dir", str(accepted)]) == 0
    out = capsys.readouterr().out
    for key in layout.GATED_STIMULUS_KEYS:
        line = next(x for x in out.splitlines() if x.strip().endswith(
            f"{key}  (needs data-use agreement)"))
        size = (local_source / key).stat().st_size
        assert f"{size:,d}" in line
    assert _files(accepted) == set()


# --------------------------------------------------------------------------- filter typos
@pytest.mark.parametrize(
    ("kwargs", "value", "hint", "existing"),
    [
        ({"desc": "singletrial"}, "'singletrial'", "'SingletrialBetas'", "R2mean"),
        ({"stat": "Effects"}, "'Effects'", "'effect'", "rsquare"),
        ({"suffix": "statmaps"}, "'statmaps'", "'statmap'", "trials"),
        ({"space": "MNI152"}, "'MNI152'", None, "T1w"),
    ],
)
def test_filter_value_on_no_key_is_an_error(
    s3_source: object, data_dir: Path, kwargs: dict[str, str], value: str,
    hint: str | None, existing: str,
) -> None:
    with pytest.raises(NoMatchingDataError) as info:
        download(subject=3, dry_run=True, data_dir=data_dir, **kwargs)
    text = str(info.value)
    name = next(iter(kwargs))
    assert f"{name}={value}" in text and f"Values of {name} there:" in text and existing in text
    assert (f"did you mean {hint}" in text) if hint else ("did you mean" not in text)


def test_cli_filter_typo_exits_non_zero(
    s3_source: object, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["download", "--subject", "3", "--desc", "singletrial", "--dry-run",
                 "--data-dir", str(data_dir)])
    captured = capsys.readouterr()
    assert code != 0 and "SingletrialBetas" in captured.err + captured.out
    # A value that exists still plans GLM files.
    plan = download(subject=3, desc="SingletrialBetas", ses="ses-01", dry_run=True,
                    data_dir=data_dir)
    assert any("desc-SingletrialBetas" in k for k in plan.keys)


# --------------------------------------------------------------------------- subjects from the source
@pytest.mark.parametrize("fixture", ["s3_source", "local_source"])
def test_subject_missing_from_source(
    fixture: str, request: pytest.FixtureRequest, data_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request.getfixturevalue(fixture)
    missing = next(s for s in layout.SUBJECTS if s not in SPEC.subjects)
    with pytest.raises(SubjectNotFoundError, match=", ".join(sorted(SPEC.subjects))) as info:
        download(subject=missing, dry_run=True, data_dir=data_dir)
    assert str(info.value).startswith(f"{missing} is not in ")
    assert main(["download", "--subject", missing, "--dry-run", "--data-dir", str(data_dir)]) == 2
    assert f"{missing} is not in" in capsys.readouterr().err


# --------------------------------------------------------------------------- verify
def test_verify_with_nothing_recorded_says_what_to_do(
    sample_root: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Files copied in by hand: present, but the manifest vouches for none.
    src = sample_root / layout.subject_glm_prefix(SUB)
    shutil.copytree(src, data_dir / layout.subject_glm_prefix(SUB))
    report = verify(subject=SUB, data_dir=data_dir)
    assert report.nothing_recorded and f"laion-fmri download --subject {SUB}" in str(report)
    assert main(["verify", "--subject", SUB, "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert "Verified 0 file(s)" not in out and f"laion-fmri download --subject {SUB}" in out


def test_verify_repair_with_unreachable_source_reports_local_findings(
    s3_source: object, accepted: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = download(subject=SUB, ses="ses-01", data_dir=accepted, progress=False)
    key = layout.trials_key(SUB, "ses-01")
    assert key in report.downloaded
    path = layout.local_path(accepted, key)
    path.write_bytes(path.read_bytes()[:-3])
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", f"http://127.0.0.1:{_refused_port()}")
    capsys.readouterr()
    result = verify(repair=True, data_dir=accepted, progress=False)
    assert result.truncated == [key] and not result.repaired
    assert "refused" in result.failed[key] and not result.clean
    assert "Local check: " in capsys.readouterr().out
    code = main(["verify", "--repair", "--data-dir", str(accepted), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.index("Local check") < out.index(f"TRUNCATED {key}") < out.index(f"FAILED {key}")
