"""The one JSON reader: size, depth and schema limits, and what callers make of a bad file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from laion_fmri._jsonio import (
    JsonDocumentError,
    depth_of,
    finite_number,
    list_of,
    parse_json,
    read_json,
    read_settings,
    read_state,
)
from laion_fmri.errors import ConfigError


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 600_000 + b"]" * 600_000, "larger than"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'{"a":' * 20 + b"1" + b"}" * 20, "nested deeper"),
        (b"[1, 2]", "found a list"),
        (b"null", "found null"),
        (b'"text"', "found a string"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": Infinity}', "not valid JSON"),
        (b'{"a": 1', "not valid JSON"),
        (b"", "not valid JSON"),
    ],
    ids=["too_large", "deep_list", "deep_object", "list", "null", "string", "not_utf8", "nan",
         "infinity", "truncated", "empty"],
)
def test_bad_documents_raise_one_error_type(data: bytes, reason: str) -> None:
    limit = sys.getrecursionlimit()
    with pytest.raises(JsonDocumentError) as info:
        parse_json(data, "state.json")
    assert reason in str(info.value) and str(info.value).startswith("state.json: ")
    assert sys.getrecursionlimit() == limit


def test_depth_is_computed_without_recursion() -> None:
    deep: list = []
    for _ in range(50_000):
        deep = [deep]
    assert depth_of(deep) == 50_001
    assert depth_of({"a": {"b": [1, 2, {"c": None}]}}) == 4
    assert depth_of(3) == 0


def test_schema_types_are_exact() -> None:
    schema = {"n": int, "s": str, "xs": list_of(int, max_len=2), "f": finite_number, "o": (str, type(None))}
    ok = parse_json(b'{"n": 1, "s": "a", "xs": [1, 2], "f": 1.5, "o": null, "extra": [[]]}', "x", schema)
    assert ok["n"] == 1 and ok["extra"] == [[]]
    for bad, message in [
        (b'{"n": true}', '"n" must be an integer, found true or false'),
        (b'{"n": 1.0}', '"n" must be an integer, found a number'),
        (b'{"s": 7}', '"s" must be a string, found an integer'),
        (b'{"xs": [1, 2, 3]}', '"xs" must be a list of at most 2 integers'),
        (b'{"xs": [true]}', '"xs" must be a list of at most 2 integers'),
        (b'{"f": 1e999}', '"f" must be a finite number'),
        (b'{"o": ["a"]}', '"o" must be a string or null, found a list'),
    ]:
        with pytest.raises(JsonDocumentError, match="x: ") as info:
            parse_json(bad, "x", schema)
        assert message in str(info.value)


def test_read_json_limits_what_it_reads(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.write(b'{"a": "')
        fh.seek(50 << 20)
        fh.write(b'"}')  # 50 MB sparse file: only max_bytes + 1 are read
    with pytest.raises(JsonDocumentError, match="larger than"):
        read_json(big)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(JsonDocumentError, match="not a regular file"):
        read_json(fifo)  # would block forever if opened
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")


def test_state_files_are_ignored_settings_files_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    assert read_state(path) is None
    path.write_bytes(b"[" * 10_000 + b"]" * 10_000)
    assert read_state(path) is None
    assert read_settings(tmp_path / "missing.json", None, ConfigError, "Fix it.") == {}
    with pytest.raises(ConfigError) as info:
        read_settings(path, None, ConfigError, "Delete it.")
    text = str(info.value)
    assert text.startswith(f"The file {path} is nested deeper") and text.endswith("Delete it.")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    path.write_text('{"k": 1}')
    assert read_state(path, {"k": int}) == {"k": 1}
    assert read_state(path, {"k": str}) is None
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ConfigError, match="not a regular file"):
        read_settings(tmp_path / "dir.json", None, ConfigError, "Fix it.")
