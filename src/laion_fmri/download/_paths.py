"""Safe local paths for a download plan (pure, except :func:`open_state_file`).

* Two keys never share one local file: keys whose local paths are equal after
  label de-hyphenation, case folding or Unicode normalisation are refused
  together, naming both.
* The engine's own names are reserved: a key ending in ``.part`` or
  ``.part.json`` could alias another key's partial file or resume record.
* A name that would be too long once the ``.part.json`` suffix is added is
  refused before anything is written.
* State files are opened without following symlinks.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from laion_fmri import layout
from laion_fmri._jsonio import JsonDocumentError, parse_json
from laion_fmri.errors import UnsafeKeyError
from laion_fmri.stores.base import ObjectInfo

#: Suffixes of the engine's own files beside a target.
RESERVED_SUFFIXES: tuple[str, ...] = (".part", ".part.json")
_LONGEST_SUFFIX = max(len(s) for s in RESERVED_SUFFIXES)
_NAME_MAX = 255
#: A resume record larger than this is not ours.
_STATE_MAX_BYTES = 1024 * 1024


def is_reserved_name(name: str) -> bool:
    """True when a file name ends in one of the engine's suffixes.

    Parameters
    ----------
    name : str
        A file name (last path part).

    Returns
    -------
    bool

    Examples
    --------
    >>> is_reserved_name("x.nii.gz.part"), is_reserved_name("x.nii.gz")
    (True, False)
    """
    return name.endswith(RESERVED_SUFFIXES)


def collision_key(relpath: str) -> str:
    """The form under which two local paths would be the same file somewhere.

    Case-insensitive file systems (macOS, Windows) and Unicode-normalising
    ones (macOS) map different keys to one file: compare case-folded NFC.

    Parameters
    ----------
    relpath : str
        ``/``-separated local path.

    Returns
    -------
    str

    Examples
    --------
    >>> collision_key("A/B.txt") == collision_key("a/b.TXT")
    True
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", relpath)).casefold()


def check_local_names(objects: Sequence[ObjectInfo]) -> tuple[list[ObjectInfo], dict[str, str]]:
    """Split a plan into keys that map to distinct, safe local files and refusals.

    Parameters
    ----------
    objects : sequence of ObjectInfo
        Planned objects (deduplicated by key).

    Returns
    -------
    tuple
        ``(safe objects, {key: reason})``.

    Examples
    --------
    >>> ok, bad = check_local_names([ObjectInfo("a/X.txt", 1, None, None),
    ...                              ObjectInfo("a/x.txt", 1, None, None)])
    >>> ok, sorted(bad)
    ([], ['a/X.txt', 'a/x.txt'])
    """
    refused: dict[str, str] = {}
    owners: dict[str, str] = {}
    safe: list[ObjectInfo] = []
    for obj in objects:
        try:
            rel = layout.local_relpath(obj.key)
        except UnsafeKeyError as exc:
            refused[obj.key] = str(exc)
            continue
        name = rel.rsplit("/", 1)[-1]
        if is_reserved_name(name):
            refused[obj.key] = (
                f"Refusing key {obj.key!r}: its name ends in {', '.join(RESERVED_SUFFIXES)}, "
                "which the downloader reserves for partial files. Nothing was written for it."
            )
            continue
        if len(name.encode("utf-8")) + _LONGEST_SUFFIX > _NAME_MAX:
            refused[obj.key] = (
                f"Refusing key {obj.key[:120]!r}: its file name is too long to download safely "
                f"(over {_NAME_MAX - _LONGEST_SUFFIX} bytes). Nothing was written for it."
            )
            continue
        # A file and a folder of the same local name also collide ("a" vs "a/b").
        folded = collision_key(rel)
        other = owners.get(folded)
        if other is not None:
            reason = (
                f"Refusing keys {other!r} and {obj.key!r}: both would be saved as the same "
                f"local file {rel!r} (names differ only in case, Unicode form or label "
                "hyphens). Neither was written; report this to the dataset maintainers."
            )
            refused[other] = refused[obj.key] = reason
            continue
        parts = folded.split("/")
        folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
        other = next((owners[f] for f in [*folders, folded + "/"] if f in owners), None)
        owners[folded] = obj.key
        for folder in folders:
            owners.setdefault(folder + "/", obj.key)
        if other is not None and other != obj.key:
            refused[obj.key] = refused[other] = (
                f"Refusing keys {other!r} and {obj.key!r}: {rel!r} would be both a file and "
                "a folder. Neither was written."
            )
            continue
        safe.append(obj)
    return [o for o in safe if o.key not in refused], refused


def open_state_file(path: Path, mode: str) -> Any:
    """Open a state file (resume record) without following a symlink at ``path``.

    Parameters
    ----------
    path : Path
        The file.
    mode : {"r", "w"}
        Read text or (over)write text.

    Returns
    -------
    file object

    Raises
    ------
    OSError
        ``ELOOP`` when ``path`` is a symlink.
    """
    flags = os.O_RDONLY if mode == "r" else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return os.fdopen(fd, mode, encoding="utf-8")


#: Field types of a ``.part.json`` resume record (checked where present).
_STATE_SCHEMA = {"key": str, "etag": (str, type(None)), "size": int, "ranges": list, "done": dict}


def read_state(path: Path) -> dict[str, Any] | None:
    """A resume record as a dict, or ``None`` when absent, a symlink, too big, too deep or malformed.

    Read with the one bounded JSON reader (:func:`laion_fmri._jsonio.parse_json`);
    a record that is not an object of the expected field types is ignored.

    Parameters
    ----------
    path : Path
        The ``.part.json`` file.

    Returns
    -------
    dict or None
    """
    try:
        with open_state_file(path, "r") as fh:
            text = fh.read(_STATE_MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return parse_json(text, str(path), _STATE_SCHEMA, max_bytes=_STATE_MAX_BYTES)
    except JsonDocumentError:
        return None  # ignored: the transfer starts over and writes a new record


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Write a resume record (never through a symlink).

    Parameters
    ----------
    path : Path
        The ``.part.json`` file.
    data : dict
        JSON-serialisable record.
    """
    with open_state_file(path, "w") as fh:
        fh.write(json.dumps(data, separators=(",", ":")))


__all__ = [
    "RESERVED_SUFFIXES",
    "check_local_names",
    "collision_key",
    "is_reserved_name",
    "open_state_file",
    "read_state",
    "write_state",
]
