"""``laion-fmri config``: set or show the data directory, source and endpoint."""

from __future__ import annotations

import argparse

from laion_fmri import config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "config",
        help="set or show the data directory, data source and S3 endpoint",
        description="Without options, print the effective settings and where each came from.",
    )
    p.add_argument("--data-dir", metavar="DIR", help="existing folder that holds the data")
    p.add_argument("--source", metavar="URL",
                   help="s3://BUCKET, file:///DIR or a folder with the bucket layout ('' resets)")
    p.add_argument("--endpoint-url", metavar="URL",
                   help="S3-compatible endpoint, e.g. http://127.0.0.1:9000 ('' resets to AWS)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.data_dir is not None:
        config.dataset_initialize(args.data_dir)
        print(f"Data directory set to: {config.get_data_dir()}")
    if args.source is not None or args.endpoint_url is not None:
        config.set_source(args.source, args.endpoint_url)
        print(f"Data source set to: {config.get_source().url}")
    if args.data_dir is None and args.source is None and args.endpoint_url is None:
        for name, (value, origin) in config.effective_settings().items():
            print(f"{name:13s} {value if value is not None else '(not set)'}  [{origin}]")
        print(f"config file   {config.config_path()}")
    return 0


__all__ = [
    "register",
    "run",
]
