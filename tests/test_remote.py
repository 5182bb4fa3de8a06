"""The Store contract, for the S3 store (real HTTP to moto) and the local-folder store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.errors import (
    AccessDeniedError,
    ConfigError,
    DataNotFoundError,
    ObjectChangedError,
    SourceUnavailableError,
    UnsafeKeyError,
)
from laion_fmri.remote import LocalStore, ObjectInfo, S3Store, open_store

SUB = "sub-03"


def _sample_keys(root: Path, prefix: str = "") -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() for p in (root / prefix).rglob("*") if p.is_file()
    )


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest) -> S3Store | LocalStore:
    request.getfixturevalue("s3_source" if request.param == "s3" else "local_source")
    return open_store()


def test_list_streams_every_object(store, sample_root: Path) -> None:
    prefix = layout.subject_glm_prefix(SUB)
    listing = store.list(prefix)
    assert isinstance(listing, Iterator)
    objs = list(listing)
    assert sorted(o.key for o in objs) == _sample_keys(sample_root, prefix)
    assert all(o.size == (sample_root / o.key).stat().st_size for o in objs)
    assert list(store.list("no/such/prefix/")) == []


def test_list_dirs_and_files(store, sample_root: Path) -> None:
    assert store.list_dirs(layout.GLM_ROOT) == [f"{layout.GLM_ROOT}/{s}/" for s in ("sub-01", "sub-03")]
    top = {o.key for o in store.list_files("")}
    assert set(layout.DATASET_LEVEL_KEYS) <= top
    assert all("/" not in k for k in top)


def test_head_and_open_with_range(store, sample_root: Path) -> None:
    key = layout.trials_key(SUB, "ses-01")
    body = (sample_root / key).read_bytes()
    info = store.head(key)
    assert info.size == len(body)
    with store.open(key) as dl:
        assert dl.status == 200 and b"".join(bytes(c) for c in dl) == body
    with store.open(key, start=10, if_match=info.etag) as dl:
        assert dl.status == 206 and dl.start == 10
        assert b"".join(bytes(c) for c in dl) == body[10:]
    with pytest.raises(DataNotFoundError):
        store.head(layout.trials_key(SUB, "ses-09"))
    with pytest.raises(UnsafeKeyError):
        store.open("../../etc/passwd")


def test_s3_specifics(s3_source, sample_root: Path) -> None:
    store = open_store()
    assert open_store() is store  # one shared client per configuration
    key = layout.trials_key(SUB, "ses-02")
    info = store.head(key)
    assert info.etag == hashlib.md5((sample_root / key).read_bytes()).hexdigest() == info.md5
    with pytest.raises(ObjectChangedError):
        store.open(key, start=3, if_match="0" * 32)
    with pytest.raises(AccessDeniedError, match="403"):
        store.open(layout.trials_key(SUB, "ses-31"))
    held = [o.key for o in store.list(layout.subject_glm_prefix(SUB)) if "/ses-31/" in o.key]
    assert held  # listed, yet refused


def test_unreachable_endpoint_is_source_unavailable() -> None:
    store = S3Store("laion-fmri", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(SourceUnavailableError, match=r"127\.0\.0\.1:9"):
        list(store.list(""))
    with pytest.raises(SourceUnavailableError):
        store.head("README")


def test_local_store_missing_root_and_open_store_forms(tmp_path: Path) -> None:
    missing = LocalStore(tmp_path / "nope")
    with pytest.raises(SourceUnavailableError, match="does not exist"):
        list(missing.list())
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    with pytest.raises(ConfigError):
        open_store("ftp://host/x")


def test_s3_listing_paginates(s3_server) -> None:
    # More keys than one ListObjectsV2 page (1,000), in a bucket of its own.
    bucket, prefix = "laion-fmri-pagination-test", "many/"
    client = s3_server.client
    client.create_bucket(Bucket=bucket,
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    keys = [f"{prefix}{i:05d}.txt" for i in range(1050)]

    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=b"x", ACL="public-read")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    try:
        store = S3Store(bucket, endpoint_url=s3_server.endpoint_url)
        assert [o.key for o in store.list(prefix)] == keys
    finally:
        for i in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
        client.delete_bucket(Bucket=bucket)


def test_object_info_md5() -> None:
    info = ObjectInfo("k", 0, "D41D8CD98F00B204E9800998ECF8427E", None)
    assert info.md5 == "d41d8cd98f00b204e9800998ecf8427e"


def test_timeout_env_knobs_are_validated(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.errors import ConfigError
    from laion_fmri.remote import S3Store, open_store

    monkeypatch.setenv("LAION_FMRI_READ_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="LAION_FMRI_READ_TIMEOUT"):
        open_store("s3://timeout-check")
    monkeypatch.setenv("LAION_FMRI_READ_TIMEOUT", "2.5")
    monkeypatch.setenv("LAION_FMRI_CONNECT_TIMEOUT", "1")
    store = open_store("s3://timeout-check")
    assert isinstance(store, S3Store)
    # A changed knob gives a new client instead of the cached one.
    monkeypatch.setenv("LAION_FMRI_READ_TIMEOUT", "3")
    assert open_store("s3://timeout-check") is not store


def test_unreachable_messages_say_what_and_what_to_do(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = S3Store("laion-fmri", endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(SourceUnavailableError) as info:
        list(store.list("derivatives/"))
    text = str(info.value)
    assert text.startswith(f"s3://laion-fmri (endpoint http://127.0.0.1:{port}) refused the connection")
    assert "laion-fmri config" in text and "LAION_FMRI_READ_TIMEOUT" in text
    assert "(Details: " in text  # the original error text comes last
    assert store.address("README") == f"s3://laion-fmri/README (endpoint http://127.0.0.1:{port})"

    monkeypatch.setenv("LAION_FMRI_READ_TIMEOUT", "0.5")
    with socket.socket() as stalled:  # accepts (kernel backlog), never answers
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(8)
        slow = S3Store("laion-fmri", endpoint_url=f"http://127.0.0.1:{stalled.getsockname()[1]}")
        with pytest.raises(SourceUnavailableError, match=r"did not answer within 0\.5 s"):
            slow.head("README")


def test_local_listing_is_in_key_order(local_source: Path, sample_root: Path) -> None:
    store = open_store()
    keys = [o.key for o in store.list("")]
    assert keys == sorted(keys) == _sample_keys(sample_root)
    sub = [o.key for o in store.list(layout.subject_glm_prefix(SUB))]
    assert sub == sorted(sub) and len(sub) > 3


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Generic S3 error: request failed after 3 retries in 315.41293ms", "SourceUnavailableError"),
        ("HTTP status client error (412 Precondition Failed) for url", "ObjectChangedError"),
        ("Server returned non-2xx status code: 412", "ObjectChangedError"),
        ("timed out after 4.412 s", "SourceUnavailableError"),
    ],
)
def test_error_texts_map_by_status_not_by_digits_inside_numbers(message: str, expected: str) -> None:
    """A duration such as "315.41293ms" holds the digits 412 but is no HTTP 412."""
    from laion_fmri.stores._http import map_error

    assert type(map_error(TimeoutError(message), "k", "s3://b")).__name__ == expected
