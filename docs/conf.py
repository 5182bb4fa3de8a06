"""Sphinx configuration for the laion-fmri documentation.

Build with ``make docs`` (``sphinx-build -W -b html docs docs/_build/html``):
every warning is an error, so a page that drifts from the code fails the build.

Figures: the example scripts in ``examples/`` save PNGs to
``$LAION_FMRI_EXAMPLES_OUT`` (default ``examples-output/``). When such PNGs
exist, they are copied into ``_generated/examples/`` and shown on the figures
page; otherwise that page explains how to produce them. Nothing here runs the
examples, so the build stays fast and needs no data.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))

import laion_fmri  # noqa: E402

project = "laion-fmri"
author = "LAION-fMRI contributors"
copyright = "LAION-fMRI contributors"
release = laion_fmri.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
# _generated/ holds snippets this file writes (included by pages, not pages themselves);
# ARCHITECTURE.md and RELIABILITY.md are included by architecture.md / reliability.md.
exclude_patterns = ["_build", "_generated", "ARCHITECTURE.md", "RELIABILITY.md", "Thumbs.db", ".DS_Store"]

# Cross-references to third-party types (numpy.ndarray, pandas.DataFrame ...) are
# not resolved (no intersphinx: the build must work offline), so unresolved
# references are not warnings.
nitpicky = False

# --- API reference --------------------------------------------------------------
autosummary_generate = True
autosummary_generate_overwrite = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc sections already state the types
# numpydoc would list every class member as an autosummary table pointing at stub
# pages that do not exist (one warning per member); autodoc documents the members.
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()  # enforced by tests/test_docstrings.py instead

# Optional heavy dependencies are mocked only when they are not installed, so
# the API pages of laion_fmri.torch / laion_fmri.xr still build without them.
autodoc_mock_imports = [
    name for name in ("torch", "dask", "distributed", "xarray")
    if importlib.util.find_spec(name) is None
]

# --- MyST ------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# --- HTML ------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"laion-fmri {release}"
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False


# --- figures made by the examples ------------------------------------------------
FIGURES = {
    # file name written by examples/07_figures.py -> caption on the figures page
    "noise_ceiling.png": "Noise ceiling (%) of `ses-01` on axial slices (`plot_map`).",
    "rois.png": "The ROIs of the `face` category over an anatomical background (`plot_rois`).",
    "trial.png": "One trial: the image, its captions and its betas in an ROI (`plot_trial`).",
    "encoding_scores.png": (
        "Per-voxel test correlation of the CLIP encoding model from `06_encoding_fit.py` (`plot_map`)."
    ),
}


def _examples_out() -> Path:
    out = os.environ.get("LAION_FMRI_EXAMPLES_OUT", "examples-output")
    path = Path(out)
    return path if path.is_absolute() else ROOT / path


def _write_figure_snippet() -> None:
    """Copy the examples' PNGs beside the snippet the figures page includes, and write it."""
    src = _examples_out()
    dest = DOCS / "_generated" / "examples"
    shutil.rmtree(dest, ignore_errors=True)
    found = [name for name in FIGURES if (src / name).is_file()]
    lines: list[str] = []
    if found:
        dest.mkdir(parents=True, exist_ok=True)
        for name in found:
            shutil.copy2(src / name, dest / name)
            lines += [f"```{{figure}} /_generated/examples/{name}", ":width: 90%", "", FIGURES[name]]
            lines += ["```", ""]
    else:
        lines += [
            "```{note}",
            "No figures were found in `examples-output/`. Run the examples "
            "(`python examples/01_configure_and_discover.py` ... `python examples/07_figures.py`) "
            "and rebuild the docs to show them here.",
            "```",
            "",
        ]
    snippet = DOCS / "_generated" / "figures.md"
    snippet.parent.mkdir(exist_ok=True)
    snippet.write_text("\n".join(lines), encoding="utf-8")


def _write_cli_snippet() -> None:
    """The help of ``laion-fmri`` and of every sub-command, from the real parsers."""
    import argparse

    from laion_fmri.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width; keep the page stable
    parser = build_parser()
    parts = ["## `laion-fmri`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in sorted(action.choices.items()):
                parts += [f"## `laion-fmri {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    (DOCS / "_generated" / "cli.md").write_text("\n".join(parts), encoding="utf-8")


# Links to repository files (``[suite](../tests/faults/)``) work on GitHub but are
# not pages of this site; in the copies below they become plain text + path.
_REPO_LINK = re.compile(r"\[([^\]]+)\]\((?!https?://|mailto:|#)([^)\s]+)\)")


def _write_included_page(name: str, fallback: str) -> None:
    """Copy docs/<name> (written by other tools or people) for a wrapper page to include."""
    source = DOCS / name
    text = source.read_text(encoding="utf-8") if source.is_file() else fallback
    text = _REPO_LINK.sub(lambda m: f"{m.group(1)} (`{m.group(2)}`)", text)
    (DOCS / "_generated" / name.lower()).write_text(text, encoding="utf-8")


_write_figure_snippet()
_write_cli_snippet()
_write_included_page("ARCHITECTURE.md", "# Architecture\n\n`docs/ARCHITECTURE.md` is missing.\n")
_write_included_page(
    "RELIABILITY.md",
    "# Reliability\n\nThe fault-injection suite (`tests/faults/`) writes its totals to "
    "`docs/RELIABILITY.md`; run it and rebuild the docs to show them here.\n",
)
