"""Fixtures of the fault-injection suite.

``proxy``
    a :class:`~faults.proxy.FaultProxy` in front of the session's loopback S3
    server, with the package pointed at it through ``LAION_FMRI_SOURCE`` and
    ``LAION_FMRI_ENDPOINT_URL``.
``snapshot``
    ``snapshot(dir)`` -> ``{relative path: sha256}`` of every file, for
    "nothing else changed" assertions.
``fault_log``
    ``fault_log(name, injected=..., bytes_verified=..., files_lost=...)`` appends
    the figures of one fault test to the reliability log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faults.proxy import FaultProxy
from faults.record import record


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tree_snapshot(root: Path, include_state: bool = False) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every regular file under ``root``."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not include_state and rel.split("/", 1)[0] == ".laion_fmri":
            continue
        if path.is_file() and not path.is_symlink():
            out[rel] = sha256_file(path)
    return out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    """Record failed fault scenarios too, so the report cannot hide them."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        text = " ".join(str(call.excinfo.value).split()) if call.excinfo else ""
        # A failed byte/array comparison means wrong data reached disk or the caller.
        lost = int(any(s in text for s in ("bytes differ", "Arrays are not equal", "differs from")))
        record("fault", item.nodeid, fault=item.name, failed=True, injected=0, bytes_verified=0,
               files_lost=lost, error=text[:300])


@pytest.fixture
def proxy(s3_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:  # type: ignore[no-untyped-def]
    """A fault proxy in front of the loopback S3 server; the package points at it."""
    with FaultProxy(s3_server.endpoint_url) as fp:
        monkeypatch.setenv("LAION_FMRI_SOURCE", f"s3://{s3_server.bucket}")
        monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", fp.url)
        yield fp


@pytest.fixture
def snapshot() -> Callable[..., dict[str, str]]:
    """``snapshot(root)`` -> ``{relative path: sha256}`` (state folder excluded)."""
    return tree_snapshot


@pytest.fixture
def fault_log(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record the figures of one fault test (see ``scripts/reliability_report.py``)."""

    def _log(fault: str, *, injected: int, bytes_verified: int, files_lost: int = 0, **extra: object) -> None:
        record(
            "fault",
            request.node.nodeid,
            fault=fault,
            injected=injected,
            bytes_verified=bytes_verified,
            files_lost=files_lost,
            **extra,
        )

    return _log
