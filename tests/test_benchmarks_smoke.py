"""Every benchmark script still runs end to end (at toy sizes, results to a tmp dir).

The figures themselves come from ``make bench``; this only keeps the scripts
from rotting when the package changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

CASES = {
    "splits": ["--n-labels", "20000", "--repeats", "1"],
    "stimuli": ["--n-images", "60", "--n-access", "20", "--n-sessions", "2", "--n-trials", "48"],
    "betas": ["--n-trials", "8", "--sessions", "2", "--skip-nibabel", "--repeats", "1"],
    "torch": ["--scale", "tiny", "--epochs", "1", "--image-size", "32"],
    "download": ["--small", "5", "--large", "1", "--large-mb", "1", "--sessions", "2",
                 "--skip-aws"],
    "gzip_members": ["--grid", "24", "--n-trials", "4", "--repeats", "1"],
    "export": ["--n-trials", "8", "--sessions", "2", "--repeats", "1"],
    "time_to_betas": ["--n-trials", "8", "--sessions", "1", "--repeats", "1", "--skip-wan"],
    "reload": ["--n-trials", "8", "--repeats", "1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_script_runs(name: str, tmp_path: Path) -> None:
    if name == "torch":
        pytest.importorskip("torch")
    out = tmp_path / f"{name}.json"
    args = [sys.executable, str(BENCH / f"bench_{name}.py"), *CASES[name], "--out", str(out)]
    if name in ("betas", "torch", "download", "gzip_members", "export", "time_to_betas",
                "reload"):
        args += ["--workdir", str(tmp_path / "work")]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert json.loads(out.read_text())  # the script wrote a non-empty result
