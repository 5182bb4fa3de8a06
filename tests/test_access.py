"""The stimulus access client against a loopback fake of the service.

The fake speaks the documented API (manifest, access request, refresh) and
hands out presigned URLs of the loopback S3 server, so bytes travel through
the real download engine over real HTTP.
"""

from __future__ import annotations

import hashlib
import json
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from laion_fmri import access, layout
from laion_fmri.cli import main
from laion_fmri.download.stimuli import download_stimuli
from laion_fmri.download.transfer import fetch_objects
from laion_fmri.errors import (
    AccessNotFoundError,
    AccessRevokedError,
    AccessServiceError,
    LicenseNotAcceptedError,
    RateLimitedError,
    TermsOutdatedError,
)

TERMS_VERSION = "2026-01"
GOOD_ID = "lfm_good"
PURPOSE = "Encoding models of ventral visual cortex."


@dataclass
class FakeService:
    url: str
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def count(self, path: str) -> int:
        return sum(1 for _, p, _ in self.calls if p == path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def service(s3_server, sample_root: Path) -> Iterator[FakeService]:  # type: ignore[no-untyped-def]
    files = [
        {"name": key.rsplit("/", 1)[1], "size": (sample_root / key).stat().st_size,
         "sha256": _sha256(sample_root / key)}
        for key in layout.GATED_STIMULUS_KEYS
    ]

    def presigned(expired: bool) -> list[dict[str, object]]:
        out = []
        for f, key in zip(files, layout.GATED_STIMULUS_KEYS, strict=True):
            url = s3_server.client.generate_presigned_url(
                "get_object", Params={"Bucket": s3_server.bucket, "Key": key}, ExpiresIn=600)
            if expired:  # a URL whose signature the server refuses, as after expiry
                url = f"{state.url}/expired/{key}"
            out.append({**f, "url": url})
        return out

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            state.calls.append(("GET", self.path, {}))
            if self.path == "/api/v1/manifest":
                self._send(200, {"current_terms_version": TERMS_VERSION, "files": files})
            elif self.path.startswith("/expired/"):
                self._send(403, {"error": "SignatureDoesNotMatch"})
            else:
                self._send(404, {"detail": "no such page"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            state.calls.append(("POST", self.path, form))
            if self.path == "/api/v1/access/request":
                if form.get("terms_version") != TERMS_VERSION:
                    return self._send(403, {"error": "terms_outdated"})
                if form.get("accepted_terms") != "true" or len(form.get("research_purpose", "")) < 20:
                    return self._send(422, {"detail": "invalid request"})
                return self._send(200, {"request_id": GOOD_ID, "expires_at": "2026-12-01T00:00:00Z",
                                        "files": presigned(expired=True)})
            if self.path == "/api/v1/refresh":
                rid = form.get("request_id")
                if form.get("dataset_version") != "v1":
                    return self._send(400, {"detail": "unknown dataset_version"})
                if rid == GOOD_ID:
                    return self._send(200, {"request_id": rid, "expires_at": None,
                                            "files": presigned(expired=False)})
                if rid == "lfm_outdated":
                    return self._send(403, {"error": "terms_outdated", "detail": "accept v2"})
                if rid == "lfm_revoked":
                    return self._send(403, {"error": "revoked"})
                if rid == "lfm_busy":
                    return self._send(429, {"detail": "slow down"}, {"Retry-After": "30"})
                return self._send(404, {"error": "not_found"})
            return self._send(404, {"detail": "no such endpoint"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = FakeService(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _details(purpose: str = PURPOSE) -> access.AccessDetails:
    return access.AccessDetails("Ada L.", "ada@uni.example", "Uni", "Prof. B", purpose)


# --------------------------------------------------------------------------- client
def test_manifest_and_request_store_a_private_grant(service: FakeService, isolated_config: Path) -> None:
    client = access.AccessClient(service.url)
    manifest = client.manifest()
    assert manifest.terms_version == TERMS_VERSION
    assert {f.key for f in manifest.files} == set(layout.GATED_STIMULUS_KEYS)

    rid = access.request_stimulus_access(_details(), server_url=service.url, out=lambda _: None)
    assert rid == GOOD_ID
    sent = [form for _, path, form in service.calls if path == "/api/v1/access/request"][-1]
    assert sent["terms_version"] == TERMS_VERSION and sent["accepted_terms"] == "true"
    assert sent["email"] == "ada@uni.example" and sent["source"]
    path = access.auth_path()
    assert path == isolated_config / "cache" / "laion-fmri" / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = json.loads(path.read_text())
    assert record["request_id"] == GOOD_ID and record["server_url"] == service.url
    assert access.load_grant(service.url) == GOOD_ID
    assert access.load_grant("http://127.0.0.1:1") is None  # grants are per service
    assert access.clear_grant() and access.load_grant(service.url) is None


def test_env_request_id_wins(service: FakeService, monkeypatch: pytest.MonkeyPatch) -> None:
    access.save_grant("lfm_stored", server_url=service.url)
    monkeypatch.setenv("LAION_FMRI_REQUEST_ID", "lfm_from_env")
    assert access.load_grant(service.url) == "lfm_from_env"


@pytest.mark.parametrize(
    ("request_id", "error", "text"),
    [
        ("lfm_outdated", TermsOutdatedError, "accept v2"),
        ("lfm_revoked", AccessRevokedError, "request-access"),
        ("lfm_unknown", AccessNotFoundError, "request-access"),
        ("lfm_busy", RateLimitedError, "30 s"),
    ],
)
def test_error_statuses_map_to_distinct_errors(service: FakeService, request_id: str,
                                               error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        access.AccessClient(service.url).refresh(request_id)


def test_outdated_terms_on_request_and_unreachable_service(service: FakeService) -> None:
    with pytest.raises(TermsOutdatedError):
        access.AccessClient(service.url).request_access(_details(), "1999-01")
    with pytest.raises(ValueError, match="20 characters"):
        access.AccessClient(service.url).request_access(_details("too short"), TERMS_VERSION)
    with pytest.raises(AccessServiceError, match="https://host"):
        access.AccessClient("ftp://nowhere")
    from laion_fmri.errors import SourceUnavailableError

    with pytest.raises(SourceUnavailableError, match="LAION_FMRI_ACCESS_URL"):
        access.AccessClient("http://127.0.0.1:9", timeout=2).manifest()


# --------------------------------------------------------------------------- prompts
def test_interactive_request_reasks_and_requires_i_agree(service: FakeService) -> None:
    answers = iter(["Ada", "not-an-email", "ada@uni.example", "Uni", "Prof. B", "short",
                    PURPOSE, "I AGREE"])
    shown: list[str] = []
    rid = access.request_stimulus_access(server_url=service.url, interactive=True,
                                         input_fn=lambda _: next(answers), out=shown.append)
    assert rid == GOOD_ID
    text = "\n".join(shown)
    assert "=== LAION-fMRI Stimulus License ===" in text and "non-commercial" in text
    assert "e-mail" in text and "20 characters" in text  # the re-ask messages

    access.clear_grant()
    declined = iter(["Ada", "ada@uni.example", "Uni", "Prof. B", PURPOSE, "yes"])
    before = service.count("/api/v1/access/request")
    with pytest.raises(LicenseNotAcceptedError, match="I AGREE"):
        access.request_stimulus_access(server_url=service.url, interactive=True,
                                       input_fn=lambda _: next(declined), out=lambda _: None)
    assert service.count("/api/v1/access/request") == before
    assert access.load_grant(service.url) is None


# --------------------------------------------------------------------------- downloads
def test_download_without_grant_or_terminal_fails_fast(service: FakeService, tmp_path: Path) -> None:
    with pytest.raises(LicenseNotAcceptedError, match="laion-fmri request-access"):
        download_stimuli(tmp_path, server_url=service.url, progress=False, interactive=False)
    assert not (tmp_path / layout.STIMULI_IMAGES_KEY).exists()


def test_download_with_a_revoked_grant_names_the_problem(service: FakeService, tmp_path: Path) -> None:
    access.save_grant("lfm_revoked", server_url=service.url)
    with pytest.raises(AccessRevokedError, match="revoked"):
        download_stimuli(tmp_path, server_url=service.url, progress=False, interactive=False)
    assert not (tmp_path / layout.STIMULI_IMAGES_KEY).exists()


def test_download_through_presigned_urls(service: FakeService, sample_root: Path,
                                         tmp_path: Path) -> None:
    access.save_grant(GOOD_ID, server_url=service.url)
    paths = download_stimuli(tmp_path, server_url=service.url, n_jobs=2, progress=False,
                             interactive=False)
    assert set(paths) == {k.rsplit("/", 1)[1] for k in layout.GATED_STIMULUS_KEYS}
    for key in layout.GATED_STIMULUS_KEYS:
        assert paths[key.rsplit("/", 1)[1]] == layout.local_path(tmp_path, key)
        assert paths[key.rsplit("/", 1)[1]].read_bytes() == (sample_root / key).read_bytes()
    # Already verified on disk: no grant needed, no presigned URL asked for.
    refreshes = service.count("/api/v1/refresh")
    access.clear_grant()
    again = download_stimuli(tmp_path, server_url=service.url, progress=False, interactive=False)
    assert again == paths and service.count("/api/v1/refresh") == refreshes

    from laion_fmri.stimuli import load_stimuli

    hub = load_stimuli(tmp_path)
    assert len(hub.images) == len(hub.metadata) and hub.images.get(0).size[0] > 0


def test_expired_urls_are_refreshed_and_partial_files_resume(
    service: FakeService, sample_root: Path, tmp_path: Path
) -> None:
    client = access.AccessClient(service.url)
    grant = client.request_access(_details(), TERMS_VERSION)  # hands out refused URLs
    store = access.PresignedStore(client, client.manifest(), lambda: grant.request_id)
    store._urls = {f.key: f.url for f in grant.files}  # type: ignore[misc]
    key = layout.STIMULI_IMAGES_KEY
    info = store.head(key)
    target = layout.local_path(tmp_path, key)
    whole = (sample_root / key).read_bytes()
    part = 16 * 1024
    done = {"n": 0}

    def stop_after_two_parts(_key: str, n: int) -> None:
        done["n"] += n
        if done["n"] >= 2 * part:
            raise KeyboardInterrupt

    refreshes = service.count("/api/v1/refresh")
    with pytest.raises(KeyboardInterrupt):
        fetch_objects([info], store, tmp_path, n_jobs=1, connections=1, progress=False, chunk_size=1024,
                      part_size=part, on_chunk=stop_after_two_parts)
    assert service.count("/api/v1/refresh") == refreshes + 1  # the refused URL, refreshed once
    assert json.loads(layout.partial_state_path(target).read_text())["done"].keys() == {"0"}
    report = fetch_objects([info], store, tmp_path, n_jobs=1, connections=1, progress=False, chunk_size=1024,
                           part_size=part)
    assert report.ok and target.read_bytes() == whole
    assert report.bytes == len(whole) - part  # only the missing parts moved (HTTP Range)


def test_local_source_gates_images_with_the_same_agreement(local_source: Path, sample_root: Path,
                                                           tmp_path: Path) -> None:
    with pytest.raises(LicenseNotAcceptedError, match="laion-fmri request-access"):
        download_stimuli(tmp_path, progress=False, interactive=False)
    with pytest.raises(LicenseNotAcceptedError):
        access.ensure_local_terms(tmp_path, interactive=True, input_fn=lambda _: "no", out=lambda _: None)
    access.ensure_local_terms(tmp_path, interactive=True, input_fn=lambda _: "I AGREE",
                              out=lambda _: None)
    assert layout.stimulus_terms_marker(tmp_path).is_file()
    paths = download_stimuli(tmp_path, progress=False, interactive=False)
    for key in layout.GATED_STIMULUS_KEYS:
        assert paths[key.rsplit("/", 1)[1]].read_bytes() == (sample_root / key).read_bytes()
    # Scripted acceptance in code (no prompt) for another data directory.
    other = tmp_path / "scripted"
    other.mkdir()
    again = download_stimuli(other, progress=False, interactive=False, accept_terms=True)
    assert layout.stimulus_terms_marker(other).is_file() and set(again) == set(paths)


# --------------------------------------------------------------------------- CLI
def test_cli_login_logout_and_download(service: FakeService, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--request-id", "lfm_unknown", "--server-url", service.url]) == 2
    assert "request-access" in capsys.readouterr().err
    assert access.load_grant(service.url) is None
    assert main(["login", "--request-id", GOOD_ID, "--server-url", service.url]) == 0
    assert access.load_grant(service.url) == GOOD_ID
    assert GOOD_ID not in capsys.readouterr().out  # the id is never echoed
    assert main(["download-stimuli", "--data-dir", str(tmp_path), "--server-url", service.url,
                 "--no-progress"]) == 0
    assert layout.STIMULI_IMAGES_KEY.rsplit("/", 1)[1] in capsys.readouterr().out
    assert main(["logout"]) == 0 and access.load_grant(service.url) is None
    assert main(["download-stimuli", "--data-dir", str(tmp_path / "other"),
                 "--server-url", service.url, "--no-progress"]) == 2
    assert "laion-fmri request-access" in capsys.readouterr().err
