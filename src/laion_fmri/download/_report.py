"""What a download run reports: the :class:`DownloadReport`, per-file warnings and the progress display."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from laion_fmri.download.plan import format_bytes


class FileFailedWarning(UserWarning):
    """One file could not be fetched (also listed in ``DownloadReport.failed``).

    The command line silences it: it prints each failure once from the report.

    Examples
    --------
    >>> issubclass(FileFailedWarning, UserWarning)
    True
    """


@dataclass
class DownloadReport:
    """Outcome of a download.

    Attributes
    ----------
    downloaded : list of str
        Keys fetched in this run.
    skipped : list of str
        Keys already present and verified.
    failed : dict
        ``{key: reason}`` for keys that could not be fetched.
    held_out : list of str
        Keys of held-out sessions skipped up front.
    bytes : int
        Bytes received in this run.
    unverified : dict
        ``{key: reason}`` for files whose bytes could only be size-checked
        (the source's ETag is not a content hash and it sent no checksum).
    seconds : float
        Wall time.

    Examples
    --------
    >>> str(DownloadReport(downloaded=["a"], bytes=2048, seconds=0.5))
    'Downloaded 1 file(s) (2.0 kB) in 0.5 s; 0 already up to date.'
    """

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    held_out: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    unverified: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed

    def merge(self, other: DownloadReport) -> DownloadReport:
        """Add another report's counts to this one.

        Parameters
        ----------
        other : DownloadReport
            The report to add.

        Returns
        -------
        DownloadReport
            ``self``.
        """
        self.downloaded += other.downloaded
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.held_out += other.held_out
        self.bytes += other.bytes
        self.unverified.update(other.unverified)
        self.seconds += other.seconds
        return self

    def __str__(self) -> str:
        text = (
            f"Downloaded {len(self.downloaded)} file(s) ({format_bytes(self.bytes)}) "
            f"in {self.seconds:.1f} s; {len(self.skipped)} already up to date"
        )
        if self.held_out:
            text += f"; {len(self.held_out)} held-out skipped"
        if self.unverified:
            reasons = sorted(set(self.unverified.values()))
            text += (f"; {len(self.unverified)} size-checked only ({'; '.join(reasons)}: "
                     "no content check was possible)")
        if not self.failed:
            return text + "."
        lines = [f"{text}; {len(self.failed)} FAILED:"]
        lines += [f"  FAILED {key}: {reason}" for key, reason in sorted(self.failed.items())]
        return "\n".join(lines)


# --------------------------------------------------------------------------- progress
class _Progress:
    """One display for the whole job; silent when disabled or not a terminal."""

    def __init__(self, enabled: bool, n_files: int, total_bytes: int) -> None:
        self._bar: Any = None
        self._n_files = n_files
        self._done = 0
        if not enabled or n_files == 0:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        self._task = self._bar.add_task(self._label(), total=total_bytes)
        self._bar.start()

    def _label(self) -> str:
        return f"files {self._done}/{self._n_files}"

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def file_done(self) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(self._task, description=self._label())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


__all__ = [
    "DownloadReport",
    "FileFailedWarning",
]
