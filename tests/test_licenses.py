"""The CC0 notice: shown once, recorded, never waits for input without a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.cli import main
from laion_fmri.download import download
from laion_fmri.errors import LicenseNotAcceptedError
from laion_fmri.licenses import (
    AGREE,
    DATASET_LICENSE_TEXT,
    ENV_ACCEPT_LICENSE,
    dataset_license_accepted,
    ensure_dataset_license,
)


def test_notice_text() -> None:
    assert "CC0" in DATASET_LICENSE_TEXT and AGREE not in DATASET_LICENSE_TEXT
    assert DATASET_LICENSE_TEXT.startswith("=== LAION-fMRI Dataset License (CC0 1.0) ===")


def test_non_interactive_fails_fast_with_the_command(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, nothing to read
    with pytest.raises(LicenseNotAcceptedError, match="laion-fmri accept-license"):
        ensure_dataset_license(data_dir)
    assert not dataset_license_accepted(data_dir)


def test_download_without_acceptance_writes_nothing(s3_source, data_dir: Path) -> None:
    with pytest.raises(LicenseNotAcceptedError):
        download(subject="sub-03", ses="averages", data_dir=data_dir)
    assert not [p for p in data_dir.rglob("*") if p.is_file()]


def test_interactive_accept_and_refuse(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("builtins.input", lambda prompt: "no thanks")
    with pytest.raises(LicenseNotAcceptedError, match="I AGREE"):
        ensure_dataset_license(data_dir, interactive=True)
    assert not dataset_license_accepted(data_dir)
    monkeypatch.setattr("builtins.input", lambda prompt: f"  {AGREE} ")
    ensure_dataset_license(data_dir, interactive=True)
    assert "CC0" in capsys.readouterr().out
    assert layout.license_marker(data_dir).is_file()

    def never(prompt: str) -> str:
        raise AssertionError("asked twice")

    monkeypatch.setattr("builtins.input", never)
    ensure_dataset_license(data_dir, interactive=True)  # shown once only


def test_env_variable_accepts(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ACCEPT_LICENSE, "1")
    ensure_dataset_license(data_dir, interactive=False)
    assert dataset_license_accepted(data_dir)


def test_cli_accept_license(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accept-license"]) == 0  # data_dir fixture registered the folder
    assert "CC0" in capsys.readouterr().out
    assert dataset_license_accepted(data_dir)


def test_cli_download_without_license_is_one_line_error(
    s3_source, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["download", "--subject", "sub-03", "--ses", "averages"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "accept-license" in err[0]
