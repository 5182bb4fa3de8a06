"""The HTTP client of the stimulus access service and the data it returns.

Public names are re-exported by :mod:`laion_fmri.access`.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from laion_fmri import layout
from laion_fmri._access_grants import (
    DATASET_VERSION,
    ENV_ACCESS_URL,
    HTTP_TIMEOUT,
    MIN_PURPOSE_CHARS,
    REQUEST_ACCESS_HINT,
    access_url,
)
from laion_fmri._jsonio import JsonDocumentError, parse_json
from laion_fmri.errors import (
    AccessNotFoundError,
    AccessRevokedError,
    AccessServiceError,
    RateLimitedError,
    SourceUnavailableError,
    TermsOutdatedError,
)
from laion_fmri.stores.base import redact

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
class StimulusFileList:
    """The stimulus service's public file list (``GET /api/v1/manifest``).

    Not the download manifest of verified files
    (:class:`laion_fmri.download.manifest.Manifest`); ``access.Manifest`` is
    the old name of this class.

    Parameters
    ----------
    terms_version : str
        Current version of the data-use terms.
    files : tuple of RemoteFile
        The gated files.

    Examples
    --------
    >>> StimulusFileList("2026-01", ()).terms_version
    '2026-01'
    """

    terms_version: str
    files: tuple[RemoteFile, ...]


#: The old name of :class:`StimulusFileList`.
Manifest = StimulusFileList


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
        data = parse_json(body, "the access service's error reply")
    except JsonDocumentError:
        return "", body.decode("utf-8", "replace")[:200]
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
            return parse_json(body, f"The access service's answer to {what}",
                              max_bytes=_MAX_REPLY_BYTES)
        except JsonDocumentError as exc:
            raise AccessServiceError(
                f"{exc.source} {exc.reason}: an unexpected answer (is {self.server_url} the "
                f"LAION-fMRI access service? Check {ENV_ACCESS_URL})."
            ) from None

    def manifest(self) -> StimulusFileList:
        """The public manifest (no authentication).

        Returns
        -------
        StimulusFileList

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
        return StimulusFileList(str(version), _parse_files(data.get("files"), "manifest"))

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


__all__ = [
    "AccessClient",
    "AccessDetails",
    "Grant",
    "Manifest",
    "RemoteFile",
    "StimulusFileList",
]
