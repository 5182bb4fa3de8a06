"""``laion-fmri download``, ``download-raw``, ``verify``, ``accept-license``, stimulus derivatives."""

from __future__ import annotations

import argparse
import warnings

from laion_fmri.config import get_data_dir
from laion_fmri.download import _raw as api_raw
from laion_fmri.download import api
from laion_fmri.download.plan import Plan, format_bytes
from laion_fmri.download.transfer import DownloadReport, FileFailedWarning
from laion_fmri.licenses import DATASET_LICENSE_TEXT, accept_dataset_license


def _common(p: argparse.ArgumentParser, default_jobs: int | None, what: str = "files at once") -> None:
    shown = default_jobs if default_jobs is not None else 32
    p.add_argument("--n-jobs", type=int, default=default_jobs, metavar="N",
                   help=f"{what} (default {shown}); all requests share max(32, N) connections")
    p.add_argument("--data-dir", metavar="DIR", help="target folder (default: configured)")
    p.add_argument("--no-progress", action="store_true", help="no progress display")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "download", help="download subject data, filtered by BIDS entities",
        description="Download one subject (or 'all'): resumable, verified, idempotent. "
        "Entity values may be bare ('01') or prefixed ('ses-01'); repeat a flag for several "
        "values. --ses averages selects the subject-level maps.",
    )
    p.add_argument("--subject", required=True, nargs="+", help="sub-03, 03, 3 or 'all'")
    for name in ("ses", "task", "space", "desc", "stat", "suffix", "extension", "datatype"):
        p.add_argument(f"--{name}", nargs="+", metavar="VALUE")
    p.add_argument("--include", nargs="+", metavar="GLOB", help="only keys matching a glob")
    p.add_argument("--exclude", nargs="+", metavar="GLOB", help="drop keys matching a glob")
    p.add_argument("--include-stimuli", action="store_true",
                   help="also the stimulus files (raw images need the data-use agreement)")
    p.add_argument("--include-anatomical", action="store_true",
                   help="also the anatomical folder (T1w, T2w, brain masks), whole")
    p.add_argument("--include-freesurfer", action="store_true",
                   help="also the FreeSurfer reconstruction, whole")
    p.add_argument("--include-raw", action="store_true",
                   help="also the raw BIDS tree (filtered by --ses/--suffix/--extension)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    _common(p, None)
    p.set_defaults(func=run_download)

    p = subparsers.add_parser(
        "download-raw", help="download one subject's raw BIDS tree (runs, echoes, parts)",
        description="Download the raw BIDS tree of one subject. --ses is strict; --run, "
        "--echo and --part drop files with another value and keep files without the entity "
        "(events tables, field maps). Values may be bare ('01') or prefixed ('run-01').",
    )
    p.add_argument("--subject", required=True, help="sub-03, 03 or 3")
    for name in ("ses", "run", "echo", "part", "suffix", "extension"):
        p.add_argument(f"--{name}", nargs="+", metavar="VALUE")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    _common(p, None)
    p.set_defaults(func=run_download_raw)

    p = subparsers.add_parser(
        "verify", help="re-check downloaded files (size and checksum)",
        description="Report missing, truncated or altered files; --repair fetches them again.",
    )
    p.add_argument("--subject", help="only this subject")
    p.add_argument("--repair", action="store_true", help="re-fetch bad files")
    _common(p, 4)
    p.set_defaults(func=run_verify)

    p = subparsers.add_parser(
        "accept-license", help="show the CC0 dataset license notice and record acceptance",
    )
    p.add_argument("--data-dir", metavar="DIR", help="data folder (default: configured)")
    p.set_defaults(func=run_accept)

    for name, helptext in (
        ("download-embeddings", "stimulus embeddings (CLIP, DINOv2, PEcore, SigLIP2)"),
        ("download-segmentations", "object masks of the shared images"),
        ("download-captions", "human and AI captions"),
    ):
        p = subparsers.add_parser(name, help=f"download the {helptext} (CC0)")
        if name == "download-embeddings":
            p.add_argument("--models", "--model", nargs="+", default=["all"], metavar="MODEL",
                           help="model names or 'all' (default)")
        _common(p, 4)
        p.set_defaults(func=run_public, which=name)


def _one(values: list[str] | None) -> str | list[str] | None:
    if values is None:
        return None
    return values[0] if len(values) == 1 else values


def run_download(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        # Each failed file is printed once, from the report.
        warnings.simplefilter("ignore", FileFailedWarning)
        result = api.download(
            subject=_one(args.subject), ses=_one(args.ses), task=_one(args.task),
            space=_one(args.space), desc=_one(args.desc), stat=_one(args.stat),
            suffix=_one(args.suffix), extension=_one(args.extension),
            include_stimuli=args.include_stimuli, n_jobs=args.n_jobs,
            datatype=_one(args.datatype), include=args.include, exclude=args.exclude,
            dry_run=args.dry_run, progress=not args.no_progress, data_dir=args.data_dir,
            include_anatomical=args.include_anatomical,
            include_freesurfer=args.include_freesurfer, include_raw=args.include_raw,
        )
    return _finish(result)


def run_download_raw(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FileFailedWarning)
        result = api_raw.download_raw(
            args.subject, ses=_one(args.ses), run=_one(args.run), echo=_one(args.echo),
            part=_one(args.part), suffix=_one(args.suffix), extension=_one(args.extension),
            n_jobs=args.n_jobs, dry_run=args.dry_run, progress=not args.no_progress,
            data_dir=args.data_dir,
        )
    return _finish(result)


def _finish(result: Plan | DownloadReport) -> int:
    """Print a plan (dry run) line by line; the exit status of a report."""
    if isinstance(result, Plan):
        for obj in result.objects:
            print(f"{obj.size:>14,d}  {obj.key}")
        for obj in result.gated:
            size = f"{obj.size:>14,d}" if obj.size else f"{'?':>14}"
            print(f"{size}  {obj.key}  (needs data-use agreement)")
        print(f"Total: {len(result.objects)} file(s), {format_bytes(result.total_bytes)}"
              + (f" plus {len(result.gated)} behind the data-use agreement"
                 if result.gated else ""))
        return 0
    return 1 if result.failed else 0


def run_verify(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FileFailedWarning)
        report = api.verify(subject=args.subject, repair=args.repair, data_dir=args.data_dir,
                            n_jobs=args.n_jobs, progress=not args.no_progress)
    if report.nothing_recorded:
        print(report)
        return 1
    for kind in ("missing", "truncated", "altered"):
        for key in getattr(report, kind):
            fixed = " (repaired)" if key in report.repaired else ""
            print(f"{kind.upper()} {key}{fixed}")
    for key, reason in sorted(report.failed.items()):
        print(f"FAILED {key}: {reason}")
    print(report)
    return 0 if report.clean else 1


def run_accept(args: argparse.Namespace) -> int:
    print(DATASET_LICENSE_TEXT)
    marker = accept_dataset_license(get_data_dir(args.data_dir))
    print(f"Accepted; recorded in {marker}.")
    return 0


def run_public(args: argparse.Namespace) -> int:
    kw = {"data_dir": args.data_dir, "n_jobs": args.n_jobs, "progress": not args.no_progress}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FileFailedWarning)
        if args.which == "download-embeddings":
            report = api.download_embeddings(_one(args.models) or "all", **kw)
        elif args.which == "download-segmentations":
            report = api.download_segmentations(**kw)
        else:
            report = api.download_captions(**kw)
    return 1 if report.failed else 0


__all__ = [
    "register",
    "run_accept",
    "run_download",
    "run_download_raw",
    "run_public",
    "run_verify",
]
