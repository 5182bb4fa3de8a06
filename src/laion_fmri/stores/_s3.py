"""An anonymous S3 bucket (the public LAION-fMRI bucket or any S3 endpoint).

Listings go through obstore (paged, retried in Rust). Object bodies and HEADs
go through one ``urllib3`` connection pool: ranged GETs with ``If-Match`` and
``x-amz-checksum-mode: ENABLED``, so the transfer engine sees every response
header it verifies against (ETag, ``Content-Range``, ``x-amz-checksum-*``),
which obstore does not expose.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from laion_fmri.errors import (
    AccessDeniedError,
    DataNotFoundError,
    DownloadError,
    ObjectChangedError,
    SourceUnavailableError,
)
from laion_fmri.layout import check_key
from laion_fmri.stores.base import (
    DEFAULT_CHUNK_SIZE,
    ObjectInfo,
    checksum_from_headers,
    folder_prefix,
    parse_content_range,
    range_header,
    redact,
    unquote_etag,
)

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
#: Connections kept open per host (the engine's budget decides how many are used).
POOL_SIZE = 64

_UNAVAILABLE_HINTS = (
    "connect", "timed out", "timeout", "reset", "broken pipe", "dns", "error sending request",
    "server error", "service unavailable", "slow down", "incomplete", "unexpected eof",
    "error decoding response body", "hyper", "protocol", "connection aborted",
    "remote end closed", "read error",
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
    elif "dns" in full or "resolve" in full or "lookup" in full or "name or service" in full:
        what = "could not be found (DNS lookup failed)"
    elif _SERVER_ERROR_RE.search(full) or "server error" in full or "unavailable" in full:
        what = "answered with a server error"
    else:
        what = "could not be reached"
    return f"{where} {what} (while fetching {key!r}). {_ADVICE}"


def map_error(exc: BaseException, key: str, where: str, timeout: float | None = None) -> Exception:
    """Translate an obstore, urllib3 or OS exception into one of ours (naming key and source).

    Parameters
    ----------
    exc : BaseException
        The exception raised by the client library.
    key : str
        The key (or prefix) being fetched.
    where : str
        The source, for the message.
    timeout : float, optional
        The read timeout in force, for the message.

    Returns
    -------
    Exception
        One of the package's errors.

    Examples
    --------
    >>> type(map_error(TimeoutError("timed out"), "k", "s3://b")).__name__
    'SourceUnavailableError'
    """
    text = redact(str(exc).split("\n", 1)[0])[:300]
    try:
        from obstore import exceptions as obx
    except ImportError:  # pragma: no cover - obstore is a core dependency
        obx = None
    if isinstance(exc, FileNotFoundError) or (obx and isinstance(exc, obx.NotFoundError)):
        return DataNotFoundError(f"{key!r} does not exist in {where}.")
    if isinstance(exc, PermissionError) or (
        obx and isinstance(exc, (obx.PermissionDeniedError, obx.UnauthenticatedError))
    ):
        return AccessDeniedError(f"Access denied (HTTP 403) for {key!r} in {where}.")
    if obx and isinstance(exc, obx.PreconditionError):
        return ObjectChangedError(f"{key!r} changed in {where} since the transfer started.")
    full = str(exc).lower()
    if ("403" in full and "forbidden" in full) or "accessdenied" in full:
        return AccessDeniedError(f"Access denied (HTTP 403) for {key!r} in {where}.")
    if "412" in full or "precondition" in full:
        return ObjectChangedError(f"{key!r} changed in {where} since the transfer started.")
    try:
        import urllib3

        transport = isinstance(exc, urllib3.exceptions.HTTPError)
    except ImportError:  # pragma: no cover
        transport = False
    if (
        transport
        or isinstance(exc, (ConnectionError, TimeoutError, OSError))
        or any(h in full for h in _UNAVAILABLE_HINTS)
        or _SERVER_ERROR_RE.search(full)
    ):
        return SourceUnavailableError(
            f"{_unavailable_message(full, key, where, timeout)} (Details: {text})"
        )
    return DownloadError(f"Fetching {key!r} from {where} failed: {text}")


def status_error(status: int, body: bytes, key: str, where: str) -> Exception:
    """The error for a non-2xx HTTP answer (403, 404, 412, 5xx ...).

    Parameters
    ----------
    status : int
        HTTP status.
    body : bytes
        The start of the error body (S3 XML), for its error code.
    key : str
        The key.
    where : str
        The source, for the message.

    Returns
    -------
    Exception

    Examples
    --------
    >>> type(status_error(404, b"", "k", "s3://b")).__name__
    'DataNotFoundError'
    """
    code = re.search(rb"<Code>([^<]{1,64})</Code>", body)
    detail = code.group(1).decode("ascii", "replace") if code else f"HTTP {status}"
    if status in (401, 403):
        return AccessDeniedError(f"Access denied (HTTP 403) for {key!r} in {where}.")
    if status == 404:
        return DataNotFoundError(f"{key!r} does not exist in {where}.")
    if status == 412:
        return ObjectChangedError(f"{key!r} changed in {where} since the transfer started.")
    if status >= 500 or status in (408, 429):
        return SourceUnavailableError(
            f"{where} answered with a server error (HTTP {status} {detail}) while fetching "
            f"{key!r}. {_ADVICE}"
        )
    return DownloadError(f"Fetching {key!r} from {where} failed: HTTP {status} {detail}.")


def _info_from_meta(meta: Any, key: str | None = None) -> ObjectInfo:
    return ObjectInfo(
        key=key if key is not None else str(meta["path"]),
        size=int(meta["size"]),
        etag=unquote_etag(meta.get("e_tag")),
        last_modified=meta.get("last_modified"),
    )


def _last_modified(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        stamp = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


class _HTTPBody:
    """The body of one (possibly ranged) GET: iterate for chunks."""

    def __init__(
        self, response: Any, info: ObjectInfo, start: int, end: int, status: int,
        chunk_size: int, key: str, where: str, timeout: float | None,
    ) -> None:
        self.info = info
        self.start = start
        self.end = end
        self.status = status
        self._response = response
        self._chunk_size = chunk_size
        self._key = key
        self._where = where
        self._timeout = timeout
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        left = self.end - self.start
        while left > 0:
            try:
                chunk = self._response.read(min(self._chunk_size, left))
            except Exception as exc:
                raise map_error(exc, self._key, self._where, self._timeout) from exc
            if not chunk:
                raise SourceUnavailableError(
                    f"{self._where} ended the response early while fetching {self._key!r} "
                    f"({self.end - self.start - left} of {self.end - self.start} bytes). {_ADVICE}"
                )
            left -= len(chunk)
            yield chunk
        self._complete = True

    def __enter__(self) -> _HTTPBody:
        return self

    def __exit__(self, *exc: object) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        if self._complete:
            response.release_conn()
        else:  # never hand a half-read connection back to the pool
            response.close()


def http_get(
    pool: Any, url: str, key: str, where: str, *, start: int = 0, end: int | None = None,
    if_match: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float | None = None, extra_headers: dict[str, str] | None = None,
    method: str = "GET",
) -> _HTTPBody:
    """One GET (or HEAD) through a ``urllib3`` pool, its status and headers checked.

    Parameters
    ----------
    pool : urllib3.PoolManager
        The connection pool.
    url : str
        Full URL.
    key : str
        The key, for messages.
    where : str
        The source, for messages (never the signed URL).
    start, end : int
        Byte range ``[start, end)``; ``end=None`` to the end of the object.
    if_match : str, optional
        ETag the object must still have.
    chunk_size : int
        Bytes per yielded chunk.
    timeout : float, optional
        Read timeout in force (for messages).
    extra_headers : dict, optional
        More request headers.
    method : str
        ``GET`` or ``HEAD``.

    Returns
    -------
    Download
        ``info.size`` is the whole object's size.

    Raises
    ------
    DataNotFoundError, AccessDeniedError, ObjectChangedError, SourceUnavailableError, DownloadError
        For a missing, refused, changed or unreachable object, or an answer that
        does not describe the requested bytes.
    """
    headers = {"Accept-Encoding": "identity", **(extra_headers or {})}
    wanted = range_header(start, end)
    if wanted and method == "GET":
        headers["Range"] = wanted
    if if_match:
        headers["If-Match"] = f'"{if_match}"'
    try:
        response = pool.request(method, url, headers=headers, preload_content=False,
                                decode_content=False, redirect=False, retries=False)
    except Exception as exc:
        raise map_error(exc, key, where, timeout) from exc
    status = response.status
    if status >= 300:
        try:
            body = response.read(65536) if method == "GET" else b""
        except Exception:
            body = b""
        response.close()
        raise status_error(status, body, key, where)
    etag = unquote_etag(response.headers.get("ETag"))
    checksum = checksum_from_headers(response.headers)
    modified = _last_modified(response.headers.get("Last-Modified"))
    length = response.headers.get("Content-Length")
    if status == 206:
        parsed = parse_content_range(response.headers.get("Content-Range"))
        if parsed is None or parsed[0] != start or parsed[2] is None:
            response.close()
            raise SourceUnavailableError(
                f"{where} answered a range request for {key!r} with an unusable "
                f"Content-Range {response.headers.get('Content-Range')!r}. {_ADVICE}"
            )
        first, last, total = parsed
        info = ObjectInfo(key, int(total), etag, modified, None, None)
        return _HTTPBody(response, info, first, last, 206, chunk_size, key, where, timeout)
    if length is None or not str(length).isdigit():
        response.close()
        raise SourceUnavailableError(f"{where} sent no Content-Length for {key!r}. {_ADVICE}")
    size = int(length)
    info = ObjectInfo(key, size, etag, modified, None, checksum)
    if method == "HEAD":
        response.close()
        return _HTTPBody(None, info, 0, 0, status, chunk_size, key, where, timeout)
    # 200: the whole object (the server ignored Range, or none was asked for).
    return _HTTPBody(response, info, 0, size, 200, chunk_size, key, where, timeout)


def make_pool(connect: float, read: float, maxsize: int = POOL_SIZE) -> Any:
    """A ``urllib3`` pool for object bodies: no automatic retries or redirects.

    Parameters
    ----------
    connect, read : float
        Timeouts in seconds.
    maxsize : int
        Connections kept per host.

    Returns
    -------
    urllib3.PoolManager
    """
    import urllib3

    return urllib3.PoolManager(
        num_pools=8, maxsize=maxsize, block=False, retries=False,
        timeout=urllib3.Timeout(connect=connect, read=read),
    )


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

        from laion_fmri.stores import _timeout_from_env

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        if endpoint_url:
            self.url += f" (endpoint {endpoint_url})"
        connect_timeout = _timeout_from_env(ENV_CONNECT_TIMEOUT, CONNECT_TIMEOUT)
        read_timeout = _timeout_from_env(ENV_READ_TIMEOUT, READ_TIMEOUT)
        self._read_timeout = read_timeout.total_seconds()
        # Listings are small: a stalled server is given up on sooner than a body.
        self._list_timeout = min(read_timeout, LIST_READ_TIMEOUT).total_seconds()
        if endpoint_url:
            self._base = f"{endpoint_url.rstrip('/')}/{urllib.parse.quote(bucket)}/"
        elif "." in bucket:
            self._base = f"https://s3.{region}.amazonaws.com/{urllib.parse.quote(bucket)}/"
        else:
            self._base = f"https://{bucket}.s3.{region}.amazonaws.com/"
        if self.prefix:
            self._base += urllib.parse.quote(self.prefix) + "/"
        self._pool = make_pool(connect_timeout.total_seconds(), self._read_timeout)
        self._head_pool = make_pool(connect_timeout.total_seconds(), self._list_timeout)
        kwargs: dict[str, Any] = {"region": region, "skip_signature": True}
        client: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "read_timeout": timedelta(seconds=self._list_timeout),
            "timeout": timedelta(days=1),
            "pool_max_idle_per_host": "16",
        }
        if endpoint_url:
            kwargs["endpoint"] = endpoint_url
            kwargs["virtual_hosted_style_request"] = False
            if endpoint_url.startswith("http://"):
                client["allow_http"] = True
        retry = {
            "max_retries": OBSTORE_MAX_RETRIES,
            "retry_timeout": min(OBSTORE_RETRY_TIMEOUT, LIST_RETRY_TIMEOUT),
            "backoff": {"init_backoff": timedelta(milliseconds=100),
                        "max_backoff": timedelta(seconds=2), "base": 2},
        }
        self._list_store = _ObS3Store(
            bucket, prefix=self.prefix or None, client_options=client,
            retry_config=retry, **kwargs,
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

    def _object_url(self, key: str) -> str:
        return self._base + urllib.parse.quote(check_key(key), safe="/-_.~")

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

        folder = folder_prefix(prefix)
        last = ""
        try:
            stream = obstore.list(self._list_store, folder or None, chunk_size=1000)
            for batch in stream:
                for meta in batch:
                    info = _info_from_meta(meta)
                    last = info.key
                    yield info
        except Exception as exc:
            error = map_error(exc, folder or "/", self.url, self._list_timeout)
            if isinstance(error, (SourceUnavailableError, AccessDeniedError, DataNotFoundError)):
                raise error from exc
            # The client library rejected a page (e.g. a key that XML cannot carry):
            # list the rest ourselves, URL-encoded and tolerant, so one hostile key
            # fails alone later instead of blocking the whole prefix.
            yield from self._list_tolerant(folder, last)

    def _list_tolerant(self, folder: str, after: str) -> Iterator[ObjectInfo]:
        """ListObjectsV2 with ``encoding-type=url``, parsed entry by entry (skipping bad ones)."""
        full_prefix = (self.prefix + "/" if self.prefix else "") + folder
        strip = len(self.prefix) + 1 if self.prefix else 0
        bucket_url = self._base[: len(self._base) - len(urllib.parse.quote(self.prefix) + "/")] \
            if self.prefix else self._base
        token: str | None = None
        start_after = (self.prefix + "/" + after) if (after and self.prefix) else after
        while True:
            query = {"list-type": "2", "prefix": full_prefix, "encoding-type": "url"}
            if token:
                query["continuation-token"] = token
            elif start_after:
                query["start-after"] = start_after
            url = bucket_url + "?" + urllib.parse.urlencode(query)
            try:
                response = self._head_pool.request("GET", url, redirect=False, retries=False)
            except Exception as exc:
                raise map_error(exc, folder or "/", self.url, self._list_timeout) from exc
            if response.status != 200:
                raise status_error(response.status, response.data[:65536], folder or "/", self.url)
            text = response.data.decode("utf-8", "replace")
            for block in re.findall(r"<Contents>(.*?)</Contents>", text, re.S):
                key = re.search(r"<Key>(.*?)</Key>", block, re.S)
                size = re.search(r"<Size>(\d+)</Size>", block)
                if not key or not size:
                    continue
                name = urllib.parse.unquote(html.unescape(key.group(1)))
                etag = re.search(r"<ETag>(.*?)</ETag>", block, re.S)
                yield ObjectInfo(name[strip:], int(size.group(1)),
                                 unquote_etag(html.unescape(etag.group(1))) if etag else None, None)
            more = re.search(r"<IsTruncated>\s*true\s*</IsTruncated>", text)
            nxt = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", text, re.S)
            if not more or not nxt:
                return
            token = html.unescape(nxt.group(1))

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

        folder = folder_prefix(prefix)
        try:
            result = obstore.list_with_delimiter(self._list_store, folder or None)
        except Exception as exc:
            raise map_error(exc, folder or "/", self.url, self._list_timeout) from exc
        return result

    def head(self, key: str) -> ObjectInfo:
        """Metadata of one object (with a full-object checksum when the source has one).

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
        result = http_get(
            self._head_pool, self._object_url(key), key, self.url, method="HEAD",
            timeout=self._list_timeout, extra_headers={"x-amz-checksum-mode": "ENABLED"},
        )
        return result.info

    def open(
        self, key: str, start: int = 0, if_match: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE, end: int | None = None,
    ) -> _HTTPBody:
        """Start a download of bytes ``[start, end)``, guarded by ``If-Match`` when given.

        Parameters
        ----------
        key : str
            Object key.
        start : int
            First byte wanted; 0 (with ``end=None``) for the whole object.
        if_match : str, optional
            ETag the object must still have (ignored by sources without ETags).
        chunk_size : int
            Minimum bytes per yielded chunk.
        end : int, optional
            Offset after the last byte wanted (``None``: to the end of the object).

        Returns
        -------
        Download
            ``status`` is 206 when the range was honoured, 200 for the whole object.

        Raises
        ------
        DataNotFoundError, AccessDeniedError, ObjectChangedError, SourceUnavailableError
            For a missing, refused, changed or unreachable object.
        """
        return http_get(
            self._pool, self._object_url(key), key, self.url, start=start, end=end,
            if_match=if_match, chunk_size=chunk_size, timeout=self._read_timeout,
            extra_headers={"x-amz-checksum-mode": "ENABLED"},
        )


__all__ = ["S3Store", "http_get", "make_pool", "map_error", "status_error"]
