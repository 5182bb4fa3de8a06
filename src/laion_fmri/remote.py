"""Deprecated alias of :mod:`laion_fmri.stores` (kept so existing imports work).

Import from :mod:`laion_fmri.stores` instead.
"""

from __future__ import annotations

from laion_fmri.stores import (
    DEFAULT_CHUNK_SIZE,
    Download,
    LocalStore,
    ObjectInfo,
    S3Store,
    Store,
    open_store,
)
from laion_fmri.stores._s3 import (
    CONNECT_TIMEOUT,
    ENV_CONNECT_TIMEOUT,
    ENV_READ_TIMEOUT,
    READ_TIMEOUT,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_CHUNK_SIZE",
    "ENV_CONNECT_TIMEOUT",
    "ENV_READ_TIMEOUT",
    "READ_TIMEOUT",
    "Download",
    "LocalStore",
    "ObjectInfo",
    "S3Store",
    "Store",
    "open_store",
]
