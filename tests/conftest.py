"""Shared fixtures: isolated config, the tiny sample dataset, a loopback S3 server.

Nothing here (or in any test) may reach a non-loopback address: the
``_loopback_only`` fixture makes every Python socket connection to another
host fail loudly.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "laion-fmri"


# --------------------------------------------------------------------------- network guard
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0] if isinstance(address, tuple) else None
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):  # type: ignore[no-untyped-def]
    if not _is_loopback(address):
        raise OSError(f"tests may only connect to loopback, not {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):  # type: ignore[no-untyped-def]
    if not _is_loopback(address):
        raise OSError(f"tests may only connect to loopback, not {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


# --------------------------------------------------------------------------- configuration
@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own XDG config home and no LAION_FMRI_* variables."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    for name in list(os.environ):
        if name.startswith("LAION_FMRI_"):
            monkeypatch.delenv(name)
    # AWS settings on the machine must never leak into the anonymous client.
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # A source found unreachable by one test must not be remembered by the next.
    from laion_fmri.discovery import forget_unreachable

    forget_unreachable()
    return home


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty, registered data directory."""
    from laion_fmri.config import dataset_initialize

    folder = tmp_path / "data"
    folder.mkdir()
    dataset_initialize(folder)
    return folder


# --------------------------------------------------------------------------- sample dataset
@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sample dataset in bucket layout. Treat as read-only."""
    from laion_fmri.sample import make_sample_dataset

    root = tmp_path_factory.mktemp("sample") / "bucket"
    make_sample_dataset(root, scale="tiny", seed=0)
    return root


@pytest.fixture
def sample_copy(sample_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the sample dataset (for tests that alter files)."""
    dest = tmp_path / "copy"
    shutil.copytree(sample_root, dest)
    return dest


@pytest.fixture
def downloaded(sample_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory holding the whole sample dataset, registered via env."""
    (sample_copy / ".laion_fmri").mkdir(exist_ok=True)
    monkeypatch.setenv("LAION_FMRI_DATA_DIR", str(sample_copy))
    return sample_copy


@pytest.fixture(scope="session")
def shared_downloaded(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One read-mostly data directory with the whole sample, shared by a session.

    Use it for tests that only read (the loader may write its cache here).
    """
    dest = tmp_path_factory.mktemp("shared") / "data"
    shutil.copytree(sample_root, dest)
    (dest / ".laion_fmri").mkdir(exist_ok=True)
    return dest


# --------------------------------------------------------------------------- loopback S3
@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    client: object  # boto3 S3 client with dummy credentials (for setup only)

    def put(self, key: str, body: bytes, public: bool = True) -> None:
        self.client.put_object(  # type: ignore[attr-defined]
            Bucket=self.bucket, Key=key, Body=body, ACL="public-read" if public else "private"
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)  # type: ignore[attr-defined]


def _upload_tree(server: S3Server, root: Path) -> None:
    from laion_fmri.layout import HELD_OUT_SESSIONS, STATE_DIRNAME

    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        key = path.relative_to(root).as_posix()
        if key.startswith(STATE_DIRNAME + "/"):
            continue
        held_out = any(f"/{s}/" in f"/{key}" for s in HELD_OUT_SESSIONS)
        server.put(key, path.read_bytes(), public=not held_out)


@pytest.fixture(scope="session")
def s3_server(sample_root: Path) -> Iterator[S3Server]:
    """A real S3-protocol server (moto) on 127.0.0.1 holding the sample dataset.

    Held-out sessions are uploaded private, so anonymous GETs get HTTP 403.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    s3 = S3Server(url, BUCKET, client)
    _upload_tree(s3, sample_root)
    yield s3
    server.stop()


@pytest.fixture
def s3_source(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point the package at the loopback S3 server (via env)."""
    monkeypatch.setenv("LAION_FMRI_SOURCE", f"s3://{s3_server.bucket}")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", s3_server.endpoint_url)
    return s3_server


@pytest.fixture
def local_source(sample_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the package at the sample dataset as a local-folder source."""
    monkeypatch.setenv("LAION_FMRI_SOURCE", str(sample_root))
    return sample_root
