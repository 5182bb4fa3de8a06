"""Where the bytes come from: the :class:`Store` seam and its implementations.

* :mod:`laion_fmri.stores.base` - the :class:`Store` protocol, :class:`ObjectInfo`
  and the :class:`Download` transfer type (documented once, there);
* ``_s3`` - :class:`S3Store`, an anonymous S3 bucket (listings through obstore,
  ranged bodies through one ``urllib3`` pool);
* ``_local`` - :class:`LocalStore`, a local folder in the bucket layout;
* ``_presigned`` - :class:`PresignedStore`, presigned URLs from the access service.

:func:`open_store` returns the configured store; S3 stores are cached so the
whole process shares one connection pool per configuration. Any object that
implements :class:`Store` can be passed to :func:`laion_fmri.download.download`.
"""

from __future__ import annotations

import functools
import os
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from laion_fmri.config import Source, get_source, parse_source
from laion_fmri.errors import ConfigError
from laion_fmri.stores._local import LocalStore
from laion_fmri.stores._s3 import ENV_CONNECT_TIMEOUT, ENV_READ_TIMEOUT, S3Store
from laion_fmri.stores.base import DEFAULT_CHUNK_SIZE, Download, ObjectInfo, Store

if TYPE_CHECKING:
    from laion_fmri.stores._presigned import PresignedStore

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


def __getattr__(name: str) -> Any:
    # The presigned store pulls in the access client: imported on first use.
    if name == "PresignedStore":
        from laion_fmri.stores._presigned import PresignedStore

        return PresignedStore
    raise AttributeError(f"module 'laion_fmri.stores' has no attribute {name!r}")


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Download",
    "LocalStore",
    "ObjectInfo",
    "PresignedStore",
    "S3Store",
    "Store",
    "open_store",
]
