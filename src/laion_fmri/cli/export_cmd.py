"""``laion-fmri export``: all sessions of a subject as one voxel-major zarr array."""

from __future__ import annotations

import argparse

from laion_fmri.export import CODECS, DEFAULT_CODEC, DEFAULT_MEMORY_LIMIT, export_zarr, open_export
from laion_fmri.subject import load_subject

FORMATS = ("zarr",)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export",
        help="write all sessions of a subject as one (n_trials, n_voxels) zarr array",
        description="Write every downloaded session of a subject as one (n_trials, n_voxels) "
        "float32 zarr (v3) array chunked for column access (all trials x a block of voxels, "
        "raw float32 by default), with the trial table (trials.tsv), each column's brain voxel and the ROI "
        "columns. Read it with laion_fmri.export.open_export(OUT).read(roi=...).",
    )
    parser.add_argument("out", metavar="OUT", help="target folder (must not exist)")
    parser.add_argument("--subject", required=True, help="subject (sub-03, 03 or 3)")
    parser.add_argument("--format", choices=FORMATS, default="zarr", help="output format (zarr)")
    parser.add_argument("--roi", action="append", metavar="ROI",
                        help="only these voxels: ROI name, category or 'all' (repeat for a union)")
    parser.add_argument("--session", action="append", metavar="SES",
                        help="only these sessions (repeatable; default: every session on disk)")
    parser.add_argument("--mask-source", default=None,
                        help="brain-mask source (where this version supports it)")
    parser.add_argument("--codec", choices=CODECS, default=DEFAULT_CODEC,
                        help="none (raw float32, fastest reads; default), or blosc lz4 / zstd "
                             "(byte shuffle; betas shrink only ~7 / ~15 %%)")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_LIMIT >> 20,
                        help="MB of betas held at once while writing (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--data-dir", help="data directory (default: the configured one)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export the subject; print where and how big; return the exit code."""
    if args.memory_mb < 1:
        raise ValueError(f"--memory-mb must be at least 1, got {args.memory_mb}.")
    sub = load_subject(args.subject, data_dir=args.data_dir)
    roi = None if not args.roi else (args.roi[0] if len(args.roi) == 1 else args.roi)
    session = args.session if args.session else "all"
    out = export_zarr(
        sub, args.out, session=session, roi=roi, mask_source=args.mask_source,
        memory_limit=args.memory_mb << 20, codec=args.codec, overwrite=args.overwrite,
        progress=lambda msg: print(f"  {msg}", flush=True),
    )
    ex = open_export(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    n_t, n_v = ex.betas.shape
    print(f"Wrote {out}: betas {n_t} trials x {n_v} voxels of {sub.subject_id} "
          f"({len(ex.attrs['sessions'])} sessions), {size / 2**20:.1f} MB on disk.")
    return 0


__all__ = [
    "FORMATS",
    "register",
    "run",
]
