"""``verify``: re-check downloaded files against the manifest, optionally repairing them."""

from __future__ import annotations

import contextlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laion_fmri import layout
from laion_fmri.download._common import _data_dir
from laion_fmri.download._content import OPAQUE_ETAG, ContentRule, digest_file, mismatch
from laion_fmri.download.manifest import Manifest
from laion_fmri.download.plan import (
    validate_n_jobs,
)
from laion_fmri.download.transfer import (
    data_dir_lock,
    fetch_objects,
)
from laion_fmri.errors import (
    AccessDeniedError,
    DataNotFoundError,
    SourceUnavailableError,
    UnsafeKeyError,
)
from laion_fmri.stores import ObjectInfo, open_store


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`.

    Parameters
    ----------
    ok, missing, truncated, altered, repaired : list of str
        Initial key lists.
    failed : dict
        Initial failures.
    nothing_recorded : str, optional
        Set (to advice) when the manifest has no record for the scope.

    Attributes
    ----------
    ok : list of str
        Keys whose bytes match the manifest.
    missing, truncated, altered : list of str
        Keys absent, shorter than recorded, or with other bytes.
    repaired : list of str
        Keys fetched again (``repair=True``).
    failed : dict
        ``{key: reason}`` for repairs that failed.
    nothing_recorded : str or None
        What to do when the manifest held nothing to check (files copied in,
        or a damaged manifest set aside); ``None`` otherwise.
    size_only : list of str
        Keys among ``ok`` whose source offered no content hash: only their size
        could be checked.
    read_only : bool
        The data directory was read-only: checked without a lock, not repairable.

    Examples
    --------
    >>> str(VerifyReport(ok=["a", "b"]))
    'Verified 2 file(s): 2 ok, 0 missing, 0 truncated, 0 altered.'
    """

    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    nothing_recorded: str | None = None
    size_only: list[str] = field(default_factory=list)
    read_only: bool = False

    @property
    def problems(self) -> list[str]:
        """Every key that was missing, truncated or altered."""
        return self.missing + self.truncated + self.altered

    @property
    def clean(self) -> bool:
        """True when nothing is wrong now (all problems repaired, nothing failed)."""
        return not self.failed and set(self.problems) <= set(self.repaired)

    def __str__(self) -> str:
        if self.nothing_recorded:
            return self.nothing_recorded
        text = (
            f"Verified {len(self.ok) + len(self.problems)} file(s): {len(self.ok)} ok, "
            f"{len(self.missing)} missing, {len(self.truncated)} truncated, "
            f"{len(self.altered)} altered"
        )
        if self.repaired or self.failed:
            text += f"; {len(self.repaired)} repaired, {len(self.failed)} repair(s) failed"
        if self.size_only:
            text += (f"; {len(self.size_only)} size-checked only ({OPAQUE_ETAG}, so no content "
                     "check is possible)")
        if self.read_only:
            text += "; read-only data directory: checked without changes, cannot repair"
        return text + "."


def _record_rule(record: dict[str, Any]) -> ContentRule | None:
    """The rule a record's bytes were checked with at download (``None``: size only)."""
    content = record.get("content")
    etag = str(record.get("etag") or "").lower()
    checksum = None
    if record.get("checksum") and ":" in str(record["checksum"]):
        name, value = str(record["checksum"]).split(":", 1)
        checksum = (name, value)
    sha256 = str(record["sha256"]).lower() if record.get("sha256") else None
    multipart = None
    part_sizes: tuple[int, ...] = ()
    if content == "multipart" and record.get("part_size") and "-" in etag:
        multipart, part_sizes = etag.split("-", 1)[0], (int(record["part_size"]),)
    md5 = str(record["md5"]).lower() if record.get("md5") and content != "size" else None
    rule = ContentRule(md5=md5, multipart=multipart, part_sizes=part_sizes, checksum=checksum,
                       sha256=sha256)
    return rule if rule.content_checked else None


def _check_record(root: Path, record: dict[str, Any]) -> str:
    # The stored path is informational: the key alone says where the file is.
    path = layout.local_path(root, str(record["key"]))
    try:
        st = os.stat(path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    if not stat.S_ISREG(st.st_mode):
        return "altered"
    if st.st_size < int(record["size"]):
        return "truncated"
    if st.st_size != record["size"]:
        return "altered"
    rule = _record_rule(record)
    if rule is None:
        return "size_only"
    # The recorded checksum is the server's, or our CRC64NVME of the bytes as
    # written: either way it catches damage after the download.
    if mismatch(rule, digest_file(str(path), rule)):
        return "altered"
    return "size_only" if record.get("content") == "size" else "ok"


def _writable(root: Path) -> bool:
    state = layout.state_dir(root)
    return os.access(root, os.W_OK) and (not state.exists() or os.access(state, os.W_OK))


def verify(
    subject: object | None = None,
    repair: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 4,
    progress: bool = True,
) -> VerifyReport:
    """Re-check downloaded files against the manifest; optionally re-fetch bad ones.

    Every file recorded in the manifest is re-hashed with the rule it was
    verified with at download: the MD5 of a single-part ETag, the MD5 of part
    MD5s of a multipart ETag (with the recorded part size), a full-object
    checksum the server sent, a published SHA-256. Files whose source offered
    no content hash are size-checked and listed as such. Local paths come from
    the keys, never from the stored paths. A read-only data directory is
    verified without a lock or writes (and cannot be repaired).

    Parameters
    ----------
    subject : str or int, optional
        Only this subject's files (all recorded files when ``None``).
    repair : bool
        Re-fetch missing, truncated or altered files.
    data_dir : str or Path, optional
        The data directory.
    n_jobs : int
        Parallel checks and transfers.
    progress : bool
        Progress display while repairing.

    Returns
    -------
    VerifyReport
        ``nothing_recorded`` holds advice when the manifest has no record
        for the scope; repairs that could not run (source unreachable, read-only
        data directory) are in ``failed`` with the reason.

    Raises
    ------
    SubjectNotFoundError
        For a malformed subject.

    Examples
    --------
    >>> print(verify("sub-03"))  # doctest: +SKIP
    Verified 18 file(s): 18 ok, 0 missing, 0 truncated, 0 altered.
    """
    root = _data_dir(data_dir).resolve()
    sub = layout.normalize_subject(subject) if subject is not None else None
    report = VerifyReport()
    writable = _writable(root)
    lock = data_dir_lock(root) if writable else contextlib.nullcontext()
    with lock, Manifest(root, readonly=not writable) as manifest:
        records = [r for r in manifest.records()
                   if sub is None or layout.subject_of(str(r["key"])) == sub]
    if not records:
        report.nothing_recorded = (
            f"Nothing to verify: the manifest of {root} records no file"
            f"{' of ' + sub if sub else ''}, so there is nothing to compare against. "
            f"`laion-fmri download --subject {sub or 'S'}` re-hashes files already "
            "present and registers them (only missing or different files are fetched)."
        )
        return report

    def check(record: dict[str, Any]) -> str:
        try:
            return _check_record(root, record)
        except UnsafeKeyError as exc:
            report.failed[str(record["key"])] = str(exc)
            return "unsafe"

    with ThreadPoolExecutor(max_workers=validate_n_jobs(n_jobs)) as pool:
        states = list(pool.map(check, records))
    for record, state in zip(records, states, strict=True):
        if state == "size_only":
            report.ok.append(record["key"])
            report.size_only.append(record["key"])
        elif state != "unsafe":
            getattr(report, state).append(record["key"])
    if not writable:
        report.read_only = True
    if repair and report.problems:
        if not writable:
            for key in report.problems:
                report.failed[key] = (f"not repaired: {root} is read-only; run verify --repair "
                                      "where the data directory is writable.")
            return report
        _repair(root, report, n_jobs, progress)
    return report


def _repair(root: Path, report: VerifyReport, n_jobs: int, progress: bool) -> None:
    # The local findings come first, whatever happens to the repairs.
    print(f"Local check: {report}")
    store = open_store()
    objects: list[ObjectInfo] = []
    for key in report.problems:
        try:
            objects.append(store.head(key))
        except (DataNotFoundError, AccessDeniedError, UnsafeKeyError) as exc:
            report.failed[key] = str(exc)
        except SourceUnavailableError as exc:
            # Unreachable: every remaining repair fails for the same reason;
            # the records stay, so the next verify still reports the files.
            for rest in report.problems:
                report.failed.setdefault(rest, f"not repaired: {exc}")
            return
    with data_dir_lock(root), Manifest(root) as manifest:
        for obj in objects:
            manifest.delete(obj.key)
            # A same-size altered file would otherwise pass the size check; the
            # path comes from the key (checked to stay inside the data dir).
            path = layout.local_path(root, obj.key)
            if path.is_file() or path.is_symlink():
                path.unlink()
    fetched = fetch_objects(objects, store, root, n_jobs=n_jobs, progress=progress)
    report.repaired = fetched.downloaded + fetched.skipped
    report.failed.update(fetched.failed)


__all__ = [
    "VerifyReport",
    "verify",
]
