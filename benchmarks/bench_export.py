"""Benchmark: one ROI over all sessions from the voxel-major zarr export vs per-session caches.

Usage::

    python benchmarks/bench_export.py [--workdir DIR] [--n-trials 256] [--sessions 20]

Builds (once, under ``--workdir``) ``--sessions`` ``full-grid`` sample
sessions (143^3, gzip level 1, one seed each) in one data dir, then, each in a
fresh subprocess:

* ``export``         ``laion_fmri.export.export_zarr`` of the whole brain
  (decodes every session into the cache, then writes the zarr group);
* ``roi_caches``     baseline: ``np.concatenate([sub.get_betas(s, roi=R) for s in sessions])``
  from the warm per-session caches;
* ``roi_zarr``       ``open_export(OUT).read(roi=R)`` (same numbers, checked);
* ``roi_zarr_lz4``   the same from an export written with ``codec="lz4"``;
* ``roi_zarr_export`` reading a ``--roi R`` export whole.

Every session holds different betas (one sample per seed), so the
compressor cannot profit from repeated sessions.

``R`` is the ROI (or category) closest to 5,000 voxels. Timings run from
``load_subject`` to the array (imports reported separately); each read is
measured warm (page cache) and cold (``*_cold``: the files evicted with
``posix_fadvise(DONTNEED)`` first). Results go to ``benchmarks/results/export.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUB = "sub-03"
SES = "ses-01"
TARGET_ROI_VOXELS = 5000


def _peak_mb() -> float:
    """Peak RSS of this process (VmHWM; ``ru_maxrss`` would include the forking parent)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _distinct_sessions(work: Path, n_trials: int, n_sessions: int) -> Path:
    """A data dir whose sessions hold *different* betas (one full-grid sample per seed).

    Repeating one session would let the compressor find the repetition and
    flatter the zarr side. Everything but the betas comes from seed 0 (the
    brain mask and ROIs do not depend on the seed).
    """
    import shutil

    from laion_fmri import layout
    from laion_fmri.sample import make_sample_dataset

    seeds = []
    for seed in range(n_sessions):
        root = work / "seeds" / f"fullgrid-{n_trials}-seed{seed}"
        if not (root / "participants.tsv").is_file():
            make_sample_dataset(root, scale="full-grid", n_trials=n_trials, seed=seed)
        seeds.append(root)
    data = work / f"export-{n_trials}x{n_sessions}"
    if data.exists():
        shutil.rmtree(data)
    for path in seeds[0].rglob("*"):
        rel = path.relative_to(seeds[0]).as_posix()
        if not path.is_file() or layout.session_of(rel) is not None:
            continue
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).symlink_to(path)
    for i, root in enumerate(seeds, start=1):
        ses = f"ses-{i:02d}"
        for path in root.rglob(f"*{SES}*"):
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix().replace(SES, ses)
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            (data / rel).symlink_to(path)
    (data / ".laion_fmri").mkdir(exist_ok=True)
    return data


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _pick_roi(sub) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """ROI names (one ROI or a category's ROIs) whose union is closest to 5,000 voxels."""
    options = [[r] for r in sub.get_available_rois()]
    options += [sub.get_available_rois(category=c) for c in sub.get_available_categories()]
    sized = [(abs(int(sub.get_roi_mask(o).sum()) - TARGET_ROI_VOXELS), o) for o in options]
    _, best = min(sized)
    return best, int(sub.get_roi_mask(best).sum())


def _evict(paths: list[Path]) -> None:
    """Drop the files' pages from the OS page cache (cold reads without root)."""
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def variant(name: str, data: Path, out: Path, roi: list[str]) -> dict[str, object]:
    """Run one measurement in this (fresh) process (the user's journey after imports)."""
    t_import = time.perf_counter()
    import numpy as np

    from laion_fmri.export import export_zarr, open_export
    from laion_fmri.subject import load_subject

    import_s = time.perf_counter() - t_import
    extra: dict[str, object] = {"import_s": import_s}
    t0 = time.perf_counter()
    sub = load_subject(SUB, data_dir=data)
    name = name.removesuffix("_cold")
    if name == "export":
        export_zarr(sub, out, overwrite=True)
        result = np.empty((0, 0), np.float32)
    elif name == "export_lz4":
        export_zarr(sub, out.with_name("lz4.zarr"), codec="lz4", overwrite=True)
        result = np.empty((0, 0), np.float32)
    elif name == "roi_zarr_lz4":
        result = open_export(out.with_name("lz4.zarr")).read(roi=roi)
    elif name == "export_roi":
        export_zarr(sub, out.with_name("roi.zarr"), roi=roi, overwrite=True)
        result = np.empty((0, 0), np.float32)
    elif name == "roi_caches":
        result = np.concatenate([sub.get_betas(session=s, roi=roi) for s in sub.get_sessions()])
    elif name == "roi_zarr":
        result = open_export(out).read(roi=roi)
    elif name == "roi_zarr_export":
        result = open_export(out.with_name("roi.zarr")).read()
    else:
        raise SystemExit(f"unknown variant {name}")
    seconds = time.perf_counter() - t0
    return {
        "variant": name, "seconds": seconds, "peak_rss_mb": _peak_mb(),
        "shape": list(result.shape), "output_mb": result.nbytes / 2**20,
        "checksum": float(np.nansum(result, dtype=np.float64)), **extra,
    }


def _run(name: str, data: Path, out: Path, repeats: int, roi: list[str]) -> dict[str, object]:
    runs = []
    for _ in range(repeats):
        if name.endswith("_cold"):
            _evict([data / ".laion_fmri" / "cache", out, out.with_name("roi.zarr"),
                    out.with_name("lz4.zarr")])
        proc = subprocess.run(
            [sys.executable, __file__, "--variant", name, "--data", str(data), "--zarr", str(out),
             "--roi", ",".join(roi)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"variant {name} failed:\n{proc.stderr}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    res = dict(min(runs, key=lambda r: r["seconds"]))
    res["all_seconds"] = [r["seconds"] for r in runs]
    res["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    print(f"  {name:16s} {res['seconds']:8.3f} s  peak {res['peak_rss_mb']:7.0f} MB  "
          f"shape {res['shape']}", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.environ.get("LAION_FMRI_BENCH_DIR",
                                                            "/tmp/laion_fmri_bench"))
    parser.add_argument("--n-trials", type=int, default=256)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "export.json")
    parser.add_argument("--variant")
    parser.add_argument("--data")
    parser.add_argument("--zarr")
    parser.add_argument("--roi")
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(variant(args.variant, Path(args.data), Path(args.zarr), args.roi.split(","))))
        return 0

    work = Path(args.workdir)
    data = _distinct_sessions(work, args.n_trials, args.sessions)
    zarr_out = work / f"export-{args.n_trials}x{args.sessions}.zarr"
    from laion_fmri.subject import load_subject

    roi, n_roi = _pick_roi(load_subject(SUB, data_dir=data))
    print(f"export benchmark: {args.sessions} sessions x {args.n_trials} trials, ROI {roi} "
          f"({n_roi} voxels)", flush=True)
    results = {
        "export": _run("export", data, zarr_out, 1, roi),
        "export_lz4": _run("export_lz4", data, zarr_out, 1, roi),
        "export_roi": _run("export_roi", data, zarr_out, 1, roi),
    }
    for name in ("roi_caches", "roi_zarr", "roi_zarr_lz4", "roi_zarr_export"):
        for suffix in ("", "_cold"):
            results[name + suffix] = _run(name + suffix, data, zarr_out, args.repeats, roi)
    if results["roi_caches"]["checksum"] != results["roi_zarr"]["checksum"]:
        raise SystemExit("zarr and cache reads differ")
    cache_bytes = _dir_bytes(data / ".laion_fmri" / "cache")
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_avg_at_end": list(os.getloadavg())},
        "method": "each variant in a fresh process (fastest of --repeats); timed from "
                  "load_subject to the array (imports excluded, reported as import_s); warm = "
                  "files in the page cache, _cold = evicted with posix_fadvise(DONTNEED) first",
        "dataset": {"sessions": args.sessions, "n_trials_per_session": args.n_trials,
                    "shape": [args.sessions * args.n_trials, results["roi_caches"]["shape"][1]],
                    "roi": roi, "roi_voxels": n_roi},
        "sizes_mb": {"per_session_caches": cache_bytes / 2**20,
                     "zarr_whole_brain": _dir_bytes(zarr_out) / 2**20,
                     "zarr_whole_brain_lz4": _dir_bytes(zarr_out.with_name("lz4.zarr")) / 2**20,
                     "zarr_roi_only": _dir_bytes(zarr_out.with_name("roi.zarr")) / 2**20},
        "results": results,
        "speedups_vs_caches": {
            f"{name}{suffix}":
                results[f"roi_caches{suffix}"]["seconds"] / results[f"{name}{suffix}"]["seconds"]
            for name in ("roi_zarr", "roi_zarr_lz4", "roi_zarr_export") for suffix in ("", "_cold")
        },
        "target_speedup": 10.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"ROI over all sessions, speed-up vs per-session caches: {summary['speedups_vs_caches']}; "
          f"sizes MB {summary['sizes_mb']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
