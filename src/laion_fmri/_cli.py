"""The console entry point under the reference package's module name (``laion_fmri._cli``)."""

from laion_fmri.cli import main

__all__ = ["main"]
