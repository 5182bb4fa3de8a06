"""Benchmark: fresh-process reloads of a cached full-grid session (issue #17, item 1).

Usage::

    python benchmarks/bench_reload.py [--workdir DIR] [--n-trials 256] [--repeats 5]

Builds (once, cached under ``--workdir``) the ``full-grid`` sample (143^3 x
``n_trials``) and measures, each run in a NEW Python process, the time from
``load_subject`` to the returned array (imports are timed separately):

* ``first``            cache and mask index empty: decode the session, write the cache;
* ``cached_no_index``  betas cached, but the stored brain-mask index removed (the
                       path before #17: the mask NIfTI is decoded in every new process);
* ``cached``           whole session from the cache (memory-mapped; ``touched_s`` adds
                       reading every page);
* ``roi_cached``       an ROI of about 5 % of the brain voxels from the cache.

Peak RSS is ``VmHWM`` of the child. Results go to ``benchmarks/results/reload.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import peak_mb

HERE = Path(__file__).resolve().parent
SUB = "sub-03"
SES = "ses-01"


def variant(name: str, data: Path, roi: str | None) -> dict[str, object]:
    """One measurement in this (fresh) process."""
    t_import = time.perf_counter()
    import numpy as np

    from laion_fmri.subject import load_subject

    imported = time.perf_counter() - t_import
    t0 = time.perf_counter()
    sub = load_subject(SUB, data_dir=data)
    out = sub.get_betas(SES, roi=roi) if name == "roi_cached" else sub.get_betas(SES)
    seconds = time.perf_counter() - t0
    checksum = float(np.nansum(out, dtype=np.float64))  # touches every page
    return {"variant": name, "seconds": seconds, "touched_s": time.perf_counter() - t0,
            "import_s": imported, "peak_rss_mb": peak_mb(), "shape": list(out.shape),
            "output_mb": out.nbytes / 2**20, "checksum": checksum}


def _run(name: str, data: Path, roi: str | None, repeats: int, before=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeats):
        if before is not None:
            before()
        proc = subprocess.run(
            [sys.executable, __file__, "--variant", name, "--data", str(data), "--roi", roi or ""],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"variant {name} failed:\n{proc.stderr}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["all_seconds"] = [r["seconds"] for r in runs]
    best["median_seconds"] = sorted(r["seconds"] for r in runs)[len(runs) // 2]
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    print(f"  {name:16s} best {1000 * best['seconds']:8.1f} ms  median "
          f"{1000 * best['median_seconds']:8.1f} ms  touched {1000 * best['touched_s']:7.1f} ms  "
          f"peak {best['peak_rss_mb']:5.0f} MB", flush=True)
    return best


def _drop_index(data: Path) -> None:
    from laion_fmri import _cache as cache

    folder = cache.cache_root(data) / SUB
    for path in folder.iterdir():
        if path.name.startswith(("mask-", "file-", "grid-", "roi-")):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.environ.get("LAION_FMRI_BENCH_DIR",
                                                            "/tmp/laion_fmri_bench"))
    parser.add_argument("--n-trials", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "reload.json")
    parser.add_argument("--variant")
    parser.add_argument("--data")
    parser.add_argument("--roi")
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(variant(args.variant, Path(args.data), args.roi or None)))
        return 0

    from laion_fmri import _cache as cache
    from laion_fmri.sample import ensure_sample_dataset
    from laion_fmri.subject import load_subject

    work = Path(args.workdir)
    sample = ensure_sample_dataset("full-grid", n_trials=args.n_trials, cache_root=work / "samples")
    data = work / "reload"
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(sample, data, copy_function=os.link)  # hard links: no copy of the data
    (data / ".laion_fmri").mkdir(exist_ok=True)

    sub = load_subject(SUB, data_dir=data)
    n = sub.get_n_voxels()
    sizes = {q: int(sub.get_roi_mask(q).sum()) for q in
             [*sub.get_available_rois(), *sub.get_available_categories()]}
    roi = min(sizes, key=lambda q: abs(sizes[q] / n - 0.05))
    cache.clear(data)

    results = {
        "first": _run("first", data, None, min(args.repeats, 3), before=lambda: cache.clear(data)),
    }
    results["cached_no_index"] = _run("cached_no_index", data, None, args.repeats,
                                      before=lambda: _drop_index(data))
    load_subject(SUB, data_dir=data).get_betas(SES, roi=roi)  # store the ROI columns once
    results["cached"] = _run("cached", data, None, args.repeats)
    results["roi_cached"] = _run("roi_cached", data, roi, args.repeats)
    index_bytes = sum(p.stat().st_size for p in (cache.cache_root(data) / SUB).rglob("*")
                      if p.is_file() and not p.name.endswith((".lock", "_betas.npy", "_betas.json")))
    shutil.rmtree(data)

    first = float(results["first"]["seconds"])
    cached = float(results["cached"]["seconds"])
    roi_s = float(results["roi_cached"]["seconds"])
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_avg_at_end": os.getloadavg()},
        "method": f"each run a new Python process; time from load_subject to the returned array "
                  f"(imports excluded, reported as import_s); best of {args.repeats} "
                  "(first: of 3, cache cleared before each); peak RSS = max VmHWM",
        "session": {"grid": [143, 143, 143], "n_trials": args.n_trials, "n_voxels": n,
                    "roi": roi, "roi_voxels": sizes[roi], "roi_fraction": sizes[roi] / n},
        "stored_index_bytes": index_bytes,
        "results": results,
        "ratios": {"first_over_cached": first / cached, "first_over_roi_cached": first / roi_s,
                   "no_index_over_cached": float(results["cached_no_index"]["seconds"]) / cached},
        "targets_met": {"cached_reload_le_30ms": cached <= 0.030, "roi_le_20ms": roi_s <= 0.020,
                        "cached_50x_faster_than_first": first / cached >= 50,
                        "roi_50x_faster_than_first": first / roi_s >= 50},
        "all_variants_agree": len({r["checksum"] for k, r in results.items()
                                   if k != "roi_cached"}) == 1,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("ratios", "targets_met", "all_variants_agree")},
                     indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
