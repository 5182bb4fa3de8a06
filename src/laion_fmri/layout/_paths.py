"""Keys to local paths (refusing keys that escape the data directory) and the package state paths."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from laion_fmri.errors import UnsafeKeyError
from laion_fmri.layout._constants import STATE_DIRNAME
from laion_fmri.vocab import normalize_roi_label

_F = TypeVar("_F", bound=Callable[..., object])


_LABEL_TOKEN_RE = re.compile(r"(?<=label-)([A-Za-z0-9-]+?)(?=[_.]|$)")
MAX_KEY_LENGTH = 1024
MAX_NAME_LENGTH = 255


def bidsify(key: str) -> str:
    """Remove hyphens inside ``label-<value>`` tokens of the file name (idempotent).

    Only the last path part changes, so folders keep their bucket names.

    Parameters
    ----------
    key : str
        ``/``-separated bucket key.

    Returns
    -------
    str
        The key with de-hyphenated ``label-`` values.

    Examples
    --------
    >>> bidsify("x/sub-03_space-T1w_res-1pt8_label-pSTS-faces_mask.nii.gz")
    'x/sub-03_space-T1w_res-1pt8_label-pSTSfaces_mask.nii.gz'
    """
    head, sep, name = key.rpartition("/")
    name = _LABEL_TOKEN_RE.sub(lambda m: normalize_roi_label(m.group(1)), name)
    return head + sep + name


def check_key(key: str) -> str:
    """Validate that a remote key is a safe relative path; return it unchanged.

    Parameters
    ----------
    key : str
        Key as listed by the remote store.

    Returns
    -------
    str
        ``key`` itself.

    Raises
    ------
    UnsafeKeyError
        For empty or non-text keys, absolute paths, ``..``/``.`` parts,
        backslashes, NULs, control characters, empty parts or over-long names.

    Examples
    --------
    >>> check_key("stimuli/task-images_desc-captions.csv")
    'stimuli/task-images_desc-captions.csv'
    >>> check_key("../etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    laion_fmri.errors.UnsafeKeyError: Refusing remote key '../etc/passwd': ...
    """
    if not isinstance(key, str) or not key:
        raise UnsafeKeyError(f"Refusing empty or non-text key {key!r}.")
    reason = None
    if len(key) > MAX_KEY_LENGTH:
        reason = "it is too long"
    elif "\\" in key:
        reason = "it contains a backslash"
    elif any(ord(c) < 32 or ord(c) == 127 for c in key):
        reason = "it contains a control character"
    elif key.startswith("/") or re.match(r"^[A-Za-z]:", key):
        reason = "it is an absolute path"
    else:
        for part in key.split("/"):
            if part in ("", ".", ".."):
                reason = "it has an empty, '.' or '..' part"
                break
            if len(part.encode("utf-8")) > MAX_NAME_LENGTH:
                reason = "a name in it is too long"
                break
    if reason:
        raise UnsafeKeyError(
            f"Refusing remote key {key[:200]!r}: {reason}, so it could escape the data "
            "directory. Nothing was written for it."
        )
    return key


def local_relpath(key: str) -> str:
    """Relative local path (``/``-separated) for a remote key, after safety checks.

    Parameters
    ----------
    key : str
        Remote key.

    Returns
    -------
    str
        :func:`bidsify` of the key.

    Raises
    ------
    UnsafeKeyError
        If the key is not a safe relative path (see :func:`check_key`).

    Examples
    --------
    >>> local_relpath("derivatives/rois/sub-03/face/sub-03_space-T1w_res-1pt8_label-FFA-1_mask.nii.gz")
    'derivatives/rois/sub-03/face/sub-03_space-T1w_res-1pt8_label-FFA1_mask.nii.gz'
    """
    return bidsify(check_key(key))


def local_path(data_dir: str | Path, key: str) -> Path:
    """Local path of a remote key under ``data_dir``, guaranteed to stay inside it.

    Parameters
    ----------
    data_dir : str or Path
        The local data directory (need not exist).
    key : str
        Remote key.

    Returns
    -------
    Path
        Absolute, resolved path of the (bidsified) key under ``data_dir``.

    Raises
    ------
    UnsafeKeyError
        If the key is unsafe or could resolve outside ``data_dir`` (e.g.
        through a symlink).

    Examples
    --------
    >>> local_path("/data", "participants.tsv")  # doctest: +SKIP
    PosixPath('/data/participants.tsv')
    >>> local_path(".", "participants.tsv").name
    'participants.tsv'
    """
    root = Path(data_dir).resolve()
    path = (root / local_relpath(key)).resolve()
    if root != path and root not in path.parents:
        raise UnsafeKeyError(f"Refusing key {key!r}: it resolves outside {root}.")
    return path


# --------------------------------------------------------------------------- package state
#: Files and folders of the package state under ``<data_dir>/.laion_fmri/``.
STATE_FILES: dict[str, tuple[str, str]] = {
    "manifest": ("manifest.sqlite", "The local download manifest (SQLite)"),
    "cache": ("cache", "Folder of the decoded-betas cache"),
    "license": ("license_accepted", "Marker: the CC0 dataset license notice was accepted"),
    "stimulus_terms": ("stimuli_terms_accepted",
                       "Marker: the stimulus data-use agreement was accepted (sample/local sources)"),
    "lock": ("download.lock", "Lock file serialising downloads into one data directory"),
}


def state_dir(data_dir: str | Path) -> Path:
    """Folder of the package state: manifest, cache, license markers, locks.

    Parameters
    ----------
    data_dir : str or Path
        The local data directory.

    Returns
    -------
    Path
        ``<data_dir>/.laion_fmri``.

    Examples
    --------
    >>> state_dir("/data").as_posix()
    '/data/.laion_fmri'
    """
    return Path(data_dir) / STATE_DIRNAME


def state_path(data_dir: str | Path, name: str) -> Path:
    """Path of one entry of :data:`STATE_FILES` under :func:`state_dir`.

    Parameters
    ----------
    data_dir : str or Path
        The local data directory.
    name : str
        A key of :data:`STATE_FILES`, e.g. ``"manifest"``.

    Returns
    -------
    Path

    Examples
    --------
    >>> state_path("/data", "lock").as_posix()
    '/data/.laion_fmri/download.lock'
    """
    return state_dir(data_dir) / STATE_FILES[name][0]


def _state_doc(name: str) -> Callable[[_F], _F]:
    filename, summary = STATE_FILES[name]

    def decorate(func: _F) -> _F:
        doc = (
            f"{summary}.\n\nParameters\n----------\ndata_dir : str or Path\n"
            f"    The local data directory.\n\nReturns\n-------\nPath\n"
            f"    ``<data_dir>/{STATE_DIRNAME}/{filename}``.\n\nExamples\n--------\n"
            f'>>> {func.__name__}("/data").name\n{filename!r}\n'
        )
        func.__doc__ = textwrap.indent(doc, "    ").lstrip()
        return func

    return decorate


@_state_doc("manifest")
def manifest_path(data_dir: str | Path) -> Path:
    return state_path(data_dir, "manifest")


@_state_doc("cache")
def cache_dir(data_dir: str | Path) -> Path:
    return state_path(data_dir, "cache")


@_state_doc("license")
def license_marker(data_dir: str | Path) -> Path:
    return state_path(data_dir, "license")


@_state_doc("stimulus_terms")
def stimulus_terms_marker(data_dir: str | Path) -> Path:
    return state_path(data_dir, "stimulus_terms")


@_state_doc("lock")
def lock_path(data_dir: str | Path) -> Path:
    return state_path(data_dir, "lock")


def partial_path(final: Path) -> Path:
    """Temporary name beside a target while it downloads.

    Parameters
    ----------
    final : Path
        The target file.

    Returns
    -------
    Path
        ``<final>.part`` in the same folder.

    Examples
    --------
    >>> partial_path(Path("/d/x.nii.gz")).name
    'x.nii.gz.part'
    """
    return final.with_name(final.name + ".part")


def partial_state_path(final: Path) -> Path:
    """Resume state of a partial download beside its target.

    Parameters
    ----------
    final : Path
        The target file.

    Returns
    -------
    Path
        ``<final>.part.json`` in the same folder.

    Examples
    --------
    >>> partial_state_path(Path("/d/x.nii.gz")).name
    'x.nii.gz.part.json'
    """
    return final.with_name(final.name + ".part.json")


__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "STATE_FILES",
    "bidsify",
    "cache_dir",
    "check_key",
    "license_marker",
    "local_path",
    "local_relpath",
    "lock_path",
    "manifest_path",
    "partial_path",
    "partial_state_path",
    "state_dir",
    "state_path",
    "stimulus_terms_marker",
]
