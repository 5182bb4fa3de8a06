"""The documentation builds with warnings as errors, shows the examples' figures,
covers every public module, error class and CLI command it names, and the Python
snippets on its pages run against the sample dataset.

The build runs on a copy of ``docs/`` and ``examples/`` in a temporary folder,
so nothing is written into the working tree. It needs the ``docs`` extra
(``pip install -e '.[docs]'``); without Sphinx the build test is skipped with
that reason, while the coverage checks (plain file reads) always run.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import laion_fmri.errors as errors_module
from test_docstrings import public_modules
from test_examples import accept_stimulus_terms, journey_env, run_example

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOCS_EXTRA = ("sphinx", "numpydoc", "pydata_sphinx_theme", "myst_parser")
FIGURES = ("noise_ceiling.png", "rois.png", "trial.png", "encoding_scores.png")


def error_classes() -> list[str]:
    """Every exception class defined in ``laion_fmri.errors`` (not only ``__all__``)."""
    return sorted(
        name
        for name, obj in vars(errors_module).items()
        if inspect.isclass(obj)
        and issubclass(obj, errors_module.LaionFMRIError)
        and obj.__module__ == errors_module.__name__
    )


def test_troubleshooting_covers_every_error_class() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^### `(\w+)`$", text, re.M))
    missing = sorted(set(error_classes()) - documented)
    assert not missing, f"docs/troubleshooting.md has no section for: {', '.join(missing)}"
    unknown = sorted(documented - set(error_classes()))
    assert not unknown, f"docs/troubleshooting.md documents classes that do not exist: {unknown}"
    # Each section says what to do.
    for name in error_classes():
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        if name != "LaionFMRIError":
            assert "What to do" in section or "what to do" in section, name


def test_api_reference_lists_every_public_module() -> None:
    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   (laion_fmri(?:\.\w+)*)\s*$", text, re.M))
    missing = sorted(set(public_modules()) - listed)
    assert not missing, f"docs/api.rst does not list: {', '.join(missing)}"
    gone = sorted(listed - set(public_modules()))
    assert not gone, f"docs/api.rst lists modules that do not exist: {', '.join(gone)}"


def test_every_page_is_in_the_toctree() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    entries = set(re.findall(r"^([a-z_]+)$", index, re.M))
    pages = {p.stem for p in DOCS.glob("*.md") if p.stem not in ("index", "ARCHITECTURE", "RELIABILITY")}
    pages |= {p.stem for p in DOCS.glob("*.rst")}
    assert pages <= entries, f"pages missing from the toctree: {sorted(pages - entries)}"


@pytest.fixture(scope="module")
def example_figures(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the examples that make the figures the docs show; return their output folder."""
    journey = journey_env(sample_root, tmp_path_factory.mktemp("docs-examples"))
    accept_stimulus_terms(journey.data_dir)
    for script in ("01_configure_and_discover.py", "02_download.py", "06_encoding_fit.py", "07_figures.py"):
        run_example(script, journey.env)
    return journey.out


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(example_figures: Path, tmp_path: Path) -> None:
    missing = [name for name in DOCS_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    # Build a copy: autosummary writes stub pages into the source folder.
    src = tmp_path / "tree"
    shutil.copytree(DOCS, src / "docs", ignore=shutil.ignore_patterns("_build", "generated", "_generated"))
    shutil.copytree(ROOT / "examples", src / "examples")
    out = tmp_path / "html"
    env = {**os.environ, "LAION_FMRI_EXAMPLES_OUT": str(example_figures)}
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    cmd += [str(src / "docs"), str(out)]
    proc = subprocess.run(
        cmd,
        capture_output=True, text=True, timeout=600, env=env, cwd=str(src),
    )
    assert proc.returncode == 0, f"sphinx-build failed\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"

    for page in ("index", "installation", "quickstart", "downloading", "betas", "stimuli", "splits",
                 "analysis", "figures", "sample", "troubleshooting", "architecture", "reliability",
                 "cli", "api"):
        assert (out / f"{page}.html").is_file(), page
    figures_html = (out / "figures.html").read_text(encoding="utf-8")
    for name in FIGURES:
        assert f'src="_images/{name}"' in figures_html, name
        assert (out / "_images" / name).read_bytes() == (example_figures / name).read_bytes()
    # The API reference is generated from the code: every public module has a page.
    for module in public_modules():
        assert (out / "generated" / f"{module}.html").is_file(), module
    errors_html = (out / "generated" / "laion_fmri.errors.html").read_text(encoding="utf-8")
    for name in error_classes():
        assert f'id="laion_fmri.errors.{name}"' in errors_html, name
    # The CLI page holds the real help text of each sub-command.
    cli_html = (out / "cli.html").read_text(encoding="utf-8")
    assert "laion-fmri download" in cli_html and "--dry-run" in cli_html


def test_every_cli_command_the_docs_mention_exists() -> None:
    import argparse

    from laion_fmri.cli import build_parser

    parser = build_parser()
    commands = {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }
    pages = [*DOCS.glob("*.md"), ROOT / "README.md", *(ROOT / "examples").glob("*.py")]
    pattern = re.compile(r"(?:`|^)laion-fmri ([a-z][a-z-]*)", re.M)
    mentioned = {(page.name, cmd) for page in pages for cmd in pattern.findall(page.read_text("utf-8"))}
    unknown = sorted((page, cmd) for page, cmd in mentioned if cmd not in commands)
    assert not unknown, f"the docs mention commands that do not exist: {unknown}"


# --------------------------------------------------------------------------- page snippets run
# The ```python blocks on the pages run, page by page, against the sample dataset
# (downloaded into a data dir, with the sample as source). Each page starts from
# this context, which the pages assume ("sub is a loaded subject"); blocks with
# a placeholder path ("/path/to/") are shown, not run.
PAGE_CONTEXT = """
import numpy as np
from laion_fmri.subject import load_subject
sub = load_subject("sub-03")
betas = sub.get_betas(session="ses-01")
trials = sub.get_trial_info(session="ses-01")
"""
PLACEHOLDER = "/path/to/"


def python_blocks(page: Path) -> list[str]:
    """The ```python fenced blocks of a MyST page, in order."""
    return re.findall(r"^```python\n(.*?)^```$", page.read_text(encoding="utf-8"), re.M | re.S)


PAGES_WITH_CODE = sorted(p.name for p in DOCS.glob("*.md") if python_blocks(p))


@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_page_code_blocks_run(page: str, downloaded: Path, local_source: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from laion_fmri.licenses import accept_dataset_license

    accept_dataset_license(downloaded)
    accept_stimulus_terms(downloaded)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(downloaded)  # anything a snippet writes lands in the throwaway copy
    namespace: dict[str, object] = {}
    exec(compile(PAGE_CONTEXT, "<page context>", "exec"), namespace)
    ran = 0
    for n, block in enumerate(python_blocks(DOCS / page), 1):
        if PLACEHOLDER in block:
            continue
        try:
            exec(compile(block, f"{page} block {n}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"{page}, python block {n} failed: {type(exc).__name__}: {exc}\n{block}")
        ran += 1
    assert ran or page in ("index.md", "installation.md"), f"{page}: no block ran"
