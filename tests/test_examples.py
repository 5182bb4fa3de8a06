"""The scripts in ``examples/`` run, in order, against the sample dataset.

Each script runs as its own process (``sys.executable examples/NN_*.py``) with
a fresh data directory, the tiny sample dataset as a local source and a
private config home, exactly as a user would run them one after the other. A
broken example fails here. Expected output lines are derived from the sample
dataset's spec, not hard-coded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Journey:
    env: dict[str, str]
    data_dir: Path
    out: Path


def run_example(script: str, env: dict[str, str], timeout: float = 300) -> str:
    """Run one example; fail with its output when it exits non-zero."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, (
        f"{script} exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc.stdout


def journey_env(sample_root: Path, base: Path) -> Journey:
    """Environment of a fresh user: empty data dir, sample as source, own config home."""
    data_dir, out = base / "data", base / "out"
    data_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAION_FMRI_", "AWS_"))}
    env.update(
        LAION_FMRI_DATA_DIR=str(data_dir),
        LAION_FMRI_SOURCE=str(sample_root),
        LAION_FMRI_EXAMPLES_OUT=str(out),
        XDG_CONFIG_HOME=str(base / "xdg"),
        XDG_CACHE_HOME=str(base / "xdg-cache"),
        MPLBACKEND="Agg",
    )
    return Journey(env, data_dir, out)


def accept_stimulus_terms(data_dir: Path) -> None:
    """What a user does once in a terminal: type the agreement for this data dir."""
    from laion_fmri.access import ensure_local_terms

    ensure_local_terms(data_dir, interactive=True, input_fn=lambda prompt: "I AGREE", out=lambda text: None)


@pytest.fixture(scope="module")
def journey(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Journey:
    j = journey_env(sample_root, tmp_path_factory.mktemp("examples"))
    accept_stimulus_terms(j.data_dir)
    return j


@pytest.fixture(scope="module")
def spec():  # type: ignore[no-untyped-def]
    from laion_fmri.sample import spec_for

    return spec_for("tiny")


def test_the_journey_has_every_documented_step() -> None:
    assert SCRIPTS == [
        "01_configure_and_discover.py",
        "02_download.py",
        "03_load_betas.py",
        "04_stimuli.py",
        "05_splits.py",
        "06_encoding_fit.py",
        "07_figures.py",
    ]


def test_01_configure_and_discover(journey: Journey, spec) -> None:  # type: ignore[no-untyped-def]
    out = run_example("01_configure_and_discover.py", journey.env)
    assert f"subjects: {list(spec.subjects)}" in out
    assert f"face ROIs of sub-03: {sorted(spec.rois['face'])}" in out
    assert f"data_dir      {journey.data_dir}  (environment variable LAION_FMRI_DATA_DIR)" in out
    # describe() marks the held-out session of each subject.
    assert f"{spec.held_out_sessions[0]}*" in out
    # dataset_initialize persisted the data directory in the (private) config home.
    config = Path(journey.env["XDG_CONFIG_HOME"], "laion_fmri", "config.json")
    assert str(journey.data_dir.resolve()) in config.read_text(encoding="utf-8")


def test_02_download(journey: Journey, spec) -> None:  # type: ignore[no-untyped-def]
    out = run_example("02_download.py", journey.env)
    planned = int(re.search(r"^dry run: (\d+) file\(s\)", out, re.M).group(1))  # type: ignore[union-attr]
    assert re.search(rf"^first run: {planned} downloaded, \d+ bytes, ok=True$", out, re.M)
    assert f"re-run: 0 downloaded, {planned} already up to date" in out
    assert re.search(r"Verified (\d+) file\(s\): \1 ok, 0 missing, 0 truncated, 0 altered\.", out)
    assert "images: ['task-images_metadata.csv', 'task-images_stimuli.h5']" in out
    # Every public session arrived, no held-out one did.
    func = journey.data_dir / "derivatives" / "glmsingle-tedana" / "sub-03"
    for ses in spec.sessions:
        assert (func / ses).is_dir(), ses
    for ses in spec.held_out_sessions:
        assert not (func / ses).exists(), ses


def test_03_load_betas(journey: Journey, spec) -> None:  # type: ignore[no-untyped-def]
    out = run_example("03_load_betas.py", journey.env)
    n_trials = spec.n_trials_in("sub-03", "ses-01")
    assert f"ses-01 betas ({n_trials}, {spec.n_anatomical_voxels}) float32" in out
    assert f"brain-mask voxels: {spec.n_anatomical_voxels}" in out
    assert f"R2mean != 0 voxels: {spec.n_brain_voxels}" in out
    assert f"sessions: {list(spec.sessions)}" in out
    total = sum(spec.n_trials_in("sub-03", s) for s in spec.sessions)
    assert re.search(rf"^{total} trials -> \d+ images", out, re.M)


def test_04_stimuli(journey: Journey, spec) -> None:  # type: ignore[no-untyped-def]
    out = run_example("04_stimuli.py", journey.env)
    n_trials = spec.n_trials_in("sub-03", "ses-01")
    assert re.search(rf"betas \({n_trials}, \d+\) <-> CLIP \({n_trials}, 1024\)", out)
    assert "nouns: ['fingers', 'hand', 'pullover']" in out
    assert "downscaled batch: (1, 64, 64, 3) uint8" in out


def test_05_splits(journey: Journey) -> None:
    out = run_example("05_splits.py", journey.env)
    lines = [ln for ln in out.splitlines() if "images in both:" in ln]
    assert len(lines) == 3
    assert all(ln.endswith("images in both: 0") for ln in lines)


def test_06_encoding_fit_recovers_the_planted_signal(journey: Journey) -> None:
    out = run_example("06_encoding_fit.py", journey.env)
    m = re.search(r"mean test r, face ROIs: (-?[\d.]+) \(shuffled embeddings: (-?[\d.]+)\)", out)
    assert m, out
    r, r_shuffled = float(m.group(1)), float(m.group(2))
    # The sample plants CLIP-driven signal inside the ROIs: aligned features beat shuffled ones.
    assert r > 0.2 and r > r_shuffled + 0.1, (r, r_shuffled)
    assert (journey.out / "encoding_scores.npy").is_file()


def test_07_figures(journey: Journey) -> None:
    out = run_example("07_figures.py", journey.env)
    for name in ("noise_ceiling.png", "rois.png", "trial.png", "encoding_scores.png"):
        png = journey.out / name
        assert f"wrote {png}" in out
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name
