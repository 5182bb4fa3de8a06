"""Benchmark: first load, cached reload and ROI reads of a full-grid beta session.

Usage::

    python benchmarks/bench_betas.py [--workdir DIR] [--n-trials 256] [--sessions 10]

Builds (once, cached under ``--workdir``) a ``full-grid`` sample session
(143^3 x ``n_trials`` float32, gzip level 1) and measures, each variant in a
fresh subprocess (peak RSS: ``VmHWM``):

* ``ours_first``    ``Subject.get_betas`` whole brain, cache empty (decode + write cache);
* ``ours_nocache``  the same with ``cache=False`` (pure streaming decode);
* ``stdlib_gzip``   standard-library ``gzip`` stream, per-volume boolean masking;
* ``nibabel``       ``nibabel`` loads the 4-D image, then masks;
* ``cached``        whole brain again from the cache (mapped, every page touched);
* ``roi_cached``    an ROI of about 5 % of the brain voxels from the cache;
* ``all_first`` / ``all_cached``  ``get_betas(session="all", roi=...)`` over
  ``--sessions`` sessions (links to the same file under different session ids).

Results go to ``benchmarks/results/betas.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import peak_mb

HERE = Path(__file__).resolve().parent
SUB = "sub-03"
SES = "ses-01"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _link_tree(src: Path, dest: Path, sessions: list[str]) -> None:
    """A data dir of symlinks to ``src`` where ``ses-01`` appears under every id in ``sessions``."""
    from laion_fmri import layout

    if dest.exists():
        shutil.rmtree(dest)
    for path in src.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(src).as_posix()
        if f"/{SES}/" in rel:
            for ses in sessions:
                target = dest / rel.replace(f"/{SES}/", f"/{ses}/").replace(f"_{SES}_", f"_{ses}_")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(path)
        elif layout.session_of(rel) in (None, layout.ANATOMICAL_SESSION):  # + the brain mask
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    (dest / ".laion_fmri").mkdir(exist_ok=True)


def _pick_roi(sub) -> tuple[object, float]:  # type: ignore[no-untyped-def]
    """The ROI query (name or category) whose size is closest to 5 % of the brain."""
    n = sub.get_n_voxels()
    options = [*sub.get_available_rois(), *sub.get_available_categories()]
    sized = [(abs(sub.get_roi_mask(q).sum() / n - 0.05), q) for q in options]
    _, best = min(sized)
    return best, float(sub.get_roi_mask(best).sum() / n)


# ----------------------------------------------------------------------------- variants
def variant(name: str, data: Path) -> dict[str, object]:
    """Run one measurement in this (fresh) process."""
    import numpy as np

    from laion_fmri import layout
    from laion_fmri.subject import load_subject

    sub = load_subject(SUB, data_dir=data)
    sub.get_n_voxels()  # brain mask read outside the timing
    path = data / layout.betas_key(SUB, SES)
    base = _rss_mb()
    extra: dict[str, object] = {}
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    if name == "ours_first":
        out = sub.get_betas(SES)
    elif name == "ours_nocache":
        out = sub.get_betas(SES, cache=False)
    elif name == "stdlib_gzip":
        import gzip

        import nibabel as nib

        mask3d = sub.get_brain_mask().reshape(sub.grid_shape)
        with gzip.open(path, "rb") as fh:
            hdr = nib.Nifti1Header(fh.read(348))
            fh.read(int(hdr["vox_offset"]) - 348)
            shape = hdr.get_data_shape()
            vol_bytes = int(np.prod(shape[:3])) * 4
            out = np.empty((shape[3], int(mask3d.sum())), np.float32)
            for t in range(shape[3]):
                vol = np.frombuffer(fh.read(vol_bytes), hdr.get_data_dtype())
                out[t] = vol.reshape(shape[:3], order="F")[mask3d]
    elif name == "nibabel":
        import nibabel as nib

        mask3d = sub.get_brain_mask().reshape(sub.grid_shape)
        img = nib.load(str(path))
        full = img.get_fdata(dtype=np.float32)
        out = np.ascontiguousarray(full[mask3d].T)
        del full, img
    elif name == "cached":
        out = sub.get_betas(SES)
        mapped = time.perf_counter() - t0
        float(out.sum())  # touch every page
        extra["map_only_s"] = mapped
    elif name == "roi_cached":
        roi, frac = _pick_roi(sub)
        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        out = sub.get_betas(SES, roi=roi)
        extra.update(roi=roi, roi_fraction=frac)
    elif name in ("all_first", "all_cached"):
        roi, frac = _pick_roi(sub)
        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        res = sub.get_betas("all", roi=roi)
        out = np.empty((0, 0), np.float32)
        extra.update(roi=roi, roi_fraction=frac, n_sessions=len(res),
                     shape_each=list(next(iter(res.values())).shape),
                     output_mb=sum(v.nbytes for v in res.values()) / 2**20)
    else:
        raise SystemExit(f"unknown variant {name}")
    seconds = time.perf_counter() - t0
    result = {
        "variant": name,
        "seconds": seconds,
        "cpu_seconds": _cpu_s() - cpu0,
        "peak_rss_mb": peak_mb(),
        "baseline_rss_mb": base,
        "shape": list(out.shape),
        "output_mb": out.nbytes / 2**20,
        **extra,
    }
    if name != "all_first" and name != "all_cached":
        result["checksum"] = float(np.nansum(out, dtype=np.float64))
    return result


def _run(name: str, data: Path, repeats: int = 1, before=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Run a variant ``repeats`` times in fresh processes; keep the fastest, report all."""
    runs = []
    for _ in range(repeats):
        if before is not None:
            before()
        proc = subprocess.run(
            [sys.executable, __file__, "--variant", name, "--data", str(data)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"variant {name} failed:\n{proc.stderr}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    res = dict(min(runs, key=lambda r: r["seconds"]))
    res["all_seconds"] = [r["seconds"] for r in runs]
    res["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    print(f"  {name:13s} {res['seconds']:8.3f} s (of {len(runs)}, cpu {res['cpu_seconds']:.3f} s)  "
          f"peak {res['peak_rss_mb']:7.0f} MB (baseline {res['baseline_rss_mb']:.0f} MB, "
          f"output {res['output_mb']:.0f} MB)", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.environ.get("LAION_FMRI_BENCH_DIR",
                                                            "/tmp/laion_fmri_bench"))
    parser.add_argument("--n-trials", type=int, default=256)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "betas.json")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--skip-nibabel", action="store_true")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh-process runs per fast variant (the fastest is kept)")
    parser.add_argument("--variant")
    parser.add_argument("--data")
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(variant(args.variant, Path(args.data))))
        return 0

    from laion_fmri import _cache as cache
    from laion_fmri import layout
    from laion_fmri.sample import ensure_sample_dataset

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sample = ensure_sample_dataset("full-grid", n_trials=args.n_trials, cache_root=work / "samples")
    print(f"sample tree: {sample} ({time.perf_counter() - t0:.1f} s)", flush=True)
    one = work / "one"
    _link_tree(sample, one, [SES])
    many = work / "many"
    _link_tree(sample, many, [f"ses-{i:02d}" for i in range(1, args.sessions + 1)])

    results: dict[str, dict[str, object]] = {}
    reps = args.repeats
    cache.clear(one)
    results["stdlib_gzip"] = _run("stdlib_gzip", one, reps)
    results["ours_nocache"] = _run("ours_nocache", one, reps)
    results["ours_first"] = _run("ours_first", one, reps, before=lambda: cache.clear(one))
    results["cached"] = _run("cached", one, reps)
    results["roi_cached"] = _run("roi_cached", one, reps)
    if not args.skip_nibabel:
        results["nibabel"] = _run("nibabel", one, min(reps, 2))
    cache.clear(many)
    results["all_first"] = _run("all_first", many)
    results["all_cached"] = _run("all_cached", many)
    for folder in (one, many):  # the sample itself stays for the next run
        cache.clear(folder)

    checks = {r["checksum"] for k, r in results.items() if "checksum" in r and k != "roi_cached"}
    first = results["ours_first"]
    out_mb = float(first["output_mb"])
    ratios = {
        "stdlib_gzip_over_ours_first": results["stdlib_gzip"]["seconds"] / first["seconds"],
        "stdlib_gzip_over_ours_nocache": results["stdlib_gzip"]["seconds"]
        / results["ours_nocache"]["seconds"],
        "first_over_cached": first["seconds"] / results["cached"]["seconds"],
    }
    ratios["cpu_stdlib_gzip_over_ours_first"] = (
        results["stdlib_gzip"]["cpu_seconds"] / first["cpu_seconds"]
    )
    if "nibabel" in results:
        ratios["nibabel_over_ours_first"] = results["nibabel"]["seconds"] / first["seconds"]
        ratios["cpu_nibabel_over_ours_first"] = (
            results["nibabel"]["cpu_seconds"] / first["cpu_seconds"]
        )
    targets = {
        "first_2x_vs_stdlib": ratios["stdlib_gzip_over_ours_first"] >= 2,
        "first_8x_vs_nibabel": ratios.get("nibabel_over_ours_first", 0) >= 8,
        "first_peak_within_output_plus_150mb": float(first["peak_rss_mb"])
        - float(first["baseline_rss_mb"]) <= out_mb + 150,
        "cached_50x_faster": ratios["first_over_cached"] >= 50,
        "roi_cached_under_50ms": float(results["roi_cached"]["seconds"]) < 0.05,
    }
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_avg_at_end": os.getloadavg()},
        "method": f"each variant in a fresh process; fastest of {reps} runs (nibabel 2, "
                  "the 10-session runs once); peak RSS = max VmHWM over the runs",
        "session": {"grid": [143, 143, 143], "n_trials": args.n_trials,
                    "shape": first["shape"], "output_mb": out_mb,
                    "gzip_bytes": (one / layout.betas_key(SUB, SES)).stat().st_size},
        "results": results,
        "ratios": ratios,
        "targets_met": targets,
        "all_variants_agree": len(checks) == 1,
    }
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"ratios": ratios, "targets_met": targets,
                      "all_variants_agree": report["all_variants_agree"]}, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
