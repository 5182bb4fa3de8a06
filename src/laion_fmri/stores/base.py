"""The seam between the transfer engine and a data source: :class:`Store`.

Every source (the public S3 bucket, a local folder, presigned URLs from the
access service, or anything a caller writes) implements the same small
interface, keyed by the bucket-relative key (``/``-separated) that
:mod:`laion_fmri.layout` builds:

* :meth:`Store.list` streams every object under a folder prefix (an iterator,
  so 100,000 keys never sit in one list);
* :meth:`Store.list_dirs` / :meth:`Store.list_files` list one folder level;
* :meth:`Store.head` returns one object's :class:`ObjectInfo`;
* :meth:`Store.open` starts a download of the whole object or of a byte range
  ``[start, end)``, guarded by ``If-Match``, and returns a :class:`Download`.

Errors are mapped to ours: HTTP 403 -> :class:`~laion_fmri.errors.AccessDeniedError`,
404 -> :class:`~laion_fmri.errors.DataNotFoundError`, a failed ``If-Match`` ->
:class:`~laion_fmri.errors.ObjectChangedError`, connection failures, timeouts
and 5xx -> :class:`~laion_fmri.errors.SourceUnavailableError` (the transfer
engine retries those with backoff).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

#: Bytes per chunk handed to the caller by :meth:`Download.__iter__`.
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Full-object checksum algorithms S3 can return (``x-amz-checksum-<name>``),
#: strongest first; all are verified with a native implementation.
CHECKSUM_ALGORITHMS: tuple[str, ...] = ("crc64nvme", "sha256", "crc32c", "crc32")

_MULTIPART_ETAG_RE = re.compile(r"^([0-9a-f]{32})-([1-9][0-9]{0,4})$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")


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
    checksum : tuple of (str, str), optional
        A full-object checksum the server returned: ``(algorithm, base64 value)``
        with ``algorithm`` one of :data:`CHECKSUM_ALGORITHMS`.

    Examples
    --------
    >>> ObjectInfo("README", 12, None, None).size
    12
    >>> ObjectInfo("x", 20, "0123456789abcdef0123456789abcdef-3", None).multipart_parts
    3
    """

    key: str
    size: int
    etag: str | None
    last_modified: datetime | None
    sha256: str | None = None
    checksum: tuple[str, str] | None = None

    @property
    def md5(self) -> str | None:
        """The MD5 the ETag encodes, or ``None`` (multipart or opaque ETags).

        A single-part S3 upload's ETag is the hex MD5 of the body; multipart
        ETags end in ``-N`` and hash the parts' MD5s instead.
        """
        etag = (self.etag or "").lower()
        return etag if _MD5_RE.match(etag) else None

    @property
    def multipart_parts(self) -> int | None:
        """``N`` of a multipart ETag ``<md5 of part md5s>-N``, else ``None``."""
        match = _MULTIPART_ETAG_RE.match((self.etag or "").lower())
        return int(match.group(2)) if match else None

    @property
    def multipart_digest(self) -> str | None:
        """The hex MD5-of-part-MD5s of a multipart ETag, else ``None``."""
        match = _MULTIPART_ETAG_RE.match((self.etag or "").lower())
        return match.group(1) if match else None


class Download(Protocol):
    """An open download: iterate for the byte chunks; use as a context manager.

    ``info`` describes the whole object (its full size, ETag and any
    full-object checksum the server sent); ``start``/``end`` the bytes this
    download yields.

    Examples
    --------
    >>> with open_store().open("README") as dl:  # doctest: +SKIP
    ...     body = b"".join(dl)
    """

    info: ObjectInfo
    status: int  # 200 for the whole object, 206 when the requested range was honoured
    start: int  # offset of the first byte this download yields
    end: int  # offset after the last byte this download yields

    def __iter__(self) -> Iterator[bytes]: ...

    def __enter__(self) -> Download: ...

    def __exit__(self, *exc: object) -> None: ...


class Store(Protocol):
    """The interface every data source implements (S3, local folder, presigned URLs).

    Examples
    --------
    >>> from laion_fmri.stores import open_store
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
        ...

    def open(
        self, key: str, start: int = 0, if_match: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE, end: int | None = None,
    ) -> Download:
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
        ...


def folder_prefix(prefix: str) -> str:
    """``"a/b/"`` for ``"a/b"``, ``"/a/b/"`` or ``"a/b/"``; ``""`` for the root.

    Parameters
    ----------
    prefix : str
        A folder key.

    Returns
    -------
    str

    Examples
    --------
    >>> folder_prefix("/a/b")
    'a/b/'
    """
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def range_header(start: int, end: int | None) -> str | None:
    """The HTTP ``Range`` header for bytes ``[start, end)``, ``None`` for the whole object.

    Parameters
    ----------
    start : int
        First byte.
    end : int, optional
        Offset after the last byte (``None``: to the end).

    Returns
    -------
    str or None

    Examples
    --------
    >>> range_header(0, 10)
    'bytes=0-9'
    >>> range_header(5, None)
    'bytes=5-'
    """
    if end is None:
        return f"bytes={start}-" if start > 0 else None
    return f"bytes={start}-{end - 1}"


_QUERY_RE = re.compile(r"(https?://[^\s?#'\"<>]+)\?[^\s'\"<>]*", re.IGNORECASE)
_SIGNATURE_RE = re.compile(r"(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s'\"<>]*",
                           re.IGNORECASE)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses.

    Parameters
    ----------
    host : str
        Host name or address (IPv6 without brackets).

    Returns
    -------
    bool

    Examples
    --------
    >>> is_loopback_host("127.0.0.1"), is_loopback_host("example.org")
    (True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact(text: str) -> str:
    """``text`` with every URL query string (signatures, credentials) removed.

    Parameters
    ----------
    text : str
        A message that may contain URLs.

    Returns
    -------
    str

    Examples
    --------
    >>> redact("GET https://b.s3.amazonaws.com/k?X-Amz-Signature=abc failed")
    'GET https://b.s3.amazonaws.com/k?<redacted> failed'
    """
    return _SIGNATURE_RE.sub(r"\1<redacted>", _QUERY_RE.sub(r"\1?<redacted>", text))


_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``(start, end_exclusive, total)`` of a ``Content-Range`` header, ``None`` if malformed.

    Parameters
    ----------
    value : str or None
        Header value such as ``"bytes 0-9/100"``.

    Returns
    -------
    tuple or None

    Examples
    --------
    >>> parse_content_range("bytes 0-9/100")
    (0, 10, 100)
    """
    match = _CONTENT_RANGE_RE.match((value or "").strip())
    if not match:
        return None
    first, last, total = match.groups()
    return int(first), int(last) + 1, None if total == "*" else int(total)


def unquote_etag(etag: str | None) -> str | None:
    """An ETag without its quotes and weak marker (``None`` when empty).

    Parameters
    ----------
    etag : str or None
        Header value.

    Returns
    -------
    str or None

    Examples
    --------
    >>> unquote_etag('W/"abc"')
    'abc'
    """
    if not etag:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"') or None


def checksum_from_headers(headers: object) -> tuple[str, str] | None:
    """The strongest full-object ``x-amz-checksum-*`` of a response, if any.

    Composite checksums (a value ending in ``-N``, or
    ``x-amz-checksum-type: COMPOSITE``) describe parts, not the object: ignored.

    Parameters
    ----------
    headers : mapping
        Response headers (case-insensitive ``get``).

    Returns
    -------
    tuple of (str, str) or None
        ``(algorithm, base64 value)``.

    Examples
    --------
    >>> checksum_from_headers({"x-amz-checksum-crc32": "AAAAAA=="})
    ('crc32', 'AAAAAA==')
    """
    get = getattr(headers, "get", None)
    if get is None:
        return None
    if str(get("x-amz-checksum-type") or "").upper() == "COMPOSITE":
        return None
    for name in CHECKSUM_ALGORITHMS:
        value = get(f"x-amz-checksum-{name}")
        if value and "-" not in str(value):
            return name, str(value).strip()
    return None



_C = TypeVar("_C")


def documented_by(protocol: type) -> Callable[[_C], _C]:
    """Class decorator: methods without a docstring take the protocol's (written once there).

    Parameters
    ----------
    protocol : type
        The protocol whose method docstrings the implementation shares.

    Returns
    -------
    callable
        The decorator; it returns the class itself.

    Examples
    --------
    >>> @documented_by(Store)
    ... class Tiny:
    ...     def head(self, key): ...
    >>> Tiny.head.__doc__ == Store.head.__doc__
    True
    """

    def decorate(cls: _C) -> _C:
        for name, member in vars(protocol).items():
            impl = vars(cls).get(name)
            if callable(impl) and not impl.__doc__ and getattr(member, "__doc__", None):
                impl.__doc__ = member.__doc__
        return cls

    return decorate


__all__ = [
    "CHECKSUM_ALGORITHMS",
    "DEFAULT_CHUNK_SIZE",
    "Download",
    "ObjectInfo",
    "Store",
    "checksum_from_headers",
    "documented_by",
    "folder_prefix",
    "is_loopback_host",
    "parse_content_range",
    "range_header",
    "redact",
    "unquote_etag",
]
