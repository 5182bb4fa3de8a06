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
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from laion_fmri.errors import (
    AccessDeniedError,
    DataNotFoundError,
    SourceUnavailableError,
)
from laion_fmri.layout import check_key
from laion_fmri.stores._http import (
    ENV_CONNECT_TIMEOUT,
    ENV_READ_TIMEOUT,
    _HTTPBody,
    _info_from_meta,
    http_get,
    make_pool,
    map_error,
    status_error,
)
from laion_fmri.stores.base import (
    DEFAULT_CHUNK_SIZE,
    ObjectInfo,
    Store,
    documented_by,
    folder_prefix,
    unquote_etag,
)

CONNECT_TIMEOUT = timedelta(seconds=10)
READ_TIMEOUT = timedelta(seconds=60)
#: obstore retries a little on its own; the transfer engine retries more with
#: resume, so this stays small (a listing retried here cannot hang for long).
OBSTORE_MAX_RETRIES = 2
OBSTORE_RETRY_TIMEOUT = timedelta(seconds=20)
#: Listings and HEADs are small: their read timeout and retry budget are shorter.
LIST_READ_TIMEOUT = timedelta(seconds=15)
LIST_RETRY_TIMEOUT = timedelta(seconds=10)


@documented_by(Store)
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
        self._connect_timeout = connect_timeout.total_seconds()
        self._pools: tuple[Any, Any] | None = None
        self._pools_lock = threading.Lock()
        # Bodies go through urllib3, whose import (~30 ms) is done in the
        # background while the first listing waits on the network.
        threading.Thread(target=self._body_pools, name="laion-fmri-warmup", daemon=True).start()
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

    def _body_pools(self) -> tuple[Any, Any]:
        """The urllib3 pools for bodies and for HEADs (built once, on first need)."""
        with self._pools_lock:
            if self._pools is None:
                self._pools = (make_pool(self._connect_timeout, self._read_timeout),
                               make_pool(self._connect_timeout, self._list_timeout))
            return self._pools

    @property
    def _pool(self) -> Any:
        return self._body_pools()[0]

    @property
    def _head_pool(self) -> Any:
        return self._body_pools()[1]

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
        result = self._list_level(prefix)
        return sorted({p.rstrip("/") + "/" for p in result["common_prefixes"]})

    def list_files(self, prefix: str = "") -> list[ObjectInfo]:
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
        result = http_get(
            self._head_pool, self._object_url(key), key, self.url, method="HEAD",
            timeout=self._list_timeout, extra_headers={"x-amz-checksum-mode": "ENABLED"},
        )
        return result.info

    def open(
        self, key: str, start: int = 0, if_match: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE, end: int | None = None,
    ) -> _HTTPBody:
        return http_get(
            self._pool, self._object_url(key), key, self.url, start=start, end=end,
            if_match=if_match, chunk_size=chunk_size, timeout=self._read_timeout,
            extra_headers={"x-amz-checksum-mode": "ENABLED"},
        )


__all__ = ["S3Store", "http_get", "make_pool", "map_error", "status_error"]
