"""``laion-fmri plot nc|rois|trial``: write a PNG figure of a subject's data."""

from __future__ import annotations

import argparse

DEFAULT_NC_DESC = "Noiseceiling12rep"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plot`` sub-command with ``nc``, ``rois`` and ``trial`` figures."""
    parser = subparsers.add_parser(
        "plot",
        help="save a figure (noise ceiling map, ROI outlines, one trial) as PNG",
        description="Render a figure of a downloaded subject headlessly and save it as PNG.",
    )
    kinds = parser.add_subparsers(dest="figure", metavar="FIGURE", required=True)

    def common(p: argparse.ArgumentParser, slices: bool = True) -> None:
        p.add_argument("--subject", required=True, help="sub-03, 03 or 3")
        p.add_argument("--out", required=True, metavar="PNG", help="output PNG file")
        p.add_argument("--data-dir", metavar="DIR", help="data directory (default: configured)")
        if slices:
            p.add_argument("--slices", type=int, default=8, metavar="N", help="axial slices (default 8)")

    nc = kinds.add_parser(
        "nc", help="noise ceiling map",
        description=f"Noise ceiling (percent) on axial slices; default --desc {DEFAULT_NC_DESC}.",
    )
    common(nc)
    which = nc.add_mutually_exclusive_group()
    which.add_argument("--session", help="per-session noise ceiling, e.g. ses-01")
    which.add_argument("--desc", help=f"cross-session map (default {DEFAULT_NC_DESC})")
    nc.add_argument("--roi", help="only this ROI / category")
    nc.set_defaults(func=run)

    rois = kinds.add_parser("rois", help="ROI outlines over the mean R2 map")
    common(rois)
    rois.add_argument("--category", help="only this category, e.g. face")
    rois.set_defaults(func=run)

    trial = kinds.add_parser("trial", help="one trial: image, captions, betas per ROI")
    common(trial, slices=False)
    trial.add_argument("--trial", type=int, required=True, metavar="I", help="global trial index")
    trial.add_argument("--roi", help="ROI / category whose betas to show (default whole brain)")
    trial.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render the requested figure and save it; return the exit code."""
    # plotting draws on Figure objects (no pyplot), so no GUI backend is ever touched.
    from laion_fmri import plotting
    from laion_fmri.subject import load_subject

    sub = load_subject(args.subject, data_dir=args.data_dir)
    if args.figure == "nc":
        if args.session:
            values = sub.get_noise_ceiling(session=args.session, roi=args.roi)
            what = args.session
        else:
            what = args.desc or DEFAULT_NC_DESC
            values = sub.get_noise_ceiling(desc=what, roi=args.roi)
        where = f" in {args.roi}" if args.roi else ""
        plotting.plot_map(sub, values, roi=args.roi, n_slices=args.slices, out=args.out,
                          title=f"{sub.subject_id} noise ceiling (%), {what}{where}")
    elif args.figure == "rois":
        plotting.plot_rois(sub, category=args.category, n_slices=args.slices, out=args.out)
    else:
        plotting.plot_trial(sub, args.trial, roi=args.roi, out=args.out)
    print(f"Saved {args.out}")
    return 0


__all__ = [
    "DEFAULT_NC_DESC",
    "register",
    "run",
]
