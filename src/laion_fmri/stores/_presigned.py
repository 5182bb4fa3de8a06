"""Presigned URLs from the stimulus access service, as a read-only :class:`Store`.

Only ``https`` URLs (and ``http`` to a loopback address, for tests) are
opened; redirects are refused; signed query strings never appear in a
message (:func:`redact`).
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from laion_fmri.errors import AccessDeniedError, AccessServiceError, DataNotFoundError, DownloadError
from laion_fmri.stores._http import http_get, make_pool
from laion_fmri.stores.base import (
    DEFAULT_CHUNK_SIZE,
    ObjectInfo,
    Store,
    documented_by,
    folder_prefix,
    is_loopback_host,
    redact,
)

if TYPE_CHECKING:
    # The access client's types, named for readers only: importing laion_fmri.access here
    # would make a cycle (access uses this store).
    AccessClient = Manifest = RemoteFile = Any

HTTP_TIMEOUT = 60.0
def check_url(url: str, what: str) -> str:
    """Refuse anything but ``https://`` (or ``http://`` to loopback); return ``url``.

    Parameters
    ----------
    url : str
        The URL a server handed us.
    what : str
        What it is for, for the message.

    Returns
    -------
    str

    Raises
    ------
    AccessServiceError
        For another scheme (``file:``, ``ftp:`` ...), plain http to another host,
        or a URL without a host.

    Examples
    --------
    >>> check_url("https://example.org/x?sig=1", "a file")
    'https://example.org/x?sig=1'
    """
    parsed = urllib.parse.urlsplit(str(url))
    host = parsed.hostname or ""
    ok = bool(host) and (
        parsed.scheme == "https" or (parsed.scheme == "http" and is_loopback_host(host))
    )
    if not ok:
        raise AccessServiceError(
            f"The access service sent an unusable URL for {what} ({redact(str(url))[:200]!r}): "
            "only https URLs are opened. Report this to the dataset maintainers."
        )
    return url


@documented_by(Store)
class PresignedStore:
    """A read-only :class:`~laion_fmri.stores.Store` over the access service's presigned URLs.

    Sizes and sha256 come from the public manifest, so the download engine can
    skip files already on disk without asking for a grant; URLs are fetched
    (``refresh``) only when a byte has to move, and once more when they expire.

    Parameters
    ----------
    client : AccessClient
        The access-service client.
    manifest : Manifest
        The public manifest (gated files with size and sha256).
    request_id : callable
        Returns the request id; called on first need (may prompt).

    Examples
    --------
    >>> store = PresignedStore(AccessClient(), manifest, lambda: "lfm_x")  # doctest: +SKIP
    """

    def __init__(self, client: AccessClient, manifest: Manifest, request_id: Callable[[], str]) -> None:
        self.client = client
        self.url = client.server_url
        self._files = {f.key: f for f in manifest.files}
        self._request_id = request_id
        self._urls: dict[str, str] | None = None
        self._lock = threading.Lock()  # parallel transfers must not prompt twice
        self._pool = make_pool(HTTP_TIMEOUT, HTTP_TIMEOUT)

    def _info(self, f: RemoteFile) -> ObjectInfo:
        # The sha256 stands in for an ETag: it names the content, which lets the
        # engine resume a partial file (the final sha256 check catches a change).
        etag = f"sha256-{f.sha256}" if f.sha256 else None
        return ObjectInfo(f.key, f.size, etag, None, f.sha256)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Stream every object under the folder ``prefix``, recursively.

        Parameters
        ----------
        prefix : str
            A folder key (``""`` for the root; a trailing ``/`` is optional).

        Yields
        ------
        ObjectInfo
            One per gated file.
        """
        for key in sorted(self._files):
            if key.startswith(prefix):
                yield self._info(self._files[key])

    def list_dirs(self, prefix: str = "") -> list[str]:
        folder = folder_prefix(prefix)
        out = {folder + k[len(folder):].split("/", 1)[0] + "/"
               for k in self._files if k.startswith(folder) and "/" in k[len(folder):]}
        return sorted(out)

    def list_files(self, prefix: str = "") -> list[ObjectInfo]:
        folder = folder_prefix(prefix)
        return [self._info(self._files[k]) for k in sorted(self._files)
                if k.startswith(folder) and "/" not in k[len(folder):]]

    def head(self, key: str) -> ObjectInfo:
        """Size and sha256 of a gated file (from the manifest).

        Parameters
        ----------
        key : str
            Bucket-layout key.

        Returns
        -------
        ObjectInfo

        Raises
        ------
        DataNotFoundError
            If the key is not a gated file.
        """
        f = self._files.get(key)
        if f is None:
            raise DataNotFoundError(f"{key!r} is not one of the gated stimulus files at {self.url}.")
        return self._info(f)

    def _refresh(self, stale: dict[str, str] | None) -> dict[str, str]:
        with self._lock:
            if self._urls is None or self._urls is stale:
                grant = self.client.refresh(self._request_id())
                self._urls = {f.key: f.url for f in grant.files if f.url}
            return self._urls

    def open(
        self, key: str, start: int = 0, if_match: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE, end: int | None = None,
    ) -> Any:
        """GET bytes ``[start, end)`` of a gated file from its presigned URL.

        The first call fetches URLs (``refresh``; may prompt for access); a
        refused URL (expired) is refreshed once.

        Parameters
        ----------
        key : str
            Bucket-layout key.
        start : int
            First byte wanted (HTTP ``Range``).
        if_match : str, optional
            Not sent: presigned S3 URLs carry their own ETag; the engine's sha256
            check guards resumed files instead.
        chunk_size : int
            Bytes per yielded chunk.
        end : int, optional
            Offset after the last byte wanted (``None``: to the end).

        Returns
        -------
        Download
            Context manager; iterate for the byte chunks. ``info`` is the
            manifest's (size, sha256).

        Raises
        ------
        AccessDeniedError, DataNotFoundError, SourceUnavailableError, AccessServiceError
            For a refused, missing or unreachable file, or an unusable URL.
        """
        info = self.head(key)
        urls = self._urls if self._urls is not None else self._refresh(None)
        for attempt in range(2):
            if attempt:
                urls = self._refresh(urls)  # the URLs expired: fetch fresh ones once
            url = urls.get(key)
            if url is None:
                raise DataNotFoundError(f"The access grant holds no URL for {key!r}.")
            check_url(url, repr(key))
            where = f"the presigned URL of {key!r}"
            try:
                body = http_get(self._pool, url, key, where, start=start, end=end,
                                chunk_size=chunk_size, timeout=HTTP_TIMEOUT)
            except AccessDeniedError:
                if attempt == 0:
                    continue  # presigned URL expired: refresh once
                raise AccessDeniedError(
                    f"The presigned URL for {key!r} was refused (HTTP 403).") from None
            except DownloadError as exc:
                raise type(exc)(redact(str(exc))) from None
            body.info = ObjectInfo(key, info.size, info.etag, None, info.sha256)
            return body
        raise AccessDeniedError(f"The presigned URL for {key!r} was refused.")  # pragma: no cover


__all__ = ["PresignedStore", "check_url", "is_loopback_host", "redact"]
