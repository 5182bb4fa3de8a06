"""The stimulus data-use agreement and the client of the stimulus access service.

Raw stimulus images are not CC0: each requester accepts the data-use
agreement (DUA) once, through the access service (default
``https://laion-fmri.hebartlab.com``, override with ``LAION_FMRI_ACCESS_URL``):

``GET /api/v1/manifest``
    Public: current terms version and the gated files (name, size, sha256).
``POST /api/v1/access/request``
    The requester's details and the accepted terms version; returns a
    request id (``lfm_...``) and presigned download URLs.
``POST /api/v1/refresh``
    Fresh presigned URLs for a known request id.

The request id is kept in ``$XDG_CACHE_HOME/laion-fmri/auth.json`` (default
``~/.cache/laion-fmri/auth.json``, mode 0600, written atomically) or given by
``LAION_FMRI_REQUEST_ID``. It is never printed or logged.

For a sample or local source (or a non-default S3 endpoint) there is no
service: the same agreement is shown once per data directory and recorded in
``<data_dir>/.laion_fmri/stimuli_terms_accepted`` (:func:`ensure_local_terms`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from laion_fmri import layout
from laion_fmri.agreements import Agreement
from laion_fmri.errors import (
    AccessNotFoundError,
    AccessRevokedError,
    AccessServiceError,
    LicenseNotAcceptedError,
    RateLimitedError,
    SourceUnavailableError,
    TermsOutdatedError,
)
from laion_fmri.stores.base import is_loopback_host, redact

__all__ = [
    "ACCEPT_PROMPT",
    "DEFAULT_ACCESS_URL",
    "STIMULUS_AGREEMENT",
    "STIMULUS_TERMS",
    "AccessClient",
    "AccessDetails",
    "Grant",
    "Manifest",
    "RemoteFile",
    "access_url",
    "auth_path",
    "clear_grant",
    "ensure_grant",
    "ensure_local_terms",
    "load_grant",
    "prompt_details",
    "record_local_agreement",
    "request_stimulus_access",
    "save_grant",
    "uses_access_service",
]

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

STIMULUS_TERMS = """\
=== LAION-fMRI Stimulus License ===

The 25,052 stimulus images are NOT covered by the CC0 dedication of the fMRI
data. Their copyright stays with the original rights holders. By accepting you
agree that you will:

  * use the images for non-commercial academic research only;
  * not share, publish or redistribute the images (or this download) to anyone;
  * not use them to train or evaluate commercial AI models or services;
  * not create derivative works from them except as part of your research;
  * remove images when a rights holder asks (see /takedown on the access site).

An access request through the access service records your name, e-mail,
institution, supervisor and research purpose with the accepted terms version.
Full terms: {terms_url}
"""


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


def terms_text(server_url: str | None = None) -> str:
    """The data-use agreement shown before any stimulus access."""
    return STIMULUS_TERMS.format(terms_url=access_url(server_url) + TERMS_URL_PATH)


# --------------------------------------------------------------------------- data types
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class AccessDetails:
    """Who asks for the images and why (sent with the access request).

    Parameters
    ----------
    name : str
        Full name.
    email : str
        E-mail address.
    institution : str
        Institution.
    pi_or_supervisor : str
        Principal investigator or supervisor.
    research_purpose : str
        What the images are for (at least 20 characters).

    Examples
    --------
    >>> d = AccessDetails("Ada", "ada@uni.edu", "Uni", "Prof. B", "Encoding models of visual cortex")
    >>> d.validate() is d
    True
    """

    name: str
    email: str
    institution: str
    pi_or_supervisor: str
    research_purpose: str

    def validate(self) -> AccessDetails:
        """Check every field.

        Returns
        -------
        AccessDetails
            ``self``.

        Raises
        ------
        ValueError
            Naming the first bad field.
        """
        for field in _DETAIL_FIELDS:
            problem = _field_problem(field, str(getattr(self, field)))
            if problem:
                raise ValueError(problem)
        return self


_DETAIL_FIELDS: dict[str, str] = {
    "name": "Full name: ",
    "email": "E-mail: ",
    "institution": "Institution: ",
    "pi_or_supervisor": "PI or supervisor: ",
    "research_purpose": f"Research purpose (at least {MIN_PURPOSE_CHARS} characters): ",
}


def _field_problem(field: str, value: str) -> str | None:
    """Why ``value`` is not acceptable for an access-request field, or ``None``."""
    value = value.strip()
    if field == "email":
        return None if _EMAIL_RE.match(value) else f"{value!r} is not an e-mail address."
    if field == "research_purpose" and len(value) < MIN_PURPOSE_CHARS:
        return f"Describe the research purpose in at least {MIN_PURPOSE_CHARS} characters."
    return None if value else f"The access request needs a non-empty {field}."


@dataclass(frozen=True)
class RemoteFile:
    """One gated file of the manifest or a grant.

    Parameters
    ----------
    name : str
        File name under ``stimuli/``.
    size : int
        Size in bytes.
    sha256 : str or None
        Hex SHA-256 of the content.
    url : str, optional
        Presigned download URL (grants only).

    Examples
    --------
    >>> RemoteFile("task-images_metadata.csv", 10, None).key
    'stimuli/task-images_metadata.csv'
    """

    name: str
    size: int
    sha256: str | None
    url: str | None = None

    @property
    def key(self) -> str:
        """The bucket-layout key of the file (``stimuli/<name>``)."""
        return layout.check_key(f"{layout.STIMULI_ROOT}/{self.name}")


@dataclass(frozen=True)
class Manifest:
    """The public manifest of the access service.

    Parameters
    ----------
    terms_version : str
        Current version of the data-use terms.
    files : tuple of RemoteFile
        The gated files.

    Examples
    --------
    >>> Manifest("2026-01", ()).terms_version
    '2026-01'
    """

    terms_version: str
    files: tuple[RemoteFile, ...]


@dataclass(frozen=True)
class Grant:
    """An accepted access request with presigned URLs.

    Parameters
    ----------
    request_id : str
        The request id (``lfm_...``); keep it private.
    expires_at : str or None
        When the URLs expire (ISO 8601), as sent by the service.
    files : tuple of RemoteFile
        The gated files with their ``url``.

    Examples
    --------
    >>> Grant("lfm_x", None, ()).files
    ()
    """

    request_id: str
    expires_at: str | None
    files: tuple[RemoteFile, ...]


def _parse_files(payload: Any, where: str) -> tuple[RemoteFile, ...]:
    if not isinstance(payload, list):
        raise AccessServiceError(f"The access service's {where} answer has no 'files' list.")
    out = []
    for entry in payload:
        try:
            out.append(RemoteFile(
                name=str(entry["name"]),
                size=int(entry["size"]),
                sha256=(str(entry["sha256"]).lower() if entry.get("sha256") else None),
                url=entry.get("url"),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise AccessServiceError(f"Malformed file entry in the {where} answer: {entry!r}.") from exc
    for f in out:
        f.key  # noqa: B018 - refuses names that could escape stimuli/
    return tuple(out)


def _parse_grant(data: dict[str, Any], where: str) -> Grant:
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise AccessServiceError(f"The access service's {where} answer has no request_id.")
    return Grant(request_id, data.get("expires_at"), _parse_files(data.get("files"), where))


# --------------------------------------------------------------------------- HTTP client
def _error_code(body: bytes) -> tuple[str, str]:
    """``(code, detail)`` from a JSON error body (``error``/``code`` and ``detail``/``message``)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "", body.decode("utf-8", "replace")[:200]
    if not isinstance(data, dict):
        return "", str(data)[:200]
    detail = data.get("detail") or data.get("message") or ""
    code = data.get("error") or data.get("code") or ""
    if isinstance(detail, dict):  # FastAPI-style {"detail": {"error": ...}}
        code = code or detail.get("error") or detail.get("code") or ""
        detail = detail.get("message") or detail.get("detail") or ""
    return str(code), str(detail)[:300]


def _service_error(status: int, body: bytes, headers: Any, what: str) -> AccessServiceError:
    code, detail = _error_code(body)
    text = f"{code} {detail}".lower()
    suffix = f" ({detail})" if detail else ""
    if status == 403 and ("terms" in text or "outdated" in text):
        return TermsOutdatedError(
            f"The data-use terms changed since you accepted them{suffix}. Accept the current "
            f"terms with `{REQUEST_ACCESS_HINT}`."
        )
    if status == 403:
        return AccessRevokedError(
            f"Stimulus access was refused or revoked{suffix}. Contact the dataset team, or file "
            f"a new request with `{REQUEST_ACCESS_HINT}`."
        )
    if status == 404:
        return AccessNotFoundError(
            f"The access service does not know this request id{suffix}. Run "
            f"`{REQUEST_ACCESS_HINT}` (or `laion-fmri login --request-id ID` with the right id)."
        )
    if status == 429:
        retry = headers.get("Retry-After") if headers is not None else None
        wait = f" Retry after {retry} s." if retry else " Wait a little and retry."
        return RateLimitedError(f"The access service is rate-limiting {what}{suffix}.{wait}")
    return AccessServiceError(f"The access service answered HTTP {status} to {what}{suffix}.")


_MAX_REPLY_BYTES = 16 * 1024 * 1024


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same scheme and host (no downgrade, no other host)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        old = urllib.parse.urlsplit(req.full_url)
        new = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        if (new.scheme, new.hostname, new.port) != (old.scheme, old.hostname, old.port):
            raise AccessServiceError(
                f"The access service redirected to another place ({redact(newurl)[:200]!r}); "
                "refusing to follow it. Check LAION_FMRI_ACCESS_URL."
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class AccessClient:
    """Small JSON client of the stimulus access service.

    Parameters
    ----------
    server_url : str, optional
        Base URL; default from ``LAION_FMRI_ACCESS_URL`` or the public service.
    timeout : float
        Seconds per HTTP request.

    Examples
    --------
    >>> client = AccessClient("http://127.0.0.1:8765")
    >>> client.server_url
    'http://127.0.0.1:8765'
    """

    def __init__(self, server_url: str | None = None, timeout: float = HTTP_TIMEOUT) -> None:
        self.server_url = access_url(server_url)
        self.timeout = timeout

    def _call(self, method: str, path: str, form: dict[str, str] | None = None) -> dict[str, Any]:
        url = self.server_url + path
        data = urllib.parse.urlencode(form).encode("ascii") if form is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={"Accept": "application/json"})
        what = f"{method} {path}"
        opener = urllib.request.build_opener(_SameOriginRedirects())
        try:
            with opener.open(req, timeout=self.timeout) as resp:
                body = resp.read(_MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise _service_error(exc.code, exc.read(65536), exc.headers, what) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = redact(str(getattr(exc, "reason", exc)))
            raise SourceUnavailableError(
                f"Cannot reach the access service at {self.server_url} ({reason}). Check the "
                f"network or {ENV_ACCESS_URL}."
            ) from None
        if len(body) > _MAX_REPLY_BYTES:
            raise AccessServiceError(f"The access service sent an oversized answer to {what}.")
        try:
            result = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AccessServiceError(f"The access service sent non-JSON to {what}.") from exc
        if not isinstance(result, dict):
            raise AccessServiceError(f"The access service sent an unexpected answer to {what}.")
        return result

    def manifest(self) -> Manifest:
        """The public manifest (no authentication).

        Returns
        -------
        Manifest

        Raises
        ------
        AccessServiceError
            If the answer is malformed or an error status.
        SourceUnavailableError
            If the service cannot be reached.
        """
        data = self._call("GET", "/api/v1/manifest")
        version = data.get("current_terms_version")
        if not version:
            raise AccessServiceError("The manifest names no current_terms_version.")
        return Manifest(str(version), _parse_files(data.get("files"), "manifest"))

    def request_access(self, details: AccessDetails, terms_version: str, source: str = "python") -> Grant:
        """File an access request with accepted terms.

        Parameters
        ----------
        details : AccessDetails
            The requester's details.
        terms_version : str
            The accepted terms version (from :meth:`manifest`).
        source : str
            Where the request comes from (``"python"`` or ``"cli"``).

        Returns
        -------
        Grant

        Raises
        ------
        ValueError
            If the details are incomplete.
        TermsOutdatedError, RateLimitedError, AccessServiceError
            As answered by the service.
        """
        details.validate()
        form = {
            "name": details.name.strip(),
            "email": details.email.strip(),
            "institution": details.institution.strip(),
            "pi_or_supervisor": details.pi_or_supervisor.strip(),
            "research_purpose": details.research_purpose.strip(),
            "accepted_terms": "true",
            "terms_version": terms_version,
            "source": source,
        }
        return _parse_grant(self._call("POST", "/api/v1/access/request", form), "access request")

    def refresh(self, request_id: str) -> Grant:
        """Fresh presigned URLs for a request id.

        Parameters
        ----------
        request_id : str
            The stored request id.

        Returns
        -------
        Grant

        Raises
        ------
        AccessNotFoundError, AccessRevokedError, TermsOutdatedError, RateLimitedError
            As answered by the service.
        """
        form = {"request_id": request_id, "dataset_version": DATASET_VERSION}
        return _parse_grant(self._call("POST", "/api/v1/refresh", form), "refresh")


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


def _open_nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


def _check_grant_folder(folder: Path) -> None:
    """Refuse a grant folder others can write (they could swap the grant file)."""
    st = folder.stat()
    if st.st_mode & 0o022:
        raise AccessServiceError(
            f"The folder {folder} holding the access grant can be written by other users "
            f"(mode {st.st_mode & 0o777:o}); refusing to use it. Fix: chmod 700 {folder}"
        )


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
        ``None`` when there is none.

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
    try:
        with open(path, encoding="utf-8", opener=_open_nofollow) as fh:
            record = json.loads(fh.read(65536))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("server_url") != access_url(server_url):
        return None
    rid = record.get("request_id")
    return rid if isinstance(rid, str) and rid else None


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


# --------------------------------------------------------------------------- prompts
InputFn = Callable[[str], str]


def _interactive(interactive: bool | None) -> bool:
    if interactive is not None:
        return interactive
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


STIMULUS_AGREEMENT = Agreement(
    title="stimulus data-use agreement",
    text=terms_text,
    marker="stimulus_terms",
    how=f"No images were downloaded; accept it with `{REQUEST_ACCESS_HINT}` in a terminal.",
    prompt=ACCEPT_PROMPT,
)


def _ask_acceptance(input_fn: InputFn, out: Callable[[str], None], text: str) -> None:
    if text:
        out(text)
    STIMULUS_AGREEMENT.ask(input_fn, out, show=False)


def prompt_details(
    input_fn: InputFn = input, out: Callable[[str], None] = print, server_url: str | None = None
) -> AccessDetails:
    """Show the terms, ask for the requester's details and a typed ``I AGREE``.

    Parameters
    ----------
    input_fn : callable
        Reads one answer given a prompt (``input`` by default).
    out : callable
        Prints text (``print`` by default).
    server_url : str, optional
        Access service base URL (default: ``LAION_FMRI_ACCESS_URL``, else the public service).

    Returns
    -------
    AccessDetails

    Raises
    ------
    LicenseNotAcceptedError
        If a field stays invalid after three tries, or the answer to the
        acceptance prompt is not ``I AGREE``.

    Examples
    --------
    >>> prompt_details()  # doctest: +SKIP
    """
    out(terms_text(server_url))
    values: dict[str, str] = {}
    for field, prompt in _DETAIL_FIELDS.items():
        for _ in range(3):
            values[field] = input_fn(prompt).strip()
            problem = _field_problem(field, values[field])
            if problem is None:
                break
            out(f"  {problem}")
        else:
            raise LicenseNotAcceptedError(f"No valid {field} given; the access request was not sent.")
    details = AccessDetails(**values)
    _ask_acceptance(input_fn, out, "")
    return details


def request_stimulus_access(
    details: AccessDetails | None = None,
    server_url: str | None = None,
    interactive: bool | None = None,
    input_fn: InputFn = input,
    out: Callable[[str], None] = print,
) -> str:
    """Accept the data-use agreement with the access service and store the grant.

    Parameters
    ----------
    details : AccessDetails, optional
        The requester's details; asked interactively when omitted.
    server_url : str, optional
        Access service base URL (default: ``LAION_FMRI_ACCESS_URL``, else the public service).
    interactive : bool, optional
        Whether prompting is allowed (default: stdin is a terminal).
    input_fn : callable
        Reads one answer given a prompt.
    out : callable
        Prints text.

    Returns
    -------
    str
        The request id (also stored in :func:`auth_path`).

    Raises
    ------
    LicenseNotAcceptedError
        Without details and without a terminal, or when ``I AGREE`` is not typed.

    Examples
    --------
    >>> request_stimulus_access()  # doctest: +SKIP
    """
    client = AccessClient(server_url)
    manifest = client.manifest()
    if details is None:
        if not _interactive(interactive):
            raise LicenseNotAcceptedError(
                "Raw stimulus images need the data-use agreement, which must be accepted "
                f"interactively: run `{REQUEST_ACCESS_HINT}` in a terminal (or set "
                f"{ENV_REQUEST_ID} to an existing request id)."
            )
        details = prompt_details(input_fn, out, client.server_url)
    grant = client.request_access(details, manifest.terms_version)
    save_grant(grant.request_id, details.email.strip(), client.server_url)
    out(f"Access granted; the request id is stored in {auth_path()}.")
    return grant.request_id


def ensure_grant(
    server_url: str | None = None, interactive: bool | None = None, input_fn: InputFn = input
) -> str:
    """The request id to use, asking for access first when none is stored.

    Parameters
    ----------
    server_url : str, optional
        Access service base URL (default: ``LAION_FMRI_ACCESS_URL``, else the public service).
    interactive : bool, optional
        Whether prompting is allowed (default: stdin is a terminal).
    input_fn : callable
        Reads one answer given a prompt.

    Returns
    -------
    str
        The request id.

    Raises
    ------
    LicenseNotAcceptedError
        No stored grant and no terminal to ask on (names ``laion-fmri request-access``).

    Examples
    --------
    >>> ensure_grant()  # doctest: +SKIP
    """
    rid = load_grant(server_url)
    if rid:
        return rid
    return request_stimulus_access(server_url=server_url, interactive=interactive, input_fn=input_fn)


def record_local_agreement(data_dir: str | os.PathLike[str]) -> Path:
    """Record, without a prompt, that the stimulus agreement is accepted for a data directory.

    For scripted use with a sample or local source, by code whose user has
    read and accepted the terms (:data:`STIMULUS_TERMS`). The access service
    still needs a request with the requester's details.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The data directory.

    Returns
    -------
    pathlib.Path
        The marker file (``<data_dir>/.laion_fmri/stimuli_terms_accepted``).

    Examples
    --------
    >>> record_local_agreement("/data/laion_fmri")  # doctest: +SKIP
    """
    return STIMULUS_AGREEMENT.record(data_dir)


def ensure_local_terms(
    data_dir: str | os.PathLike[str],
    interactive: bool | None = None,
    input_fn: InputFn = input,
    out: Callable[[str], None] = print,
) -> None:
    """Gate images from a sample/local source behind the same agreement (once per data dir).

    Parameters
    ----------
    data_dir : str or os.PathLike
        The data directory; acceptance is recorded in its ``.laion_fmri/`` folder.
    interactive : bool, optional
        Whether prompting is allowed (default: stdin is a terminal).
    input_fn : callable
        Reads one answer given a prompt.
    out : callable
        Prints text.

    Raises
    ------
    LicenseNotAcceptedError
        Not accepted, or no terminal and no earlier acceptance.

    Examples
    --------
    >>> ensure_local_terms("/data/laion_fmri")  # doctest: +SKIP
    """
    STIMULUS_AGREEMENT.ensure(data_dir, _interactive(interactive), input_fn, out)


# --------------------------------------------------------------------------- presigned store
def __getattr__(name: str) -> Any:
    # Moved to laion_fmri.stores._presigned; kept importable from here.
    if name == "PresignedStore":
        from laion_fmri.stores._presigned import PresignedStore

        return PresignedStore
    raise AttributeError(f"module 'laion_fmri.access' has no attribute {name!r}")
