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

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from laion_fmri._access_client import (
    _DETAIL_FIELDS,
    AccessClient,
    AccessDetails,
    Grant,
    Manifest,
    RemoteFile,
    StimulusFileList,
    _field_problem,
)
from laion_fmri._access_grants import (  # noqa: F401 - re-exported constants
    ACCEPT_PROMPT,
    ACCEPT_WORDS,
    DATASET_VERSION,
    DEFAULT_ACCESS_URL,
    ENV_ACCESS_URL,
    ENV_REQUEST_ID,
    HTTP_TIMEOUT,
    MIN_PURPOSE_CHARS,
    REQUEST_ACCESS_HINT,
    TERMS_URL_PATH,
    access_url,
    auth_path,
    clear_grant,
    load_grant,
    save_grant,
    uses_access_service,
)
from laion_fmri.agreements import Agreement
from laion_fmri.errors import (
    LicenseNotAcceptedError,
)

# Documented (and pickled) under their historical public home.
for _moved in (AccessClient, AccessDetails, Grant, RemoteFile, StimulusFileList,):
    _moved.__module__ = __name__


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
    "StimulusFileList",
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



def terms_text(server_url: str | None = None) -> str:
    """The data-use agreement shown before any stimulus access."""
    return STIMULUS_TERMS.format(terms_url=access_url(server_url) + TERMS_URL_PATH)





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
