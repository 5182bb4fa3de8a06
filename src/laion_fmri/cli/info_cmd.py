"""``laion-fmri info``: what the dataset holds and what is already local."""

from __future__ import annotations

import argparse

from laion_fmri import discovery, layout


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info", help="summarise the dataset (subjects, sessions, ROIs, sizes, local state)",
    )
    p.add_argument("--subject", help="list this subject's ROIs per category")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.subject is None:
        discovery.describe()
        return 0
    sub = layout.normalize_subject(args.subject)
    sessions = discovery.get_sessions(sub, include_held_out=True)
    shown = [s + (" (held out)" if layout.is_held_out(s) else "") for s in sessions]
    print(f"{sub} sessions ({len(sessions)}): {', '.join(shown)}")
    print(f"{sub} ROIs by category:")
    for category in discovery.get_categories(sub):
        print(f"  {category}: {', '.join(discovery.get_rois(sub, category=category))}")
    return 0


__all__ = [
    "register",
    "run",
]
