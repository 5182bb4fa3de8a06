"""Run every benchmark script in turn; each writes its figures to benchmarks/results/.

Usage: ``python benchmarks/run_all.py [NAME ...]`` (names: betas, download, gzip_members,
splits, stimuli, templates, torch, export, time_to_betas, reload; default all). Each benchmark compares
our code with a baseline
measured in the same run and reports ratios and peak memory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = (
    "splits", "stimuli", "betas", "gzip_members", "torch", "download", "templates", "export",
    "time_to_betas", "reload",
)


def main(argv: list[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(ORDER)
    unknown = sorted(set(names) - set(ORDER))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(ORDER)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        script = HERE / f"bench_{name}.py"
        print(f"\n##### {script.name}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)])
        print(f"##### {script.name}: exit {code} after {time.perf_counter() - start:.0f} s")
        if code:
            failed.append(name)
    print(f"\nresults in {HERE / 'results'}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
