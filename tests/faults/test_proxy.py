"""The fault proxy does what it claims (checked with a plain ``http.client``)."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from faults.helpers import BETAS_KEY
from faults.proxy import FaultProxy, Rule


def _get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture
def fp(s3_server):  # type: ignore[no-untyped-def]
    with FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


def test_passthrough_and_records(fp, s3_server, sample_root):  # type: ignore[no-untyped-def]
    path = f"/{s3_server.bucket}/{BETAS_KEY}"
    status, _, body = _get(fp.url, path, {"Range": "bytes=10-19"})
    assert status == 206 and body == (sample_root / BETAS_KEY).read_bytes()[10:20]
    (rec,) = fp.records
    assert rec.key == BETAS_KEY and rec.range == "bytes=10-19" and rec.fault is None
    assert not rec.authorization


@pytest.mark.parametrize("fault", ["reset", "truncate", "long_length"])
def test_broken_bodies_break_a_plain_client(fault, fp, s3_server):  # type: ignore[no-untyped-def]
    fp.add(Rule(fault, match=BETAS_KEY))
    with pytest.raises((http.client.IncompleteRead, ConnectionError, http.client.HTTPException)):
        _get(fp.url, f"/{s3_server.bucket}/{BETAS_KEY}")
    # Only the first request is broken.
    status, _, body = _get(fp.url, f"/{s3_server.bucket}/{BETAS_KEY}")
    assert status == 200 and len(body) > 0


def test_short_length_looks_complete(fp, s3_server, sample_root):  # type: ignore[no-untyped-def]
    fp.add(Rule("short_length", match=BETAS_KEY, fraction=0.25))
    status, headers, body = _get(fp.url, f"/{s3_server.bucket}/{BETAS_KEY}")
    full = (sample_root / BETAS_KEY).read_bytes()
    assert status == 200 and body == full[: len(body)] and len(body) < len(full)
    assert int(headers["Content-Length"]) == len(body)


def test_status_and_ignore_range(fp, s3_server, sample_root):  # type: ignore[no-untyped-def]
    fp.add(Rule("status", match=BETAS_KEY, status=503, times=2))
    fp.add(Rule("ignore_range", match=BETAS_KEY, times=1))
    path = f"/{s3_server.bucket}/{BETAS_KEY}"
    assert _get(fp.url, path)[0] == 503
    assert _get(fp.url, path)[0] == 503
    status, _, body = _get(fp.url, path, {"Range": "bytes=5-"})
    assert status == 200 and body == (sample_root / BETAS_KEY).read_bytes()
    assert fp.faults_injected == 3
    with pytest.raises(ValueError, match="unknown fault"):
        Rule("explode")
