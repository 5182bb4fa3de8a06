"""Turn the reliability suite's recorded results into ``docs/RELIABILITY.md``.

The fault, hostile-input, fuzz and load tests append one JSON line per check
to ``benchmarks/results/reliability.jsonl`` (see ``tests/faults/record.py``).
This script keeps the newest line per test id (dropping ids not re-run within
``--max-age-hours`` of the newest line), sums the figures and writes a short
Markdown report.

Usage::

    python -m pytest tests/faults tests/hostile tests/test_hostile_input.py tests/test_fuzz_api.py \
        tests/test_load.py
    python scripts/reliability_report.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOG = ROOT / "benchmarks" / "results" / "reliability.jsonl"
DEFAULT_OUT = ROOT / "docs" / "RELIABILITY.md"


def read_results(path: Path, max_age_hours: float = 12.0) -> list[dict]:
    """Newest result per test id, without ids that were not re-run recently.

    Parameters
    ----------
    path : Path
        The JSON-lines log.
    max_age_hours : float
        Drop ids whose newest line is older than this, counted from the newest line.

    Returns
    -------
    list of dict
        One record per test id, sorted by kind and id.

    Examples
    --------
    >>> read_results(Path("/nonexistent"))
    []
    """
    if not path.is_file():
        return []
    newest: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        key = f"{rec.get('kind')}::{rec.get('test')}"
        if key not in newest or rec.get("time", 0) >= newest[key].get("time", 0):
            newest[key] = rec
    if not newest:
        return []
    latest = max(r.get("time", 0) for r in newest.values())
    keep = [r for r in newest.values() if latest - r.get("time", 0) <= max_age_hours * 3600]
    return sorted(keep, key=lambda r: (r.get("kind", ""), r.get("test", "")))


def _sum(records: Iterable[dict], field: str) -> int:
    return int(sum(int(r.get(field, 0) or 0) for r in records))


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


# Fault class of a scenario, from the test file that ran it.
FAULT_CLASSES = {
    "test_network_faults.py": "network",
    "test_process_faults.py": "process and disk",
    "test_local_faults.py": "local damage",
    "test_state_faults.py": "own state (cache concurrency, symlinks, JSON)",
    "test_security.py": "security",
    "test_proxy.py": "fault proxy self-test",
}
CRAFTED_KINDS = ("nifti", "hdf5", "tsv", "csv", "json")


def fault_class(record: dict) -> str:
    """The fault class of a record (by test file; ``other`` when unknown).

    Examples
    --------
    >>> fault_class({"test": "tests/faults/test_network_faults.py::test_reset"})
    'network'
    """
    name = str(record.get("test", "")).split("::", 1)[0].rsplit("/", 1)[-1]
    return FAULT_CLASSES.get(name, "other")


def per_class(faults: list[dict], failed: list[dict]) -> list[dict]:
    """Scenario, injection, byte and loss counts per fault class.

    Examples
    --------
    >>> per_class([{"test": "x/test_local_faults.py::t", "injected": 2}], [])[0]["injected"]
    2
    """
    rows: dict[str, dict] = {}
    for rec in [*faults, *failed]:
        row = rows.setdefault(fault_class(rec), {"class": fault_class(rec), "scenarios": 0, "injected": 0,
                                                 "bytes_verified": 0, "files_lost": 0, "failing": 0})
        row["scenarios"] += 1
        row["injected"] += int(rec.get("injected", 0) or 0)
        row["bytes_verified"] += int(rec.get("bytes_verified", 0) or 0)
        row["files_lost"] += int(rec.get("files_lost", 0) or 0)
        row["failing"] += int(bool(rec.get("failed")))
    return sorted(rows.values(), key=lambda r: r["class"])


def crafted_classes(hostile: list[dict]) -> list[dict]:
    """Crafted files tried per file type, with the largest file and allocation.

    Examples
    --------
    >>> row = crafted_classes([{"crafted": "json", "file_bytes": 5, "alloc_bytes": 7, "error": "E"}])[0]
    >>> row["files"], row["max_alloc_bytes"], row["errors"]
    (1, 7, 'E')
    """
    out = []
    for kind in CRAFTED_KINDS:
        recs = [r for r in hostile if r.get("crafted") == kind]
        if not recs:
            continue
        errors = sorted({str(r.get("error")) for r in recs})
        out.append({
            "kind": kind,
            "files": len(recs),
            "max_file_bytes": max((int(r.get("file_bytes", 0) or 0) for r in recs), default=0),
            "max_alloc_bytes": max((int(r.get("alloc_bytes", 0) or 0) for r in recs), default=0),
            "errors": ", ".join(errors),
        })
    return out


def summarize(results: list[dict]) -> dict[str, object]:
    """Totals over the records.

    Examples
    --------
    >>> rec = {"kind": "fault", "injected": 2, "bytes_verified": 10, "files_lost": 0}
    >>> summarize([rec])["faults_injected"]
    2
    """
    failed = [r for r in results if r.get("failed")]
    faults = [r for r in results if r.get("kind") == "fault" and not r.get("failed")]
    hostile = [r for r in results if r.get("kind") == "hostile"]
    fuzz = [r for r in results if r.get("kind") == "fuzz"]
    load = [r for r in results if r.get("kind") == "load"]
    return {
        "fault_tests": len(faults) + len(failed),
        "failed": failed,
        "faults_injected": _sum(faults, "injected"),
        "bytes_verified": _sum(faults, "bytes_verified") + _sum(load, "bytes_verified"),
        "files_lost": _sum(faults, "files_lost") + _sum(failed, "files_lost"),
        "hostile_checks": len(hostile),
        "hostile_inputs": _sum(hostile, "inputs"),
        "fuzz_inputs": _sum(fuzz, "inputs"),
        "fuzz_documented_errors": _sum(fuzz, "documented_errors"),
        "load": load,
        "faults": faults,
        "classes": per_class(faults, failed),
        "crafted": crafted_classes(hostile),
    }


def render(summary: dict, generated: str) -> str:
    """The Markdown report.

    Examples
    --------
    >>> "files lost or corrupted" in render(summarize([]), "now")
    True
    """
    faults: list[dict] = summary["faults"]  # type: ignore[assignment]
    load: list[dict] = summary["load"]  # type: ignore[assignment]
    crafted: list[dict] = summary.get("crafted", [])  # type: ignore[assignment]
    n_crafted = sum(c["files"] for c in crafted)
    max_alloc = max((c["max_alloc_bytes"] for c in crafted), default=0)
    lines = [
        "# Reliability",
        "",
        "Generated by `scripts/reliability_report.py` from the results the reliability suite",
        "(`tests/faults/`, `tests/hostile/`, `tests/test_hostile_input.py`, `tests/test_fuzz_api.py`,",
        f"`tests/test_load.py`) recorded in its last run ({generated}). Every fault runs against",
        "the real code paths: real HTTP through a fault-injecting proxy to a loopback S3 server,",
        "real files on disk, real child processes killed with SIGKILL.",
        "",
        "## Totals",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| fault scenarios run | {summary['fault_tests']} |",
        f"| faults injected | {summary['faults_injected']:,} |",
        f"| bytes verified against the source | {summary['bytes_verified']:,} "
        f"({_mb(int(summary['bytes_verified']))}) |",
        f"| **files lost or corrupted** | **{summary['files_lost']}** |",
        f"| **fault scenarios failing** | **{len(summary['failed'])}** |",
        f"| hostile-input checks | {summary['hostile_checks']} |",
        f"| bad inputs tried (hostile files, keys, fuzzed arguments) | "
        f"{int(summary['hostile_inputs']) + int(summary['fuzz_inputs']):,} |",
        f"| fuzzed calls answered with a documented exception | {summary['fuzz_documented_errors']:,} "
        f"of {summary['fuzz_inputs']:,} (the rest succeeded) |",
        f"| crafted files tried (NIfTI, HDF5, CSV/TSV, JSON; each under 10 MB) | {n_crafted} |",
        f"| **most any crafted file made the process allocate beyond its output** | "
        f"**{_mb(max_alloc)}** (budget 268.4 MB = 256 MiB) |",
        "",
        "## Fault classes",
        "",
        "| class | scenarios | faults injected | bytes verified | files lost | failing |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in summary.get("classes", []):  # type: ignore[union-attr]
        lines.append(
            f"| {row['class']} | {row['scenarios']} | {row['injected']:,} | {row['bytes_verified']:,} | "
            f"{row['files_lost']} | {row['failing']} |"
        )
    if crafted:
        lines += [
            "",
            "## Crafted files",
            "",
            "Each file is planted in a copy of the sample and read through the public API in a child",
            "process; the allocation is the larger of the tracemalloc peak and the RSS high-water growth,",
            "minus the output the file legitimately holds (`tests/hostile/`).",
            "",
            "| file type | files tried | largest file | most allocated beyond output | outcome |",
            "|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {c['kind']} | {c['files']} | {_mb(c['max_file_bytes'])} | {_mb(c['max_alloc_bytes'])} | "
            f"{c['errors']} |"
            for c in crafted
        ]
    lines += [
        "",
        "## Fault scenarios",
        "",
        "| scenario | injected | bytes verified | lost |",
        "|---|---:|---:|---:|",
    ]
    for rec in faults:
        lines.append(
            f"| {rec.get('fault', rec.get('test'))} | {rec.get('injected', 0)} | "
            f"{int(rec.get('bytes_verified', 0)):,} | {rec.get('files_lost', 0)} |"
        )
    failed: list[dict] = summary["failed"]  # type: ignore[assignment]
    if failed:
        lines += ["", "## Failing scenarios (fix before release)", ""]
        lines += [
            f"- `{r.get('test')}` (files lost: {r.get('files_lost', 0)}): "
            f"{' '.join(str(r.get('error', '')).split())[:200]}"
            for r in failed
        ]
    if load:
        lines += ["", "## Load", "", "| check | figures |", "|---|---|"]
        for rec in load:
            name = str(rec.get("test", "")).rsplit("::", 1)[-1]
            shown = ("keys", "threads", "calls", "seconds", "py_peak_mb", "rss_growth_mb")
            figures = ", ".join(f"{k}={rec[k]}" for k in shown if k in rec)
            lines.append(f"| {name} | {figures} |")
        lines += [
            "",
            "Bounds asserted by the tests: under 60 s and under 400 MB of Python allocations",
            "(tracemalloc peak) for the 100,000-key listing, dry-run plan and `describe()`;",
            "`rss_growth_mb` is informative only. Times are on a shared 2-core runner.",
        ]
    lines += [
        "",
        "## What the suite covers",
        "",
        "- Network (`tests/faults/test_network_faults.py`): connection reset mid-body, truncated",
        "  body with a correct Content-Length, short and long Content-Length, a stalled server,",
        "  500/503 bursts, a server that ignores Range, an object that changes between the first",
        "  and the resumed request (client retry and engine resume), 403 on a key, held-out",
        "  sessions never requested, listing pages failing once or for good, a no-op re-run",
        "  making no GET.",
        "- Process and disk (`test_process_faults.py`): SIGKILL mid-body then rerun (restart and",
        "  Range resume), Ctrl-C, two concurrent runs on one data directory, a full tmpfs",
        "  (ENOSPC) and RLIMIT_FSIZE (EFBIG).",
        "- Local damage (`test_local_faults.py`): altered/truncated/missing files found by",
        "  `laion-fmri verify` and restored by `--repair`; seven kinds of cache damage; a damaged",
        "  download manifest.",
        "- Own state (`test_state_faults.py`): `cache clear` run again and again while other",
        "  processes load and rewrite the same entry, a cache folder symlinked elsewhere, damaged",
        "  cache sidecars (rebuilt) and config files (one-line error naming the file).",
        "- Crafted files (`tests/hostile/`): NIfTI headers beyond the dataset's grid and trial",
        "  counts (the 700^3 mask), maps at the bound, HDF5 datasets declared beyond the counts or",
        "  their stored bytes (48 x 2^28 float16), huge chunks, million-column and 9 MB-cell",
        "  tables, deeply nested / wrongly typed / oversized JSON; each with its exact error class.",
        "- Hostile input (`tests/test_hostile_input.py`): escaping keys (`..`, absolute, `\\`, NUL,",
        "  control characters, over-long), symlinked folders and `.part` files, 28 crafted NIfTI",
        "  files (also read under a 2 GiB address-space cap), malformed trial tables, HDF5 and CSV",
        "  stimulus files; `tests/faults/test_security.py`: anonymous requests only, grant file",
        "  0600, no unpickling.",
        "- Fuzzing (`tests/test_fuzz_api.py`, hypothesis): ids, ROI queries, masks, thresholds,",
        "  split names, image names, config values, download arguments.",
        "",
        "Reproduce: `python -m pytest tests/faults tests/hostile tests/test_hostile_input.py",
        "tests/test_fuzz_api.py tests/test_load.py && python scripts/reliability_report.py`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the report; return 1 when a file was lost or nothing was recorded."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--max-age-hours", type=float, default=12.0)
    args = parser.parse_args(argv)
    results = read_results(args.log, args.max_age_hours)
    if not results:
        print(f"No results in {args.log}; run the reliability suite first.", file=sys.stderr)
        return 1
    summary = summarize(results)
    newest = max(r.get("time", 0) for r in results)
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(newest))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(summary, generated), encoding="utf-8")
    print(
        f"Wrote {args.out}: {summary['faults_injected']} faults injected, "
        f"{summary['bytes_verified']:,} bytes verified, {summary['files_lost']} files lost, "
        f"{len(summary['failed'])} scenario(s) failing, "
        f"{int(summary['hostile_inputs']) + int(summary['fuzz_inputs'])} bad inputs tried."
    )
    return 1 if summary["files_lost"] or summary["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
