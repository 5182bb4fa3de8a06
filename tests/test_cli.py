"""The CLI answers every error with one readable line and a non-zero exit."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from laion_fmri.cli import main


def test_no_command_prints_help(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_os_errors_are_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["sample", str(blocker / "inside")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("laion-fmri: error: ")
    assert "Traceback" not in err and str(blocker / "inside") in err


def test_data_dir_not_set_names_both_fixes(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["download", "--subject", "sub-03", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "laion-fmri config --data-dir DIR" in err and "dataset_initialize" in err


def test_warnings_are_one_line(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import laion_fmri.cli.config_cmd as config_cmd

    def noisy(args):  # type: ignore[no-untyped-def]
        warnings.warn("something to know", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(config_cmd, "run", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["config"]) == 0
    err = capsys.readouterr().err
    assert err == "laion-fmri: warning: something to know\n"


@pytest.mark.parametrize("argv", [["config", "--data-dir", "/definitely/not/here"],
                                  ["config", "--source", "ftp://x"],
                                  ["download", "--subject", "sub-99"]])
def test_bad_input_exits_2(argv: list[str], tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LAION_FMRI_DATA_DIR", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("laion-fmri: error: ") and "Traceback" not in err
