"""``laion-fmri demo``: the user journey on the embedded sample dataset."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="walk the whole user journey on the embedded sample dataset",
        description="Builds the sample dataset if absent, then configures, discovers, downloads, "
        "loads, aligns stimuli, splits, fits and plots, printing what a user would see. "
        "Your own configuration is left untouched.",
    )
    p.add_argument("--out", default="demo-output", help="folder for the demo data and figures")
    p.add_argument("--scale", default="tiny", choices=("tiny", "small"), help="sample size")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from laion_fmri._demo import run_demo

    run_demo(args.out, scale=args.scale)
    return 0


__all__ = [
    "register",
    "run",
]
