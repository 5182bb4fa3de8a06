"""Which sessions of a subject are on disk, and what a ``session=`` argument names."""

from __future__ import annotations

import numpy as np

from laion_fmri import layout
from laion_fmri.errors import DataNotDownloadedError, SessionNotFoundError
from laion_fmri.subject._files import SubjectFiles
from laion_fmri.vocab import suggest


class Sessions:
    """Session listing and ``session=`` argument handling of one subject."""

    def __init__(self, files: SubjectFiles) -> None:
        self._files = files

    @property
    def subject(self) -> str:
        return self._files.subject

    def on_disk(self) -> list[str]:
        """Sessions with any file on disk (a beta-less session still has NC/trials)."""
        base = self._files.root / layout.subject_glm_prefix(self._files.subject)
        if not base.is_dir():
            return []
        out = []
        for child in base.glob("ses-*"):
            try:
                session = layout.normalize_session(child.name)
            except SessionNotFoundError:
                continue
            if session == child.name and child.is_dir():
                out.append(session)
        return sorted(out)

    def with_betas(self) -> list[str]:
        """Sessions whose beta file is on disk, sorted."""
        subject = self._files.subject
        return [
            s for s in self.on_disk() if self._files.path(layout.betas_key(subject, s)).is_file()
        ]

    def _check(self, session: object, available: list[str]) -> str:
        if isinstance(session, np.integer):
            session = int(session)
        try:
            name = layout.normalize_session(session)
        except SessionNotFoundError:
            name = None
        if name is not None and name in available:
            return name
        listing = ", ".join(available) if available else "none"
        raise SessionNotFoundError(
            f"Session {session!r} is not available for {self._files.subject}."
            f"{suggest(session, available)} Sessions on disk: {listing}. Download more with "
            f"`{self._files.hint('ses-NN')}`."
        )

    def resolve(self, session: object) -> tuple[list[str], bool]:
        """``(sessions, single)`` for a ``session=`` argument (see ``Subject.resolve_sessions``)."""
        available = self.on_disk()
        if session is None or (isinstance(session, (list, tuple, str)) and len(session) == 0):
            raise ValueError(
                f"session is required: one of {available}, a list of them, or 'all'."
            )
        if isinstance(session, str) and session == "all":
            available = self.with_betas()
            if not available:
                raise DataNotDownloadedError(
                    f"No beta sessions of {self._files.subject} are on disk in "
                    f"{self._files.root}. Download them with `{self._files.hint()}`."
                )
            return available, False
        if isinstance(session, (list, tuple)):
            names = [self._check(s, available) for s in session]
            return list(dict.fromkeys(names)), False
        return [self._check(session, available)], True


__all__ = ["Sessions"]
