"""The local download manifest: what was fetched, verified, and when.

A small SQLite file (``layout.manifest_path``) with one row per key:
``key, path, size, etag, md5, sha256, mtime_ns, verified_at, part_size,
checksum, content``. ``mtime_ns`` and ``size`` are the local file's ``stat``
at verification, so a re-run can tell "verified and untouched since" from
"changed on disk" without reading the file. ``content`` names the rule the
bytes were checked with (``md5``, ``multipart`` with its ``part_size``,
``checksum``, ``sha256``, ``local`` for a source without ETags, or ``size``
when no content check was possible), so ``verify`` re-hashes with the same
rule. ``checksum`` (``algorithm:base64``) holds the server's full-object
checksum, else the CRC64NVME of the bytes as written, so later damage on disk
is caught either way. ``path`` is informational only: readers derive the
local path from the key.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from laion_fmri import layout
from laion_fmri.errors import DownloadError

_COLUMNS = ("key", "path", "size", "etag", "md5", "sha256", "mtime_ns", "verified_at",
            "part_size", "checksum", "content")
_ADDED_COLUMNS = {"part_size": "INTEGER", "checksum": "TEXT", "content": "TEXT"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    key TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT,
    md5 TEXT,
    sha256 TEXT,
    mtime_ns INTEGER NOT NULL,
    verified_at REAL NOT NULL
)
"""


@contextlib.contextmanager
def _db_errors(path: Path, what: str) -> Iterator[None]:
    """Turn SQLite failures (disk full, I/O error, locked) into a one-line DownloadError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise DownloadError(
            f"Cannot {what} in the download manifest {path}: {exc}. Check free space and "
            "permissions of the data directory, then run the download again."
        ) from exc


class Manifest:
    """Read and write the manifest of one data directory (thread-safe).

    Parameters
    ----------
    data_dir : str or Path
        The data directory.
    readonly : bool
        Open without creating or writing anything (``verify`` on read-only
        media); a missing manifest reads as empty.

    Examples
    --------
    >>> m = Manifest("/tmp/data")  # doctest: +SKIP
    >>> m.get("participants.tsv")["size"]  # doctest: +SKIP
    """

    def __init__(self, data_dir: str | Path, readonly: bool = False) -> None:
        self.path = layout.manifest_path(data_dir)
        self._lock = threading.Lock()
        if readonly:
            self._db = self._connect_readonly()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # disk full, locked, unwritable
                raise DownloadError(
                    f"Cannot open the download manifest {self.path}: {exc}. Check free space "
                    "and permissions of the data directory, then run the download again."
                ) from exc
            # Not a database (damaged): the manifest only caches verification, so
            # set it aside and start afresh; files on disk get re-checked by hash.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time_ns()}")
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            warnings.warn(
                f"The download manifest {self.path} was damaged ({exc}); moved it to {aside.name} "
                "and started a new one. Present files are re-verified by checksum.",
                UserWarning, stacklevel=2,
            )
            with _db_errors(self.path, "open the manifest"):
                self._db = self._connect()

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        try:
            if not self.path.is_file():
                raise sqlite3.OperationalError("no manifest")
            db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            db.execute("SELECT 1 FROM files LIMIT 1")
        except sqlite3.DatabaseError:
            db = sqlite3.connect(":memory:", check_same_thread=False)
            db.execute(_SCHEMA)
            for name, kind in _ADDED_COLUMNS.items():
                db.execute(f"ALTER TABLE files ADD COLUMN {name} {kind}")
            return db
        have = {row[1] for row in db.execute("PRAGMA table_info(files)")}
        if not set(_ADDED_COLUMNS) <= have:  # an older manifest: read it through a view
            mem = sqlite3.connect(":memory:", check_same_thread=False)
            mem.execute(_SCHEMA)
            for name, kind in _ADDED_COLUMNS.items():
                mem.execute(f"ALTER TABLE files ADD COLUMN {name} {kind}")
            old = [c for c in _COLUMNS if c in have]
            rows = db.execute(f"SELECT {','.join(old)} FROM files").fetchall()
            mem.executemany(f"INSERT INTO files ({','.join(old)}) VALUES ({','.join('?' * len(old))})",
                            rows)
            db.close()
            return mem
        return db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(files)")}
            for name, kind in _ADDED_COLUMNS.items():
                if name not in have:  # a manifest written by an older version
                    db.execute(f"ALTER TABLE files ADD COLUMN {name} {kind}")
            db.commit()
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, key: str) -> dict[str, Any] | None:
        """The record of one key.

        Parameters
        ----------
        key : str
            Object key.

        Returns
        -------
        dict or None
            Column -> value, or ``None`` when the key is not recorded.
        """
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Records of several keys.

        Parameters
        ----------
        keys : iterable of str
            Object keys.

        Returns
        -------
        dict
            ``{key: record}``; keys without a record are absent.
        """
        keys = list(keys)
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT {','.join(_COLUMNS)} FROM files WHERE key IN ({marks})", part
                ).fetchall()
                out.update({row[0]: dict(zip(_COLUMNS, row, strict=True)) for row in rows})
        return out

    def records(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        """Every record whose key starts with ``prefix``, sorted by key.

        Parameters
        ----------
        prefix : str
            Key prefix (``""`` for all).

        Yields
        ------
        dict
            One record per key.
        """
        with self._lock:
            rows = self._db.execute(
                f"SELECT {','.join(_COLUMNS)} FROM files WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            ).fetchall()
        for row in rows:
            yield dict(zip(_COLUMNS, row, strict=True))

    def put(
        self, key: str, path: Path, size: int, etag: str | None, md5: str | None,
        sha256: str | None, mtime_ns: int, *, part_size: int | None = None,
        checksum: str | None = None, content: str | None = None,
    ) -> None:
        """Record (or replace) a verified file.

        Parameters
        ----------
        key : str
            Object key.
        path : Path
            Local path relative to the data directory.
        size : int
            Size in bytes.
        etag : str or None
            The source's ETag of the object.
        md5, sha256 : str or None
            Hex digests of the bytes on disk.
        mtime_ns : int
            ``st_mtime_ns`` of the file after the rename.
        part_size : int, optional
            Upload part size of a multipart object (its ETag is re-computable).
        checksum : str, optional
            ``algorithm:base64`` full-object checksum the server sent.
        content : str, optional
            The rule the bytes were checked with (``md5``, ``multipart``,
            ``checksum``, ``sha256``; ``size`` when only the size was).
        """
        with self._lock, _db_errors(self.path, f"record {key!r}"):
            self._db.execute(
                f"INSERT OR REPLACE INTO files ({','.join(_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (key, str(path), size, etag, md5, sha256, mtime_ns, time.time(), part_size,
                 checksum, content),
            )
            self._db.commit()

    def delete(self, key: str) -> None:
        """Forget a key.

        Parameters
        ----------
        key : str
            Object key.
        """
        with self._lock, _db_errors(self.path, f"forget {key!r}"):
            self._db.execute("DELETE FROM files WHERE key = ?", (key,))
            self._db.commit()


__all__ = ["Manifest"]
