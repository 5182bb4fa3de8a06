"""Small helpers shared by the fault tests (no fixtures here)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from laion_fmri import layout
from laion_fmri.sample import spec_for

SPEC = spec_for("tiny")
SUB = SPEC.subjects[0]
SES = SPEC.sessions[0]
BETAS_KEY = layout.betas_key(SUB, SES)
BETAS_NAME = BETAS_KEY.rsplit("/", 1)[1]


def temp_files(root: Path) -> list[str]:
    """Every ``.part``/``.part.json``/``.tmp`` file left under ``root``."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and (p.name.endswith((".part", ".part.json", ".tmp")))
    )


def verify_keys(data_dir: Path, source_root: Path, keys: Iterable[str]) -> int:
    """Assert each key's local bytes equal the source file; return the bytes compared."""
    total = 0
    for key in keys:
        local = layout.local_path(data_dir, key)
        expected = (source_root / key).read_bytes()
        got = local.read_bytes()
        assert got == expected, f"{key}: {len(got)} local bytes differ from {len(expected)} source bytes"
        total += len(expected)
    return total


def expected_files(keys: Iterable[str]) -> set[str]:
    """Local relative paths of the keys."""
    return {layout.local_relpath(k) for k in keys}


def assert_mirror(
    data_dir: Path, source_root: Path, keys: Iterable[str], before: dict[str, str], after: dict[str, str]
) -> int:
    """Bytes equal the source, no temp files, nothing outside ``keys`` changed.

    ``before``/``after`` are snapshots (``{relpath: sha256}``) taken around the run.
    Returns the number of bytes verified.
    """
    keys = list(keys)
    assert keys, "the run selected no keys"
    verified = verify_keys(data_dir, source_root, keys)
    assert temp_files(data_dir) == []
    wanted = expected_files(keys)
    # Files that existed before and are not part of this download are untouched.
    for rel, digest in before.items():
        if rel not in wanted:
            assert after.get(rel) == digest, f"{rel} changed or vanished"
    # Nothing appeared that was not asked for.
    assert set(after) - set(before) <= wanted
    return verified


def accept_license(data_dir: Path) -> None:
    """Accept the CC0 notice for a test data directory."""
    from laion_fmri.licenses import accept_dataset_license

    accept_dataset_license(data_dir)


def subprocess_env(proxy_url: str, bucket: str) -> dict[str, str]:
    """Environment for a child process that downloads through the proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAION_FMRI_", "AWS_"))}
    env["LAION_FMRI_SOURCE"] = f"s3://{bucket}"
    env["LAION_FMRI_ENDPOINT_URL"] = proxy_url
    env["PYTHONUNBUFFERED"] = "1"
    return env
