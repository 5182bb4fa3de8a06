"""The one reader of every JSON document this package parses.

Our own state files (config, cache sidecars, resume records, grants) and the
replies of the access service are small, flat JSON objects. :func:`parse_json`
reads one with three limits, so a damaged or crafted document can never crash a
command with ``RecursionError``/``AttributeError`` or make it allocate much:

* size: at most ``max_bytes`` are read (1 MiB by default);
* depth: containers nested deeper than ``max_depth`` are refused (checked
  without recursion);
* schema: the top level must be an object and each known key must have the
  declared type (``bool`` is not accepted where an ``int`` is expected).

Callers choose what a bad document means: :func:`read_state` returns ``None``
(a cache or resume record is rebuilt), :func:`read_settings` raises a one-line
error naming the file and the fix (config, grants).
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MAX_BYTES = 1 << 20
MAX_DEPTH = 16

# A key's expected type: a type, a tuple of types, or a predicate on the value.
FieldSpec = type | tuple[type, ...] | Callable[[Any], bool]
Schema = Mapping[str, FieldSpec]


class JsonDocumentError(ValueError):
    """A JSON document is unreadable, too large, too deep or of the wrong shape.

    Parameters
    ----------
    source : str
        The file path or a description of the reply (for messages).
    reason : str
        What is wrong, one line.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _describe(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _expected(spec: FieldSpec) -> str:
    if isinstance(spec, tuple):
        return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in spec)
    if isinstance(spec, type):
        return _TYPE_NAMES.get(spec, spec.__name__)
    return getattr(spec, "expected", "a valid value")


def _matches(value: object, spec: FieldSpec) -> bool:
    if isinstance(spec, (type, tuple)):
        types = spec if isinstance(spec, tuple) else (spec,)
        if isinstance(value, bool) and bool not in types:
            return False
        return isinstance(value, types)
    return bool(spec(value))


def depth_of(value: object) -> int:
    """Nesting depth of a parsed JSON value (scalars 0), computed without recursion.

    Parameters
    ----------
    value : object
        A value returned by :func:`json.loads`.

    Returns
    -------
    int

    Examples
    --------
    >>> depth_of({"a": [1, {"b": 2}]})
    3
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(
    data: bytes | str,
    source: str,
    schema: Schema | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> dict[str, Any]:
    """Parse a JSON object with size, depth and type limits.

    Parameters
    ----------
    data : bytes or str
        The document (UTF-8 when bytes).
    source : str
        Names the document in error messages (a path, or "the access service reply").
    schema : mapping, optional
        ``{key: type | tuple of types | predicate}`` for keys that, when present,
        must have that type. Other keys are kept unchecked.
    max_bytes : int
        Largest accepted document.
    max_depth : int
        Deepest accepted nesting (the top-level object counts 1).

    Returns
    -------
    dict
        The parsed object.

    Raises
    ------
    JsonDocumentError
        For anything else than a JSON object within the limits and the schema.

    Examples
    --------
    >>> parse_json(b'{"a": 1}', "x.json", {"a": int})
    {'a': 1}
    >>> parse_json(b'[]', "x.json")
    Traceback (most recent call last):
    ...
    laion_fmri._jsonio.JsonDocumentError: x.json: must hold a JSON object, found a list
    """
    if len(data) > max_bytes:
        raise JsonDocumentError(source, f"is {len(data):,} bytes, larger than the {max_bytes:,} allowed")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise JsonDocumentError(source, f"is nested deeper than {max_depth} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise JsonDocumentError(source, f"is not valid JSON ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(value, dict):
        raise JsonDocumentError(source, f"must hold a JSON object, found {_describe(value)}")
    if depth_of(value) > max_depth:
        raise JsonDocumentError(source, f"is nested deeper than {max_depth} levels")
    for key, spec in (schema or {}).items():
        if key in value and not _matches(value[key], spec):
            raise JsonDocumentError(
                source, f'"{key}" must be {_expected(spec)}, found {_describe(value[key])}'
            )
    return value


def read_json(
    path: str | os.PathLike[str],
    schema: Schema | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> dict[str, Any]:
    """Read and check a JSON object file (see :func:`parse_json`).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    schema : mapping, optional
        Key types, as for :func:`parse_json`.
    max_bytes, max_depth : int
        Limits, as for :func:`parse_json`.

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    JsonDocumentError
        If it is not a regular file, too large, or not a valid object.

    Examples
    --------
    >>> read_json("/nonexistent.json")
    Traceback (most recent call last):
    ...
    FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent.json'
    """
    path = Path(path)
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end
        raise JsonDocumentError(str(path), "is not a regular file")
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    return parse_json(data, str(path), schema, max_bytes=max_bytes, max_depth=max_depth)


def read_state(
    path: str | os.PathLike[str], schema: Schema | None = None, **limits: int
) -> dict[str, Any] | None:
    """Read a rebuildable state file (cache sidecar, resume record); ``None`` when missing or bad.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    schema : mapping, optional
        Key types, as for :func:`parse_json`.
    **limits : int
        ``max_bytes``/``max_depth`` overrides.

    Returns
    -------
    dict or None
        ``None`` tells the caller to ignore the file and rebuild it.

    Examples
    --------
    >>> read_state("/nonexistent.json") is None
    True
    """
    try:
        return read_json(path, schema, **limits)
    except (OSError, JsonDocumentError):
        return None


def read_settings(
    path: str | os.PathLike[str],
    schema: Schema | None,
    make_error: Callable[[str], Exception],
    fix: str,
    **limits: int,
) -> dict[str, Any]:
    """Read a settings file the user relies on (config, grant); ``{}`` when missing.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    schema : mapping or None
        Key types, as for :func:`parse_json`.
    make_error : callable
        Builds the exception to raise from the one-line message (e.g. ``ConfigError``).
    fix : str
        What the user should do, appended to the message.
    **limits : int
        ``max_bytes``/``max_depth`` overrides.

    Returns
    -------
    dict

    Raises
    ------
    Exception
        ``make_error(message)`` for an unreadable or malformed file.

    Examples
    --------
    >>> read_settings("/nonexistent.json", None, ValueError, "delete it")
    {}
    """
    try:
        return read_json(path, schema, **limits)
    except FileNotFoundError:
        return {}
    except JsonDocumentError as exc:
        raise make_error(f"The file {exc.source} {exc.reason}. {fix}") from None
    except OSError as exc:
        raise make_error(f"The file {path} cannot be read ({exc.strerror or exc}). {fix}") from None


def list_of(item: type, max_len: int = 64) -> Callable[[Any], bool]:
    """Predicate for a schema: a list of at most ``max_len`` items of type ``item``.

    Parameters
    ----------
    item : type
        Element type (``bool`` is never accepted for ``int``).
    max_len : int
        Longest accepted list.

    Returns
    -------
    callable

    Examples
    --------
    >>> list_of(int)([1, 2]), list_of(int)([True])
    (True, False)
    """

    def check(value: Any) -> bool:
        return (
            isinstance(value, list)
            and len(value) <= max_len
            and all(_matches(v, item) for v in value)
        )

    noun = _TYPE_NAMES.get(item, item.__name__).split(" ", 1)[-1]  # "an integer" -> "integer"
    check.expected = f"a list of at most {max_len} {noun}s"  # type: ignore[attr-defined]
    return check


def finite_number(value: Any) -> bool:
    """Predicate for a schema: a finite int or float (not ``bool``).

    Parameters
    ----------
    value : Any
        The value to test.

    Returns
    -------
    bool

    Examples
    --------
    >>> finite_number(1.5), finite_number(True)
    (True, False)
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


finite_number.expected = "a finite number"  # type: ignore[attr-defined]


__all__ = [
    "JsonDocumentError",
    "depth_of",
    "finite_number",
    "list_of",
    "parse_json",
    "read_json",
    "read_settings",
    "read_state",
]
