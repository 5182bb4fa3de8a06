"""Deprecated alias of :mod:`laion_fmri.stores` (kept so existing imports work).

``from laion_fmri.remote import S3Store, LocalStore, ObjectInfo, Store, open_store``
keeps working; import from :mod:`laion_fmri.stores` instead. Nothing is
documented here, so each class is described once, in :mod:`laion_fmri.stores`.
"""

from __future__ import annotations

from laion_fmri.stores import (  # noqa: F401 - re-exports
    DEFAULT_CHUNK_SIZE,
    Download,
    LocalStore,
    ObjectInfo,
    S3Store,
    Store,
    open_store,
)
from laion_fmri.stores._s3 import (  # noqa: F401 - re-exports
    CONNECT_TIMEOUT,
    ENV_CONNECT_TIMEOUT,
    ENV_READ_TIMEOUT,
    READ_TIMEOUT,
)

__all__: list[str] = []
