"""A subject's files on disk: paths from keys, and decoded small files kept while unchanged."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from laion_fmri import layout
from laion_fmri.errors import DataNotDownloadedError
from laion_fmri.vocab import download_hint

# Decoded small files (trial tables, ROI and noise-ceiling maps, headers) kept
# per subject; enough for every session and ROI of one subject.
_FILE_CACHE_ENTRIES = 256

_T = TypeVar("_T")


def file_stamp(path: Path) -> tuple[int, int, int, int]:
    """Identity of a file's current content: inode, size, mtime, ctime."""
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class SubjectFiles:
    """Where one subject's files are, and a memo of the small ones already decoded."""

    def __init__(self, root: Path, subject: str) -> None:
        self.root = root
        self.subject = subject
        self._memo: OrderedDict[tuple[str, str], tuple[tuple[int, ...], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        # Our own keys are safe; not resolving keeps symlinked files usable.
        return self.root / layout.local_relpath(key)

    def hint(self, session: str | None = None) -> str:
        return download_hint(self.subject, session)

    def require(self, key: str, what: str, session: str | None = None) -> Path:
        """The path of ``key``, or :class:`DataNotDownloadedError` naming the download call."""
        path = self.path(key)
        if not path.is_file():
            where = f"{self.subject} {session}" if session else self.subject
            raise DataNotDownloadedError(
                f"The {what} of {where} {'are' if what.endswith('s') else 'is'} not on disk "
                f"({path}). Download {'them' if what.endswith('s') else 'it'} with "
                f"`{self.hint(session)}`."
            )
        return path

    def cached(self, kind: str, path: Path, load: Callable[[Path], _T]) -> _T:
        """``load(path)``, reused while the file is unchanged.

        The value is shared between calls: callers must not modify it.
        """
        stamp = file_stamp(path)
        key = (kind, str(path))
        with self._lock:
            hit = self._memo.get(key)
            if hit is not None and hit[0] == stamp:
                self._memo.move_to_end(key)
                return hit[1]
        value = load(path)
        with self._lock:
            self._memo[key] = (stamp, value)
            while len(self._memo) > _FILE_CACHE_ENTRIES:
                self._memo.popitem(last=False)
        return value


__all__ = ["SubjectFiles", "file_stamp"]
