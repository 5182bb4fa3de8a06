"""Where the access service is and where its grant (the request id) is kept.

Public names are re-exported by :mod:`laion_fmri.access`.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from laion_fmri._jsonio import read_settings
from laion_fmri.errors import (
    AccessServiceError,
)
from laion_fmri.stores.base import is_loopback_host, redact

DEFAULT_ACCESS_URL = "https://laion-fmri.hebartlab.com"
ENV_ACCESS_URL = "LAION_FMRI_ACCESS_URL"
ENV_REQUEST_ID = "LAION_FMRI_REQUEST_ID"
DATASET_VERSION = "v1"
TERMS_URL_PATH = "/terms"
MIN_PURPOSE_CHARS = 20
HTTP_TIMEOUT = 60.0
ACCEPT_PROMPT = 'Type "I AGREE" to accept: '
ACCEPT_WORDS = "I AGREE"
REQUEST_ACCESS_HINT = "laion-fmri request-access"


def access_url(server_url: str | None = None) -> str:
    """Base URL of the access service (argument, then ``LAION_FMRI_ACCESS_URL``, then default).

    Parameters
    ----------
    server_url : str, optional
        Access service base URL (default: ``LAION_FMRI_ACCESS_URL``, else the public service).

    Returns
    -------
    str
        The URL without a trailing slash.

    Raises
    ------
    AccessServiceError
        If the URL is not ``http(s)://host[:port]``.

    Examples
    --------
    >>> access_url("http://127.0.0.1:8000/")
    'http://127.0.0.1:8000'
    """
    url = server_url or os.environ.get(ENV_ACCESS_URL) or DEFAULT_ACCESS_URL
    parsed = urllib.parse.urlparse(url)
    host = parsed.hostname or ""
    if not (parsed.scheme == "https" or (parsed.scheme == "http" and is_loopback_host(host))) \
            or not host or parsed.query or parsed.fragment:
        raise AccessServiceError(
            f"Access service URL {redact(url)!r} must look like https://host[:port] "
            "(plain http only to this machine, for tests)."
        )
    return url.rstrip("/")


def uses_access_service(server_url: str | None = None) -> bool:
    """Whether raw images come through the access service (else: from a sample/local source).

    The service is used for the public dataset (default source), or whenever a
    service URL is given (argument or ``LAION_FMRI_ACCESS_URL``).

    Parameters
    ----------
    server_url : str, optional
        Access service base URL (default: ``LAION_FMRI_ACCESS_URL``, else the public service).

    Returns
    -------
    bool

    Examples
    --------
    >>> uses_access_service("http://127.0.0.1:8000")
    True
    """
    from laion_fmri.config import get_source

    return bool(server_url or os.environ.get(ENV_ACCESS_URL)) or get_source().is_default



# --------------------------------------------------------------------------- grant storage
def auth_path() -> Path:
    """Where the request id is stored.

    Returns
    -------
    pathlib.Path
        ``$XDG_CACHE_HOME/laion-fmri/auth.json`` (default ``~/.cache/laion-fmri/auth.json``).

    Examples
    --------
    >>> auth_path().name
    'auth.json'
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "laion-fmri" / "auth.json"


def _check_grant_folder(folder: Path) -> None:
    """Refuse a grant folder others can write (they could swap the grant file)."""
    st = folder.stat()
    if st.st_mode & 0o022:
        raise AccessServiceError(
            f"The folder {folder} holding the access grant can be written by other users "
            f"(mode {st.st_mode & 0o777:o}); refusing to use it. Fix: chmod 700 {folder}"
        )


#: Field types of ``auth.json`` (checked where present).
_GRANT_SCHEMA = {"server_url": str, "request_id": str, "email": (str, type(None)), "saved_at": str}


def save_grant(request_id: str, email: str | None = None, server_url: str | None = None) -> Path:
    """Store the request id with mode 0600, atomically (never world-readable, even briefly).

    Parameters
    ----------
    request_id : str
        The id (``lfm_...``).
    email : str, optional
        The requester's e-mail (kept for reference).
    server_url : str, optional
        Access service base URL (default: ``LAION_FMRI_ACCESS_URL``, else the public service).

    Returns
    -------
    pathlib.Path
        The auth file.

    Raises
    ------
    ValueError
        If ``request_id`` is empty.

    Examples
    --------
    >>> save_grant("lfm_example")  # doctest: +SKIP
    """
    if not isinstance(request_id, str) or not request_id.strip():
        raise ValueError("A request id is a non-empty string like 'lfm_...'.")
    path = auth_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_grant_folder(path.parent)
    record = {
        "server_url": access_url(server_url),
        "request_id": request_id.strip(),
        "email": email,
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".auth-", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_grant(server_url: str | None = None) -> str | None:
    """The request id to use: ``LAION_FMRI_REQUEST_ID``, else the one stored for this service.

    Parameters
    ----------
    server_url : str, optional
        Access service base URL (default: ``LAION_FMRI_ACCESS_URL``, else the public service).

    Returns
    -------
    str or None
        ``None`` when there is none (or it was stored for another service).

    Raises
    ------
    AccessServiceError
        When ``auth.json`` is unreadable, too large or deep, not a JSON object
        of the expected field types, or a symbolic link: one line naming the
        file and the fix.

    Examples
    --------
    >>> load_grant()  # doctest: +SKIP
    'lfm_...'
    """
    env = os.environ.get(ENV_REQUEST_ID, "").strip()
    if env:
        return env
    path = auth_path()
    if not path.exists():
        return None
    _check_grant_folder(path.parent)
    fix = (f"Delete it (rm {path}) and run `{REQUEST_ACCESS_HINT}` again, or set "
           f"{ENV_REQUEST_ID}.")
    if path.is_symlink():
        raise AccessServiceError(f"The grant file {path} is a symbolic link; refusing to follow "
                                 f"it. {fix}")
    record = read_settings(path, _GRANT_SCHEMA, AccessServiceError, fix, max_bytes=65536)
    if record.get("server_url") != access_url(server_url):
        return None
    rid = record.get("request_id")
    return rid or None


def clear_grant() -> bool:
    """Delete the stored request id.

    Returns
    -------
    bool
        True when a file was removed.

    Examples
    --------
    >>> clear_grant()  # doctest: +SKIP
    True
    """
    try:
        auth_path().unlink()
    except FileNotFoundError:
        return False
    return True



__all__ = [
    "ACCEPT_PROMPT",
    "ACCEPT_WORDS",
    "DATASET_VERSION",
    "DEFAULT_ACCESS_URL",
    "ENV_ACCESS_URL",
    "ENV_REQUEST_ID",
    "HTTP_TIMEOUT",
    "MIN_PURPOSE_CHARS",
    "REQUEST_ACCESS_HINT",
    "TERMS_URL_PATH",
    "access_url",
    "auth_path",
    "clear_grant",
    "load_grant",
    "save_grant",
    "uses_access_service",
]
