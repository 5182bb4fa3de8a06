"""The one agreement flow: env var, no terminal, wrong answer, accepted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from laion_fmri import access, licenses
from laion_fmri.agreements import AGREE, Agreement
from laion_fmri.errors import LicenseNotAcceptedError

TERMS = Agreement("test terms", lambda: "The terms.", "license", env_var="LAION_FMRI_TEST_AGREE",
                  how="Say yes first.")


def test_no_terminal_fails_fast_and_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LicenseNotAcceptedError, match=r"test terms has not been accepted.*Say yes first"):
        TERMS.ensure(tmp_path, interactive=False, input_fn=lambda _: pytest.fail("asked"))
    assert not TERMS.accepted(tmp_path)


def test_wrong_answer_then_accept_once(tmp_path: Path) -> None:
    shown: list[str] = []
    with pytest.raises(LicenseNotAcceptedError, match="you typed 'yes'"):
        TERMS.ensure(tmp_path, interactive=True, input_fn=lambda _: "yes", out=shown.append)
    assert shown == ["The terms."] and not TERMS.accepted(tmp_path)
    TERMS.ensure(tmp_path, interactive=True, input_fn=lambda _: f" {AGREE} ", out=shown.append)
    assert TERMS.marker_path(tmp_path).read_text(encoding="utf-8").startswith("accepted the test terms")
    TERMS.ensure(tmp_path, interactive=True, input_fn=lambda _: pytest.fail("asked twice"))


def test_end_of_input_is_a_refusal(tmp_path: Path) -> None:
    def eof(_: str) -> str:
        raise EOFError

    with pytest.raises(LicenseNotAcceptedError):
        TERMS.ensure(tmp_path, interactive=True, input_fn=eof, out=lambda _: None)


def test_env_variable_accepts_without_asking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAION_FMRI_TEST_AGREE", "yes")
    TERMS.ensure(tmp_path, interactive=False)
    assert TERMS.accepted(tmp_path)


def test_both_agreements_are_instances_with_their_own_markers(tmp_path: Path) -> None:
    assert isinstance(licenses.DATASET_LICENSE, Agreement)
    assert isinstance(access.STIMULUS_AGREEMENT, Agreement)
    access.record_local_agreement(tmp_path)
    assert access.STIMULUS_AGREEMENT.accepted(tmp_path)
    assert not licenses.dataset_license_accepted(tmp_path)
