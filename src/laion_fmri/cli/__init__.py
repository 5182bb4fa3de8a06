"""The ``laion-fmri`` command line.

Each sub-command lives in its own module in this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed ``argparse.Namespace`` and returning an exit code. Modules
are discovered automatically, so adding a command never edits this file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from laion_fmri import __version__
from laion_fmri.errors import LaionFMRIError


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every discovered sub-command."""
    parser = argparse.ArgumentParser(
        prog="laion-fmri",
        description="Discover, download and load the LAION-fMRI dataset.",
    )
    parser.add_argument("--version", action="version", version=f"laion-fmri {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Show Python warnings as ``laion-fmri: warning: ...`` lines (no source paths)."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        print(f"laion-fmri: warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def _os_error_line(exc: OSError) -> str:
    """A readable one-line description of an OS-level error, with what to do."""
    what = exc.strerror or str(exc)
    where = f": {exc.filename}" if exc.filename else ""
    return f"{what}{where}. Check the path (and free space/permissions) and run the command again."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (errors print one line, not a traceback).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on a reported error, 130 when interrupted.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    laion-fmri 0.2.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        with _one_line_warnings():
            return int(func(args) or 0)
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, like other CLI tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("laion-fmri: interrupted; partial downloads are kept and resume next time.",
              file=sys.stderr)
        return 130
    except LaionFMRIError as exc:
        print(f"laion-fmri: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, TypeError) as exc:
        print(f"laion-fmri: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"laion-fmri: error: {_os_error_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = [
    "build_parser",
    "main",
]
