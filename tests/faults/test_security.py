"""No credentials read or sent, a private grant file, no unpickling of downloaded data."""

from __future__ import annotations

import io
import logging
import os
import re
import stat
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from faults.helpers import SES, SUB, accept_license
from faults.record import record

SRC = Path(__file__).resolve().parents[2] / "src" / "laion_fmri"

JUNK = {
    "AWS_ACCESS_KEY_ID": "AKIAJUNKJUNKJUNKJUNK",
    "AWS_SECRET_ACCESS_KEY": "junk/secret/junk/secret/junk/secret/junk0",
    "AWS_SESSION_TOKEN": "junk-session-token",
    "AWS_PROFILE": "junk-profile",
}


def test_public_bucket_requests_are_anonymous(proxy, data_dir, tmp_path, monkeypatch, request):  # type: ignore[no-untyped-def]
    """Credentials in the environment and in ~/.aws are never used for the public bucket."""
    from laion_fmri.download import download, verify

    creds = tmp_path / "aws_credentials"
    creds.write_text("[default]\naws_access_key_id = AKIAFILEJUNKFILEJUNK\n"
                     "aws_secret_access_key = filejunkfilejunkfilejunkfilejunkfilejunk\n"
                     "[junk-profile]\naws_access_key_id = AKIAPROFILEJUNKJUNK0\n"
                     "aws_secret_access_key = profilejunkprofilejunkprofilejunkprofil\n")
    for name, value in JUNK.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(creds))
    accept_license(data_dir)
    report = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert report.failed == {} and report.downloaded
    layout_file = next(p for p in data_dir.rglob("*.tsv"))
    layout_file.write_text("damaged\n")
    assert verify(repair=True, data_dir=data_dir, progress=False).repaired
    seen = proxy.records
    kinds = {r.method for r in seen}
    assert {"GET"} <= kinds and len(seen) > 10
    assert [r for r in seen if r.authorization] == []
    assert not any("X-Amz-Credential" in r.query or "AKIA" in r.query for r in seen)
    record("hostile", request.node.nodeid, inputs=len(seen), check="no Authorization header")


def test_grant_file_is_private_and_not_logged(tmp_path, monkeypatch, caplog, request):  # type: ignore[no-untyped-def]
    access = pytest.importorskip("laion_fmri.access")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    secret = "lfm_SECRET_request_id_0123456789"
    old = os.umask(0)  # even with a permissive umask
    out, err = io.StringIO(), io.StringIO()
    try:
        with caplog.at_level(logging.DEBUG), redirect_stdout(out), redirect_stderr(err):
            path = access.save_grant(secret, "someone@example.org")
            assert access.load_grant() == secret
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert secret in path.read_text()
    assert secret not in out.getvalue() + err.getvalue() + caplog.text
    # No temporary copy is left readable beside it.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    record("hostile", request.node.nodeid, inputs=1, check="grant file 0600")


_FORBIDDEN = [
    (r"^\s*import\s+pickle\b|^\s*from\s+pickle\s+import|\bcPickle\b", "pickle import"),
    (r"\bpickle\.loads?\(", "pickle.load"),
    (r"allow_pickle\s*=\s*True", "allow_pickle=True"),
    (r"\bread_pickle\s*\(", "pandas.read_pickle"),
    (r"\bjoblib\.load\s*\(", "joblib.load"),
    (r"\bmarshal\.loads?\(|\bshelve\.open\(", "marshal/shelve"),
    (r"\byaml\.load\s*\((?![^)]*SafeLoader)", "unsafe yaml.load"),
    (r"\btorch\.load\s*\((?![^)]*weights_only\s*=\s*True)", "torch.load without weights_only=True"),
    (r"\beval\s*\(|\bexec\s*\(", "eval/exec"),
]


def test_package_never_unpickles(request):  # type: ignore[no-untyped-def]
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    hits = []
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, what in _FORBIDDEN:
                if re.search(pattern, code):
                    hits.append(f"{path.relative_to(SRC)}:{lineno}: {what}: {line.strip()}")
    assert hits == []
    record("hostile", request.node.nodeid, inputs=len(files), check="no unpickling")


def test_np_load_calls_forbid_pickles(request):  # type: ignore[no-untyped-def]
    """Every ``np.load`` either passes ``allow_pickle=False`` or relies on its False default."""
    calls = 0
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\bnp\.load\((?P<args>[^)]*)\)", text):
            calls += 1
            assert "allow_pickle=True" not in match.group("args").replace(" ", ""), path
    record("hostile", request.node.nodeid, inputs=calls, check="np.load without pickles")
