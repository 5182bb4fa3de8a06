"""Append one JSON line per reliability check to the results log.

The log (``benchmarks/results/reliability.jsonl`` at the repository root, or
the file named by ``RELIABILITY_LOG``) is read by
``scripts/reliability_report.py``, which keeps the newest line per test id and
writes ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LOG = ROOT / "benchmarks" / "results" / "reliability.jsonl"
_LOCK = threading.Lock()


def log_path() -> Path:
    """Where results are appended."""
    return Path(os.environ.get("RELIABILITY_LOG") or DEFAULT_LOG)


def record(kind: str, test: str, **fields: object) -> None:
    """Append one result line.

    Parameters
    ----------
    kind : str
        ``"fault"``, ``"hostile"``, ``"fuzz"`` or ``"load"``.
    test : str
        Stable id of the check (the report keeps the newest line per id).
    **fields
        Figures: ``injected``, ``bytes_verified``, ``files_lost``, ``inputs`` ...
    """
    line = {"kind": kind, "test": test, "time": time.time(), **fields}
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK, open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, sort_keys=True, default=str) + "\n")
