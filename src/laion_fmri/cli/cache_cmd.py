"""``laion-fmri cache info|clear``: show and free the decoded-betas cache."""

from __future__ import annotations

import argparse
import errno
import sys

from laion_fmri import _cache as cache
from laion_fmri import layout
from laion_fmri.config import get_data_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cache`` sub-command."""
    parser = subparsers.add_parser(
        "cache",
        help="show or clear the decoded-betas cache",
        description="Show (info) or delete (clear) the masked float32 betas cache kept under "
        "<data_dir>/.laion_fmri/cache. It is rebuilt on the next whole-brain load.",
    )
    parser.add_argument("action", choices=("info", "clear"))
    parser.add_argument("--subject", help="only this subject (sub-03, 03 or 3)")
    parser.add_argument("--data-dir", help="data directory (default: the configured one)")
    parser.add_argument(
        "--verify", action="store_true", help="info: also check every file's full content hash"
    )
    parser.set_defaults(func=run)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    """Print the cache entries or delete them; return the exit code."""
    data_dir = get_data_dir(args.data_dir)
    subject = layout.normalize_subject(args.subject) if args.subject else None
    if args.action == "clear":
        try:
            freed = cache.clear(data_dir, subject)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            print(f"laion-fmri: error: {exc.strerror}.", file=sys.stderr)
            return 2
        scope = f" of {subject}" if subject else ""
        print(f"Cleared the betas cache{scope}: freed {_human(freed)}.")
        return 0
    entries = list(cache.list_entries(data_dir, subject))
    print(f"Betas cache: {cache.cache_root(data_dir)}")
    bad = 0
    for e in entries:
        shape = "x".join(map(str, e.shape)) if e.shape else "?"
        line = f"  {e.subject} {e.session}  {shape:>14}  {_human(e.size):>9}"
        if args.verify:
            ok = cache.verify(e.entry)
            bad += not ok
            line += "  ok" if ok else "  CORRUPT (run `laion-fmri cache clear`)"
        print(line)
    total = sum(e.size for e in entries)
    print(f"  {len(entries)} session(s), {_human(total)} in total.")
    return 1 if bad else 0


__all__ = [
    "register",
    "run",
]
