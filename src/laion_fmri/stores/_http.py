"""HTTP for the stores: one ``urllib3`` pool, ranged GETs, and mapping failures to our errors.

Shared by :class:`~laion_fmri.stores.S3Store` and the presigned-URL store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from laion_fmri.errors import (
    AccessDeniedError,
    DataNotFoundError,
    DownloadError,
    ObjectChangedError,
    SourceUnavailableError,
)
from laion_fmri.stores.base import (
    DEFAULT_CHUNK_SIZE,
    ObjectInfo,
    checksum_from_headers,
    parse_content_range,
    range_header,
    redact,
    unquote_etag,
)

#: Environment overrides (seconds) for slow links or tests.
ENV_CONNECT_TIMEOUT = "LAION_FMRI_CONNECT_TIMEOUT"
ENV_READ_TIMEOUT = "LAION_FMRI_READ_TIMEOUT"
#: Connections kept open per host (the engine's budget decides how many are used).
POOL_SIZE = 64

_UNAVAILABLE_HINTS = (
    "connect", "timed out", "timeout", "reset", "broken pipe", "dns", "error sending request",
    "server error", "service unavailable", "slow down", "incomplete", "unexpected eof",
    "error decoding response body", "hyper", "protocol", "connection aborted",
    "remote end closed", "read error",
)
#: HTTP 412 as a status, not as digits inside a number ("in 315.41293ms").
_PRECONDITION_RE = re.compile(r"(?<![\d.])412(?![\d.])")
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
    if _PRECONDITION_RE.search(full) or "precondition" in full:
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


__all__ = [
    "ENV_CONNECT_TIMEOUT",
    "ENV_READ_TIMEOUT",
    "POOL_SIZE",
    "http_get",
    "make_pool",
    "map_error",
    "status_error",
]
