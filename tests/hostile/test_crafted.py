"""Every crafted file ends in its exact exception class, names the file, and allocates little.

The probe runs in one child process over a private copy of the tiny sample
(see ``probe.py``); each case asserts its own line of the probe's output.
Budget (issue #15): no crafted input under 10 MB may make the process allocate
more than 256 MB beyond the legitimate output, measured as the larger of the
tracemalloc peak and the RSS high-water growth.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faults.record import record
from hostile.crafted import CONFIG_TARGET, MAX_CRAFTED_BYTES, all_cases

BUDGET = 256 * 1024 * 1024
TESTS = Path(__file__).resolve().parents[1]
CASES = {case.name: case for case in all_cases()}

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def probe_results(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("hostile")
    data_dir = root / "data"
    shutil.copytree(sample_root, data_dir)
    (data_dir / ".laion_fmri").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAION_FMRI_")}
    env["XDG_CONFIG_HOME"] = str(root / "config")
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, "-m", "hostile.probe", str(data_dir)],
        capture_output=True, text=True, env=env, cwd=str(TESTS), timeout=840, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = {}
    for line in done.stdout.splitlines():
        rec = json.loads(line)
        results[rec["name"]] = rec
    return results


def excess_bytes(rec: dict, legit: int) -> int:
    """Bytes allocated beyond the legitimate output."""
    peak = max(rec["traced_peak"], rec["rss_peak"] if rec.get("rss_exact") else 0)
    return max(0, peak - legit)


@pytest.mark.parametrize("name", list(CASES))
def test_crafted_file(name: str, probe_results: dict[str, dict], request: pytest.FixtureRequest) -> None:
    case = CASES[name]
    rec = probe_results[name]
    assert rec["size"] < MAX_CRAFTED_BYTES
    assert rec["error"] == case.expected, rec["message"]
    if case.expected is not None and case.target != CONFIG_TARGET:
        assert rec["target"] in rec["message"] or (case.names_other and ".nii.gz" in rec["message"])
    if case.target == CONFIG_TARGET:
        assert "config.json" in rec["message"] and "\n" not in rec["message"]
    excess = excess_bytes(rec, case.legit)
    record("hostile", request.node.nodeid, inputs=1, crafted=case.kind, file_bytes=rec["size"],
           alloc_bytes=excess, error=rec["error"] or "ignored and rebuilt")
    assert excess <= BUDGET, f"{name} allocated {excess / 2**20:.0f} MiB beyond its output"


def test_every_case_ran(probe_results: dict[str, dict]) -> None:
    assert set(probe_results) == set(CASES)
    kinds = {case.kind for case in CASES.values()}
    assert kinds == {"nifti", "hdf5", "tsv", "csv", "json"}
