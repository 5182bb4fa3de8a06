"""Benchmark: streaming reads of single- vs multi-member gzip betas (pigz/bgzip/concatenated).

Usage::

    python benchmarks/bench_gzip_members.py [--workdir DIR] [--n-trials 64] [--grid 143]

Writes (once, cached under ``--workdir``) the same float32 ``grid^3 x n_trials``
betas three ways with the sample generator's writer (gzip level 1): one gzip
member (``single``, the baseline), one member per volume (``concatenated``)
and 65,280-byte BGZF blocks with the FEXTRA field (``bgzf``). Each variant is
read with :func:`laion_fmri.io` streaming reader over an ellipsoid brain mask in
a fresh subprocess (wall time, CPU time, peak RSS from ``resource.getrusage``).
Ratios are against ``single`` measured in the same run.

Results go to ``benchmarks/results/gzip_members.json``.
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

import numpy as np

HERE = Path(__file__).resolve().parent
STYLES = ("single", "concatenated", "bgzf")


def _mask(grid: int) -> np.ndarray:
    axis = (np.arange(grid) - (grid - 1) / 2) / (grid * 0.36)
    u, v, w = np.meshgrid(axis, axis * 1.15, axis * 1.3, indexing="ij", sparse=True)
    return (u * u + v * v + w * w) < 1.0


def _volumes(mask: np.ndarray, n_trials: int):  # type: ignore[no-untyped-def]
    """The same random betas inside ``mask`` for every style (seed 0)."""
    rng = np.random.default_rng(0)
    for _ in range(n_trials):
        vol = np.zeros(mask.shape, np.float32)
        vol[mask] = rng.standard_normal(int(mask.sum()), dtype=np.float32)
        yield vol


def _write(workdir: Path, grid: int, n_trials: int) -> dict[str, Path]:
    from laion_fmri.sample._writers import nifti_header, write_nifti_stream

    workdir.mkdir(parents=True, exist_ok=True)
    mask = _mask(grid)
    np.save(workdir / "mask.npy", mask)
    affine = np.diag([1.7778, 1.7778, 1.7778, 1.0])
    paths = {}
    for style in STYLES:
        path = workdir / f"betas_{style}_{grid}_{n_trials}.nii.gz"
        paths[style] = path
        if path.exists():
            continue
        tmp = path.with_suffix(".part")
        write_nifti_stream(tmp, nifti_header((grid, grid, grid, n_trials), affine, np.float32),
                           _volumes(mask, n_trials), level=1, gzip_style=style)
        tmp.rename(path)
    return paths


def variant(path: Path, mask_path: Path) -> dict[str, float]:
    """One measured read (runs in the child process)."""
    from laion_fmri import _nifti as nifti

    mask = np.load(mask_path)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    out = nifti.read_masked(path, nifti.gather_offsets(mask))
    wall = time.perf_counter() - start
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": wall,
        "cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        "peak_rss_mb": ru1.ru_maxrss / 1024,
        "output_mb": out.nbytes / 2**20,
        "checksum": float(np.nansum(out[:, ::97], dtype=np.float64)),
    }


def _run(path: Path, mask_path: Path, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(path), str(mask_path)],
            capture_output=True, text=True, check=True,
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["wall_s"])
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(
        os.environ.get("LAION_FMRI_BENCH_DIR", "/tmp/laion_fmri_bench")) / "gzip_members")
    parser.add_argument("--n-trials", type=int, default=64)
    parser.add_argument("--grid", type=int, default=143)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gzip_members.json")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(variant(*args.child)))
        return 0
    paths = _write(args.workdir, args.grid, args.n_trials)
    mask_path = args.workdir / "mask.npy"
    results = {style: _run(paths[style], mask_path, args.repeats) for style in STYLES}
    base = results["single"]
    for style, res in results.items():
        res["file_mb"] = paths[style].stat().st_size / 2**20
        res["wall_vs_single"] = res["wall_s"] / base["wall_s"]
        res["cpu_vs_single"] = res["cpu_s"] / base["cpu_s"]
        res["peak_minus_output_mb"] = res["peak_rss_mb"] - res["output_mb"]
        if res["checksum"] != base["checksum"]:
            raise SystemExit(f"{style}: read different values than the single-member file")
        print(f"{style:13s} {res['wall_s']:7.2f} s ({res['wall_vs_single']:.2f}x single), "
              f"cpu {res['cpu_s']:6.2f} s ({res['cpu_vs_single']:.2f}x), peak {res['peak_rss_mb']:6.0f} MB "
              f"(output {res['output_mb']:.0f} MB), file {res['file_mb']:.0f} MB")
    summary = {
        "benchmark": "gzip_members",
        "grid": args.grid,
        "n_trials": args.n_trials,
        "n_voxels": int(np.load(mask_path).sum()),
        "notes": "best wall of --repeats fresh subprocesses (CPU time of that run); peak RSS = "
                 "max ru_maxrss; baseline = the single-member file read in the same run; on a "
                 "shared machine compare cpu_vs_single, wall times include waiting for a core",
        "load_average_1min": os.getloadavg()[0],
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
