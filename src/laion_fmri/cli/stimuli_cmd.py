"""``download-stimuli``, ``request-access``, ``login`` and ``logout``: the stimulus DUA."""

from __future__ import annotations

import argparse

from laion_fmri import access


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "download-stimuli",
        help="download the raw stimulus images + metadata (needs the data-use agreement)",
        description="Fetch task-images_stimuli.h5 and task-images_metadata.csv. The first run "
        "shows the data-use agreement and asks for your details.",
    )
    p.add_argument("--data-dir", metavar="DIR", help="data directory (default: configured)")
    p.add_argument("--server-url", metavar="URL", help="access service URL (default: public)")
    p.add_argument("--n-jobs", type=int, default=4, metavar="N", help="parallel transfers")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.set_defaults(func=run_download)

    p = subparsers.add_parser(
        "request-access",
        help="accept the stimulus data-use agreement and request access",
        description="Shows the terms, asks for name, e-mail, institution, supervisor and "
        'research purpose and a typed "I AGREE"; stores the request id (mode 0600).',
    )
    p.add_argument("--server-url", metavar="URL", help="access service URL (default: public)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="for a sample/local source: record the agreement for this data directory")
    p.set_defaults(func=run_request_access)

    p = subparsers.add_parser("login", help="store an existing stimulus access request id")
    p.add_argument("--request-id", required=True, metavar="ID", help="the id, e.g. lfm_...")
    p.add_argument("--server-url", metavar="URL", help="access service URL (default: public)")
    p.add_argument("--no-verify", action="store_true",
                   help="store without checking the id with the service")
    p.set_defaults(func=run_login)

    p = subparsers.add_parser("logout", help="forget the stored stimulus access request id")
    p.set_defaults(func=run_logout)


def run_download(args: argparse.Namespace) -> int:
    from laion_fmri.download.stimuli import download_stimuli

    paths = download_stimuli(args.data_dir, server_url=args.server_url, n_jobs=args.n_jobs,
                             progress=not args.no_progress)
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return 0


def run_request_access(args: argparse.Namespace) -> int:
    from laion_fmri.config import get_data_dir

    if not access.uses_access_service(args.server_url):
        folder = get_data_dir(args.data_dir)
        access.ensure_local_terms(folder)
        print(f"Stimulus data-use agreement recorded for {folder}.")
        return 0
    access.request_stimulus_access(server_url=args.server_url)
    return 0


def run_login(args: argparse.Namespace) -> int:
    if not args.no_verify:
        access.AccessClient(args.server_url).refresh(args.request_id.strip())
    path = access.save_grant(args.request_id, server_url=args.server_url)
    print(f"Request id stored in {path}.")
    return 0


def run_logout(args: argparse.Namespace) -> int:
    removed = access.clear_grant()
    print(f"Removed {access.auth_path()}." if removed else "No stored request id.")
    return 0


__all__ = [
    "register",
    "run_download",
    "run_login",
    "run_logout",
    "run_request_access",
]
