"""``laion-fmri sample DIR``: write the synthetic sample dataset in bucket layout."""

from __future__ import annotations

import argparse
import time

from laion_fmri.sample import SCALES, make_sample_dataset, spec_for


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="write the synthetic sample dataset (bucket layout) into a folder",
        description="Write a deterministic synthetic dataset with the exact bucket key layout. "
                    "Use it as a local source (LAION_FMRI_SOURCE=DIR) or as a data directory. "
                    "Refuses a non-empty folder unless it holds a previous sample.",
    )
    p.add_argument("dir", metavar="DIR", help="target folder (created if missing)")
    p.add_argument("--scale", choices=SCALES, default="tiny",
                   help="tiny (tests), small (demos) or full-grid (143^3 grid, benchmarks)")
    p.add_argument("--trials", type=int, default=None, metavar="N",
                   help="trials per session (default: the scale's schedule; 256 for full-grid)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}.")
    try:
        spec = spec_for(args.scale, args.trials)
    except ValueError as exc:
        raise ValueError(f"--trials: {exc}") from exc
    start = time.perf_counter()
    root = make_sample_dataset(args.dir, scale=args.scale, seed=args.seed, n_trials=args.trials)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    counts = ", ".join(f"{s}: {spec.n_trials_in(spec.subjects[0], s)}" for s in spec.all_sessions)
    print(f"Wrote the {args.scale} sample dataset (seed {args.seed}) to {root}")
    print(f"  subjects {', '.join(spec.subjects)}; sessions {', '.join(spec.sessions)}"
          + (f" + held-out {', '.join(spec.held_out_sessions)}" if spec.held_out_sessions else ""))
    print(f"  grid {'x'.join(map(str, spec.grid_shape))}, {spec.n_brain_voxels} brain voxels; "
          f"trials per session ({spec.subjects[0]}) {counts}")
    print(f"  {size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")
    return 0


__all__ = [
    "register",
    "run",
]
