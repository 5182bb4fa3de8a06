"""A local folder holding the bucket's key layout (mirror, sample dataset)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from laion_fmri.errors import DataNotFoundError, SourceUnavailableError, UnsafeKeyError
from laion_fmri.layout import STATE_DIRNAME, check_key
from laion_fmri.stores.base import DEFAULT_CHUNK_SIZE, ObjectInfo, Store, documented_by, folder_prefix


class _LocalDownload:
    def __init__(
        self, path: Path, info: ObjectInfo, start: int, end: int | None, chunk_size: int
    ) -> None:
        self.info = info
        stop = info.size if end is None else min(end, info.size)
        ranged = 0 < start <= info.size or (end is not None and stop < info.size)
        self.start = start if ranged and start <= stop else 0
        self.end = stop if ranged else info.size
        self.status = 206 if ranged else 200
        self._path = path
        self._chunk_size = chunk_size

    def __iter__(self) -> Iterator[bytes]:
        left = self.end - self.start
        with open(self._path, "rb") as fh:
            fh.seek(self.start)
            while left > 0 and (chunk := fh.read(min(self._chunk_size, left))):
                left -= len(chunk)
                yield chunk

    def __enter__(self) -> _LocalDownload:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _stat_info(key: str, st: os.stat_result) -> ObjectInfo:
    """``ObjectInfo`` of a local file (no ETag: local sources have none)."""
    return ObjectInfo(key, st.st_size, None, datetime.fromtimestamp(st.st_mtime, UTC))


def _is_engine_file(name: str) -> bool:
    from laion_fmri.download._paths import is_reserved_name

    return is_reserved_name(name)


@documented_by(Store)
class LocalStore:
    """A local folder holding the bucket's key layout (mirror, sample dataset).

    ETags are ``None``; sizes come from ``stat``. Keys that would resolve
    outside the folder (``..``, absolute paths, symlinks pointing out) are refused.

    Parameters
    ----------
    root : str or Path
        The folder.

    Examples
    --------
    >>> store = LocalStore("/data/laion_fmri")  # doctest: +SKIP
    >>> store.head("participants.tsv").size  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.url = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    def address(self, key: str) -> str:
        """Where one key lives, for messages (the file path).

        Parameters
        ----------
        key : str
            Object key.

        Returns
        -------
        str

        Examples
        --------
        >>> LocalStore("/data").address("README")
        '/data/README'
        """
        return str(self.root / key)

    def _path(self, key: str) -> Path:
        check_key(key)
        root = self.root.resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise UnsafeKeyError(f"Refusing key {key!r}: it resolves outside {root}.")
        return path

    def _level(self, prefix: str) -> tuple[str, Path]:
        """The folder key of ``prefix`` and its directory (for one-level listings)."""
        self._require_root()
        folder = folder_prefix(prefix)
        return folder, self._path(folder.rstrip("/")) if folder else self.root

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise SourceUnavailableError(
                f"The local source folder {self.root} does not exist; check "
                "LAION_FMRI_SOURCE or `laion-fmri config --source`."
            )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._require_root()
        folder = folder_prefix(prefix)
        start = self.root / folder if folder else self.root
        if folder:
            check_key(folder.rstrip("/"))
        if not start.is_dir():
            return
        yield from self._walk(start, folder)

    def _walk(self, base: Path, rel: str) -> Iterator[ObjectInfo]:
        """Files under ``base`` in key order (as S3 lists them), skipping engine state files."""
        with os.scandir(base) as it:
            # A folder sorts as "name/" so the order equals the full keys' order.
            entries = sorted(it, key=lambda e: e.name + ("/" if e.is_dir(follow_symlinks=False) else ""))
        for entry in entries:
            if not rel and entry.name == STATE_DIRNAME:
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), f"{rel}{entry.name}/")
            elif entry.is_file(follow_symlinks=False) and not _is_engine_file(entry.name):
                yield _stat_info(f"{rel}{entry.name}", entry.stat(follow_symlinks=False))

    def list_dirs(self, prefix: str = "") -> list[str]:
        folder, base = self._level(prefix)
        if not base.is_dir():
            return []
        return sorted(
            f"{folder}{e.name}/" for e in os.scandir(base)
            if e.is_dir(follow_symlinks=False) and not (not folder and e.name == STATE_DIRNAME)
        )

    def list_files(self, prefix: str = "") -> list[ObjectInfo]:
        folder, base = self._level(prefix)
        if not base.is_dir():
            return []
        out = []
        for e in os.scandir(base):
            if e.is_file(follow_symlinks=False) and not _is_engine_file(e.name):
                out.append(_stat_info(f"{folder}{e.name}", e.stat(follow_symlinks=False)))
        return sorted(out, key=lambda o: o.key)

    def head(self, key: str) -> ObjectInfo:
        self._require_root()
        path = self._path(key)
        if not path.is_file():
            raise DataNotFoundError(f"{key!r} does not exist in {self.url}.")
        return _stat_info(key, path.stat())

    def open(
        self, key: str, start: int = 0, if_match: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE, end: int | None = None,
    ) -> _LocalDownload:
        info = self.head(key)
        return _LocalDownload(self._path(key), info, start, end, chunk_size)


__all__ = ["LocalStore"]
