"""Where the bytes come from: an anonymous S3 bucket or a local folder.

Both sources expose the same small :class:`Store` interface, keyed by the
bucket-relative key (``/``-separated) that :mod:`laion_fmri.layout` builds:

* :meth:`Store.list` streams every object under a folder prefix (an iterator,
  so 100,000 keys never sit in one list);
* :meth:`Store.list_dirs` returns the sub-folders of a folder;
* :meth:`Store.head` returns one object's :class:`ObjectInfo`;
* :meth:`Store.open` starts a (possibly ranged, ETag-guarded) download and
  returns a :class:`Download` to iterate over.

Errors are mapped to ours: HTTP 403 -> :class:`AccessDeniedError`, 404 ->
:class:`DataNotFoundError`, a failed ``If-Match`` -> :class:`ObjectChangedError`,
connection failures, timeouts and 5xx -> :class:`SourceUnavailableError` (the
transfer engine retries those with backoff).

One S3 client (and so one connection pool) is shared per process and
configuration: :func:`open_store` caches it.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from laion_fmri.config import Source, get_source, parse_source
from laion_fmri.errors import (
    AccessDeniedError,
    ConfigError,
    DataNotFoundError,
    DownloadError,
    ObjectChangedError,
    SourceUnavailableError,
    UnsafeKeyError,
)
from laion_fmri.layout import STATE_DIRNAME, check_key

#: Bytes per chunk handed to the caller by :meth:`Download.__iter__`.
DEFAULT_CHUNK_SIZE = 1024 * 1024
CONNECT_TIMEOUT = timedelta(seconds=10)
READ_TIMEOUT = timedelta(seconds=60)
#: Environment overrides (seconds) for slow links or tests.
ENV_CONNECT_TIMEOUT = "LAION_FMRI_CONNECT_TIMEOUT"
ENV_READ_TIMEOUT = "LAION_FMRI_READ_TIMEOUT"
#: obstore retries a little on its own; the transfer engine retries more with
#: resume, so this stays small (a listing retried here cannot hang for long).
OBSTORE_MAX_RETRIES = 2
OBSTORE_RETRY_TIMEOUT = timedelta(seconds=20)
#: Listings and HEADs are small: their read timeout and retry budget are shorter.
LIST_READ_TIMEOUT = timedelta(seconds=15)
LIST_RETRY_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class ObjectInfo:
    """What the source says about one object.

    Parameters
    ----------
    key : str
        Bucket-relative key.
    size : int
        Size in bytes.
    etag : str or None
        Entity tag without quotes (``None`` for a local folder).
    last_modified : datetime or None
        Last modification time.
    sha256 : str or None
        Hex SHA-256 when the source publishes one.

    Examples
    --------
    >>> ObjectInfo("README", 12, None, None).size
    12
    """

    key: str
    size: int
    etag: str | None
    last_modified: datetime | None
    sha256: str | None = None

    @property
    def md5(self) -> str | None:
        """The MD5 the ETag encodes, or ``None`` (multipart or opaque ETags).

        A single-part S3 upload's ETag is the hex MD5 of the body; multipart
        ETags end in ``-N`` and say nothing about the bytes.
        """
        etag = (self.etag or "").lower()
        if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag):
            return etag
        return None


class Download(Protocol):
    """An open download: iterate for the byte chunks; use as a context manager.

    Examples
    --------
    >>> with open_store().open("README") as dl:  # doctest: +SKIP
    ...     body = b"".join(dl)
    """

    info: ObjectInfo
    status: int  # 200 for the whole object, 206 when the requested range was honoured
    start: int  # offset of the first byte this download yields

    def __iter__(self) -> Iterator[bytes]: ...

    def __enter__(self) -> Download: ...

    def __exit__(self, *exc: object) -> None: ...


class Store(Protocol):
    """The interface every data source implements (S3 or local folder).

    Examples
    --------
    >>> store: Store = open_store("/tmp")
    >>> store.url
    '/tmp'
    """

    url: str

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Stream every object under the folder ``prefix``, recursively.

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root; a trailing ``/`` is optional).

        Yields
        ------
        ObjectInfo
            One per object, as the source lists them.

        Raises
        ------
        SourceUnavailableError, AccessDeniedError
            When the source cannot be listed.
        """
        ...

    def list_dirs(self, prefix: str = "") -> list[str]:
        """Sub-folders of the folder ``prefix``.

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root).

        Returns
        -------
        list of str
            ``"<prefix><name>/"`` entries, sorted.

        Raises
        ------
        SourceUnavailableError
            When the source cannot be listed.
        """
        ...

    def list_files(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects directly inside the folder ``prefix`` (not recursive).

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root).

        Returns
        -------
        list of ObjectInfo
            Sorted by key.

        Raises
        ------
        SourceUnavailableError
            When the source cannot be listed.
        """
        ...

    def head(self, key: str) -> ObjectInfo:
        """Metadata of one object.

        Parameters
        ----------
        key : str
            Object key.

        Returns
        -------
        ObjectInfo

        Raises
        ------
        DataNotFoundError, AccessDeniedError, SourceUnavailableError, UnsafeKeyError
            For a missing, refused, unreachable or unsafe key.
        """
        ...

    def open(
        self, key: str, start: int = 0, if_match: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Download:
        """Start a download from byte ``start``, guarded by ``If-Match`` when given.

        Parameters
        ----------
        key : str
            Object key.
        start : int
            First byte wanted (``Range: bytes=start-``); 0 for the whole object.
        if_match : str, optional
            ETag the object must still have (ignored by sources without ETags).
        chunk_size : int
            Minimum bytes per yielded chunk.

        Returns
        -------
        Download
            ``status`` is 206 when the range was honoured, 200 for the whole object.

        Raises
        ------
        DataNotFoundError, AccessDeniedError, ObjectChangedError, SourceUnavailableError
            For a missing, refused, changed or unreachable object.
        """
        ...


def _folder_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


# --------------------------------------------------------------------------- S3
def _unquote(etag: str | None) -> str | None:
    if not etag:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"') or None


def _info_from_meta(meta: Any, key: str | None = None) -> ObjectInfo:
    return ObjectInfo(
        key=key if key is not None else str(meta["path"]),
        size=int(meta["size"]),
        etag=_unquote(meta.get("e_tag")),
        last_modified=meta.get("last_modified"),
    )


_UNAVAILABLE_HINTS = (
    "connect", "timed out", "timeout", "reset", "broken pipe", "dns", "error sending request",
    "server error", "service unavailable", "slow down", "incomplete", "unexpected eof",
    "error decoding response body", "hyper",
)
_SERVER_ERROR_RE = re.compile(r"status(?: code)?:? 5\d\d")


_ADVICE = (
    "Check the network connection and the configured source "
    "(`laion-fmri config --source ... --endpoint-url ...`); on a slow link raise "
    f"{ENV_READ_TIMEOUT} (seconds)."
)


def _unavailable_message(full: str, key: str, where: str, timeout: float | None) -> str:
    """Say what went wrong in plain words, what to do, then the original text."""
    if "refused" in full:
        what = "refused the connection"
    elif "timed out" in full or "timeout" in full:
        what = "did not answer" + (f" within {timeout:g} s" if timeout else " in time")
    elif "dns" in full or "resolve" in full or "lookup" in full:
        what = "could not be found (DNS lookup failed)"
    elif _SERVER_ERROR_RE.search(full) or "server error" in full or "unavailable" in full:
        what = "answered with a server error"
    else:
        what = "could not be reached"
    return f"{where} {what} (while fetching {key!r}). {_ADVICE}"


def _map_error(
    exc: BaseException, key: str, where: str, timeout: float | None = None
) -> Exception:
    """Translate an obstore exception into one of ours (naming key and source)."""
    from obstore import exceptions as obx

    text = str(exc).split("\n", 1)[0][:300]
    if isinstance(exc, (obx.NotFoundError, FileNotFoundError)):
        return DataNotFoundError(f"{key!r} does not exist in {where}.")
    if isinstance(exc, (obx.PermissionDeniedError, obx.UnauthenticatedError, PermissionError)):
        return AccessDeniedError(f"Access denied (HTTP 403) for {key!r} in {where}.")
    if isinstance(exc, obx.PreconditionError):
        return ObjectChangedError(f"{key!r} changed in {where} since the transfer started.")
    full = str(exc).lower()
    if ("403" in full and "forbidden" in full) or "accessdenied" in full:
        return AccessDeniedError(f"Access denied (HTTP 403) for {key!r} in {where}.")
    if "412" in full or "precondition" in full:
        return ObjectChangedError(f"{key!r} changed in {where} since the transfer started.")
    if (
        isinstance(exc, (ConnectionError, TimeoutError))
        or any(h in full for h in _UNAVAILABLE_HINTS)
        or _SERVER_ERROR_RE.search(full)
    ):
        return SourceUnavailableError(
            f"{_unavailable_message(full, key, where, timeout)} (Details: {text})"
        )
    return DownloadError(f"Fetching {key!r} from {where} failed: {text}")


class _S3Download:
    def __init__(
        self, result: Any, key: str, start: int, chunk_size: int, where: str,
        timeout: float | None = None,
    ) -> None:
        self._timeout = timeout
        self._result = result
        self._key = key
        self._chunk_size = chunk_size
        self._where = where
        self.info = _info_from_meta(result.meta, key)
        first, _ = result.range
        self.start = int(first)
        self.status = 206 if start > 0 and self.start == start else 200

    def __iter__(self) -> Iterator[bytes]:

        stream = self._result.stream(min_chunk_size=self._chunk_size)
        while True:
            try:
                chunk = next(stream)
            except StopIteration:
                return
            except Exception as exc:
                raise _map_error(exc, self._key, self._where, self._timeout) from exc
            yield memoryview(chunk)  # type: ignore[misc]

    def __enter__(self) -> _S3Download:
        return self

    def __exit__(self, *exc: object) -> None:
        self._result = None


class S3Store:
    """Anonymous S3 bucket (the public LAION-fMRI bucket or any S3 endpoint).

    Parameters
    ----------
    bucket : str
        Bucket name.
    prefix : str
        Key prefix inside the bucket ("" for the root).
    endpoint_url : str, optional
        ``http(s)://host:port`` of an S3-compatible server; AWS when ``None``.
    region : str
        AWS region.

    Examples
    --------
    >>> store = S3Store("laion-fmri")  # doctest: +SKIP
    >>> [o.key for o in store.list("derivatives/glmsingle-tedana/sub-03/")][:1]  # doctest: +SKIP
    """

    def __init__(
        self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
        region: str = "us-west-2",
    ) -> None:
        from obstore.store import S3Store as _ObS3Store

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        if endpoint_url:
            self.url += f" (endpoint {endpoint_url})"
        read_timeout = _timeout_from_env(ENV_READ_TIMEOUT, READ_TIMEOUT)
        self._read_timeout = read_timeout.total_seconds()
        # Listings are small: a stalled server is given up on sooner than a body.
        self._list_timeout = min(read_timeout, LIST_READ_TIMEOUT).total_seconds()
        kwargs: dict[str, Any] = {"region": region, "skip_signature": True}
        client: dict[str, Any] = {
            "connect_timeout": _timeout_from_env(ENV_CONNECT_TIMEOUT, CONNECT_TIMEOUT),
            "read_timeout": read_timeout,
            # The whole-request timeout would cut long transfers; stalls are
            # caught by the read timeout instead.
            "timeout": timedelta(days=1),
            "pool_max_idle_per_host": "64",
        }
        if endpoint_url:
            kwargs["endpoint"] = endpoint_url
            kwargs["virtual_hosted_style_request"] = False
            if endpoint_url.startswith("http://"):
                client["allow_http"] = True
        retry = {
            "max_retries": OBSTORE_MAX_RETRIES,
            "retry_timeout": OBSTORE_RETRY_TIMEOUT,
            "backoff": {"init_backoff": timedelta(milliseconds=100),
                        "max_backoff": timedelta(seconds=2), "base": 2},
        }
        self._store = _ObS3Store(
            bucket, prefix=self.prefix or None, client_options=client,
            retry_config=retry, **kwargs,
        )
        list_client = {**client, "read_timeout": timedelta(seconds=self._list_timeout)}
        list_retry = {**retry, "retry_timeout": min(OBSTORE_RETRY_TIMEOUT, LIST_RETRY_TIMEOUT)}
        self._list_store = _ObS3Store(
            bucket, prefix=self.prefix or None, client_options=list_client,
            retry_config=list_retry, **kwargs,
        )

    def address(self, key: str) -> str:
        """Where one key lives, for messages: ``s3://bucket/key (endpoint URL)``.

        Parameters
        ----------
        key : str
            Object key.

        Returns
        -------
        str

        Examples
        --------
        >>> S3Store("laion-fmri").address("README")  # doctest: +SKIP
        's3://laion-fmri/README'
        """
        path = "/".join(p for p in (self.bucket, self.prefix, key) if p)
        return f"s3://{path}" + (f" (endpoint {self.endpoint_url})" if self.endpoint_url else "")

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Stream every object under the folder ``prefix``, recursively.

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root; a trailing ``/`` is optional).

        Yields
        ------
        ObjectInfo
            One per object, as the source lists them.

        Raises
        ------
        SourceUnavailableError, AccessDeniedError
            When the source cannot be listed.
        """
        import obstore

        folder = _folder_prefix(prefix)
        try:
            stream = obstore.list(self._list_store, folder or None, chunk_size=1000)
            for batch in stream:
                for meta in batch:
                    yield _info_from_meta(meta)
        except Exception as exc:
            raise _map_error(exc, folder or "/", self.url, self._list_timeout) from exc

    def list_dirs(self, prefix: str = "") -> list[str]:
        """Sub-folders of the folder ``prefix``.

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root).

        Returns
        -------
        list of str
            ``"<prefix><name>/"`` entries, sorted.

        Raises
        ------
        SourceUnavailableError
            When the source cannot be listed.
        """
        result = self._list_level(prefix)
        return sorted({p.rstrip("/") + "/" for p in result["common_prefixes"]})

    def list_files(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects directly inside the folder ``prefix`` (not recursive).

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root).

        Returns
        -------
        list of ObjectInfo
            Sorted by key.

        Raises
        ------
        SourceUnavailableError
            When the source cannot be listed.
        """
        result = self._list_level(prefix)
        return sorted((_info_from_meta(m) for m in result["objects"]), key=lambda o: o.key)

    def _list_level(self, prefix: str) -> Any:
        """One delimited (non-recursive) listing of the folder ``prefix``."""
        import obstore

        folder = _folder_prefix(prefix)
        try:
            result = obstore.list_with_delimiter(self._list_store, folder or None)
        except Exception as exc:
            raise _map_error(exc, folder or "/", self.url, self._list_timeout) from exc
        return result

    def head(self, key: str) -> ObjectInfo:
        """Metadata of one object.

        Parameters
        ----------
        key : str
            Object key.

        Returns
        -------
        ObjectInfo

        Raises
        ------
        DataNotFoundError, AccessDeniedError, SourceUnavailableError, UnsafeKeyError
            For a missing, refused, unreachable or unsafe key.
        """
        import obstore

        check_key(key)
        try:
            return _info_from_meta(obstore.head(self._list_store, key), key)
        except Exception as exc:
            raise _map_error(exc, key, self.url, self._list_timeout) from exc

    def open(
        self, key: str, start: int = 0, if_match: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> _S3Download:
        """Start a download from byte ``start``, guarded by ``If-Match`` when given.

        Parameters
        ----------
        key : str
            Object key.
        start : int
            First byte wanted (``Range: bytes=start-``); 0 for the whole object.
        if_match : str, optional
            ETag the object must still have (ignored by sources without ETags).
        chunk_size : int
            Minimum bytes per yielded chunk.

        Returns
        -------
        Download
            ``status`` is 206 when the range was honoured, 200 for the whole object.

        Raises
        ------
        DataNotFoundError, AccessDeniedError, ObjectChangedError, SourceUnavailableError
            For a missing, refused, changed or unreachable object.
        """
        import obstore

        check_key(key)
        options: dict[str, Any] = {}
        if start > 0:
            options["range"] = {"offset": int(start)}
        if if_match:
            options["if_match"] = f'"{if_match}"'
        try:
            result = obstore.get(self._store, key, options=options or None)
        except Exception as exc:
            if start > 0 and "non-partial response" in str(exc).lower():
                # The server ignored Range and answered 200 with the whole
                # object: fetch it from byte 0 (the caller sees status 200).
                return self.open(key, 0, if_match, chunk_size)
            raise _map_error(exc, key, self.url, self._read_timeout) from exc
        return _S3Download(result, key, start, chunk_size, self.url, self._read_timeout)


# --------------------------------------------------------------------------- local folder
class _LocalDownload:
    def __init__(self, path: Path, info: ObjectInfo, start: int, chunk_size: int) -> None:
        self.info = info
        self.start = start if 0 < start <= info.size else 0
        self.status = 206 if self.start else 200
        self._path = path
        self._chunk_size = chunk_size
        self._fh: Any = None

    def __iter__(self) -> Iterator[bytes]:
        with open(self._path, "rb") as fh:
            fh.seek(self.start)
            while chunk := fh.read(self._chunk_size):
                yield chunk

    def __enter__(self) -> _LocalDownload:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _stat_info(key: str, st: os.stat_result) -> ObjectInfo:
    """``ObjectInfo`` of a local file (no ETag: local sources have none)."""
    return ObjectInfo(key, st.st_size, None, datetime.fromtimestamp(st.st_mtime, UTC))


class LocalStore:
    """A local folder holding the bucket's key layout (mirror, sample dataset).

    ETags are ``None``; sizes come from ``stat``. Keys that would resolve
    outside the folder (``..``, absolute paths, symlinks pointing out) are refused.

    Parameters
    ----------
    root : str or Path
        The folder.

    Examples
    --------
    >>> store = LocalStore("/data/laion_fmri")  # doctest: +SKIP
    >>> store.head("participants.tsv").size  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.url = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    def address(self, key: str) -> str:
        """Where one key lives, for messages (the file path).

        Parameters
        ----------
        key : str
            Object key.

        Returns
        -------
        str

        Examples
        --------
        >>> LocalStore("/data").address("README")
        '/data/README'
        """
        return str(self.root / key)

    def _path(self, key: str) -> Path:
        check_key(key)
        root = self.root.resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise UnsafeKeyError(f"Refusing key {key!r}: it resolves outside {root}.")
        return path

    def _info(self, key: str, path: Path) -> ObjectInfo:
        return _stat_info(key, path.stat())

    def _level(self, prefix: str) -> tuple[str, Path]:
        """The folder key of ``prefix`` and its directory (for one-level listings)."""
        self._require_root()
        folder = _folder_prefix(prefix)
        return folder, self._path(folder.rstrip("/")) if folder else self.root

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise SourceUnavailableError(
                f"The local source folder {self.root} does not exist; check "
                "LAION_FMRI_SOURCE or `laion-fmri config --source`."
            )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Stream every object under the folder ``prefix``, recursively.

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root; a trailing ``/`` is optional).

        Yields
        ------
        ObjectInfo
            One per object, as the source lists them.

        Raises
        ------
        SourceUnavailableError, AccessDeniedError
            When the source cannot be listed.
        """
        self._require_root()
        folder = _folder_prefix(prefix)
        start = self.root / folder if folder else self.root
        if folder:
            check_key(folder.rstrip("/"))
        if not start.is_dir():
            return
        yield from self._walk(start, folder)

    def _walk(self, base: Path, rel: str) -> Iterator[ObjectInfo]:
        """Files under ``base`` in key order (as S3 lists them), skipping state and .part."""
        with os.scandir(base) as it:
            # A folder sorts as "name/" so the order equals the full keys' order.
            entries = sorted(it, key=lambda e: e.name + ("/" if e.is_dir(follow_symlinks=False) else ""))
        for entry in entries:
            if not rel and entry.name == STATE_DIRNAME:
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), f"{rel}{entry.name}/")
            elif entry.is_file(follow_symlinks=False) and not entry.name.endswith(".part"):
                yield _stat_info(f"{rel}{entry.name}", entry.stat(follow_symlinks=False))

    def list_dirs(self, prefix: str = "") -> list[str]:
        """Sub-folders of the folder ``prefix``.

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root).

        Returns
        -------
        list of str
            ``"<prefix><name>/"`` entries, sorted.

        Raises
        ------
        SourceUnavailableError
            When the source cannot be listed.
        """
        folder, base = self._level(prefix)
        if not base.is_dir():
            return []
        return sorted(
            f"{folder}{e.name}/" for e in os.scandir(base)
            if e.is_dir(follow_symlinks=False) and not (not folder and e.name == STATE_DIRNAME)
        )

    def list_files(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects directly inside the folder ``prefix`` (not recursive).

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root).

        Returns
        -------
        list of ObjectInfo
            Sorted by key.

        Raises
        ------
        SourceUnavailableError
            When the source cannot be listed.
        """
        folder, base = self._level(prefix)
        if not base.is_dir():
            return []
        out = []
        for e in os.scandir(base):
            if e.is_file(follow_symlinks=False) and not e.name.endswith(".part"):
                out.append(_stat_info(f"{folder}{e.name}", e.stat(follow_symlinks=False)))
        return sorted(out, key=lambda o: o.key)

    def head(self, key: str) -> ObjectInfo:
        """Metadata of one object.

        Parameters
        ----------
        key : str
            Object key.

        Returns
        -------
        ObjectInfo

        Raises
        ------
        DataNotFoundError, AccessDeniedError, SourceUnavailableError, UnsafeKeyError
            For a missing, refused, unreachable or unsafe key.
        """
        self._require_root()
        path = self._path(key)
        if not path.is_file():
            raise DataNotFoundError(f"{key!r} does not exist in {self.url}.")
        return self._info(key, path)

    def open(
        self, key: str, start: int = 0, if_match: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> _LocalDownload:
        """Start a download from byte ``start``, guarded by ``If-Match`` when given.

        Parameters
        ----------
        key : str
            Object key.
        start : int
            First byte wanted (``Range: bytes=start-``); 0 for the whole object.
        if_match : str, optional
            ETag the object must still have (ignored by sources without ETags).
        chunk_size : int
            Minimum bytes per yielded chunk.

        Returns
        -------
        Download
            ``status`` is 206 when the range was honoured, 200 for the whole object.

        Raises
        ------
        DataNotFoundError, AccessDeniedError, ObjectChangedError, SourceUnavailableError
            For a missing, refused, changed or unreachable object.
        """
        info = self.head(key)
        return _LocalDownload(self._path(key), info, start, chunk_size)


# --------------------------------------------------------------------------- factory
_LOCK = threading.Lock()


def _timeout_from_env(name: str, default: timedelta) -> timedelta:
    """A timeout from env ``name`` (seconds, > 0), else ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds > 86_400:
        raise ConfigError(f"{name}={raw!r} must be a number of seconds between 0 and 86400.")
    return timedelta(seconds=seconds)


@functools.lru_cache(maxsize=8)
def _s3_store(
    bucket: str, prefix: str, endpoint_url: str | None, region: str, timeouts: tuple[str, str]
) -> S3Store:
    # ``timeouts`` is part of the cache key so a changed env gives a new client.
    return S3Store(bucket, prefix=prefix, endpoint_url=endpoint_url, region=region)


def open_store(source: Source | str | None = None) -> S3Store | LocalStore:
    """Return the store for a source (the configured one when ``None``).

    S3 stores are cached, so the whole process shares one client and one
    connection pool per configuration.

    Parameters
    ----------
    source : Source or str, optional
        A parsed :class:`~laion_fmri.config.Source`, a source string
        (``s3://bucket``, ``file:///dir``, a folder) or ``None`` for the
        configured source (env ``LAION_FMRI_SOURCE``, config file, the public bucket).

    Returns
    -------
    S3Store or LocalStore

    Raises
    ------
    ConfigError
        If the source string is malformed.

    Examples
    --------
    >>> open_store("/tmp").url
    '/tmp'
    """
    if source is None:
        source = get_source()
    elif isinstance(source, str):
        source = parse_source(source, get_source().endpoint_url)
    if source.kind == "local":
        assert source.path is not None
        return LocalStore(source.path)
    assert source.bucket is not None
    with _LOCK:
        timeouts = (os.environ.get(ENV_CONNECT_TIMEOUT, ""), os.environ.get(ENV_READ_TIMEOUT, ""))
        return _s3_store(source.bucket, source.prefix, source.endpoint_url, source.region, timeouts)


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Download",
    "LocalStore",
    "ObjectInfo",
    "S3Store",
    "Store",
    "open_store",
]
