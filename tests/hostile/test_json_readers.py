"""Every JSON reader of the package goes through the one bounded reader (``_jsonio``).

Deeply nested and wrong-typed documents in the places the package reads JSON
from - a ``.part.json`` resume record, ``auth.json``, a reply of the access
service and the sample's ``dataset_description.json`` - end with the
documented outcome, never ``RecursionError``/``AttributeError``: resume
records are ignored and rebuilt; a bad grant file is a one-line error naming
the file and the fix; a bad service reply is an ``AccessServiceError``; a
folder with a bad description is "no sample here".
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from laion_fmri import access, layout
from laion_fmri.download._paths import read_state
from laion_fmri.download.transfer import fetch_objects
from laion_fmri.errors import AccessServiceError
from laion_fmri.sample.generator import sample_info
from laion_fmri.stores import S3Store

DEEP = b"[" * 200_000 + b"]" * 200_000
DEEP_OBJECT = b'{"a":' * 40 + b"1" + b"}" * 40
HOSTILE = {
    "deep_list": DEEP,
    "deep_object": DEEP_OBJECT,
    "null": b"null",
    "list": b"[1, 2, 3]",
    "string": b'"lfm_x"',
}


def _ids(mapping: dict) -> list[str]:
    return list(mapping)


# --------------------------------------------------------------------------- resume records
RESUME_WRONG_TYPES = {
    "key_list": {"key": ["a"], "etag": "x", "size": 1, "ranges": [], "done": {}},
    "size_text": {"key": "a", "etag": "x", "size": "big", "ranges": [], "done": {}},
    "done_list": {"key": "a", "etag": "x", "size": 1, "ranges": [], "done": [1, 2]},
    "ranges_dict": {"key": "a", "etag": "x", "size": 1, "ranges": {"0": 1}, "done": {}},
}


@pytest.mark.parametrize("body", [*HOSTILE.values(), *(json.dumps(v).encode()
                                                         for v in RESUME_WRONG_TYPES.values())],
                         ids=[*HOSTILE, *RESUME_WRONG_TYPES])
def test_bad_resume_record_is_ignored_and_the_file_rebuilt(
    body: bytes, s3_server, sample_root: Path, data_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    key = layout.betas_key("sub-03", "ses-01")
    store = S3Store(s3_server.bucket, endpoint_url=s3_server.endpoint_url)
    obj = store.head(key)
    target = layout.local_path(data_dir, key)
    target.parent.mkdir(parents=True)
    state = layout.partial_state_path(target)
    state.write_bytes(body)
    assert read_state(state) is None
    # A full-size partial file that the hostile record would vouch for.
    layout.partial_path(target).write_bytes(b"\0" * obj.size)
    part_size = max(4096, obj.size // 4)
    report = fetch_objects([obj], store, data_dir, progress=False, part_size=part_size,
                           chunk_size=part_size)
    assert report.downloaded == [key] and not report.failed
    assert target.read_bytes() == (sample_root / key).read_bytes()
    assert not state.exists() and not layout.partial_path(target).exists()


# --------------------------------------------------------------------------- grants
GRANT_WRONG_TYPES = {
    "request_id_number": {"server_url": access.DEFAULT_ACCESS_URL, "request_id": 5},
    "server_url_list": {"server_url": [access.DEFAULT_ACCESS_URL], "request_id": "lfm_x"},
    "email_dict": {"server_url": access.DEFAULT_ACCESS_URL, "request_id": "lfm_x",
                   "email": {"a": 1}},
}


@pytest.mark.parametrize("body", [*HOSTILE.values(), *(json.dumps(v).encode()
                                                         for v in GRANT_WRONG_TYPES.values())],
                         ids=[*HOSTILE, *GRANT_WRONG_TYPES])
def test_bad_grant_file_is_one_line_naming_file_and_fix(body: bytes) -> None:
    path = access.auth_path()
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    path.write_bytes(body)
    with pytest.raises(AccessServiceError) as info:
        access.load_grant()
    text = str(info.value)
    assert "\n" not in text
    assert str(path) in text and f"rm {path}" in text and "request-access" in text
    assert info.value.__cause__ is None


def test_grant_file_through_a_symlink_is_refused(tmp_path: Path) -> None:
    path = access.auth_path()
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    elsewhere = tmp_path / "other.json"
    elsewhere.write_text(json.dumps({"server_url": access.DEFAULT_ACCESS_URL,
                                     "request_id": "lfm_planted"}))
    path.symlink_to(elsewhere)
    with pytest.raises(AccessServiceError, match="symbolic link"):
        access.load_grant()


def test_good_grant_file_still_reads() -> None:
    access.save_grant("lfm_good")
    assert access.load_grant() == "lfm_good"


# --------------------------------------------------------------------------- service replies
REPLY_WRONG_TYPES = {
    "files_string": {"terms_version": "v1", "files": "everything"},
    "files_of_numbers": {"terms_version": "v1", "files": [1, 2]},
    "version_dict": {"terms_version": {"v": 1}, "files": []},
}


@pytest.fixture
def replying() -> Iterator[dict]:
    """A loopback HTTP server answering every request with ``state['status']`` and ``state['body']``."""
    state: dict = {"status": 200, "body": b"{}"}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self) -> None:
            body = state["body"]
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("body", [*HOSTILE.values(), *(json.dumps(v).encode()
                                                         for v in REPLY_WRONG_TYPES.values())],
                         ids=[*HOSTILE, *REPLY_WRONG_TYPES])
def test_bad_service_reply_is_an_access_service_error(body: bytes, replying: dict) -> None:
    replying["body"] = body
    with pytest.raises(AccessServiceError) as info:
        access.AccessClient(replying["url"]).manifest()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("body", list(HOSTILE.values()), ids=list(HOSTILE))
def test_bad_error_reply_still_maps_the_status(body: bytes, replying: dict) -> None:
    replying.update(status=404, body=body)
    with pytest.raises(AccessServiceError) as info:
        access.AccessClient(replying["url"]).refresh("lfm_x")
    assert len(str(info.value)) < 600


# --------------------------------------------------------------------------- sample description
@pytest.mark.parametrize("body", [*HOSTILE.values(), b'{"GeneratedBy": "laion-fmri"}',
                                  b'{"GeneratedBy": {"Name": 1}}'],
                         ids=[*HOSTILE, "generated_by_string", "generated_by_dict"])
def test_bad_dataset_description_means_no_sample(body: bytes, tmp_path: Path) -> None:
    (tmp_path / "dataset_description.json").write_bytes(body)
    assert sample_info(tmp_path) is None


def test_the_real_sample_description_still_reads(sample_root: Path) -> None:
    info = sample_info(sample_root)
    assert info is not None and info["Scale"] == "tiny"
