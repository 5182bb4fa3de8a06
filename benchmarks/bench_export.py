"""Benchmark: one ROI over all sessions from the voxel-major zarr export vs per-session caches.

Usage::

    python benchmarks/bench_export.py [--workdir DIR] [--n-trials 256] [--sessions 20]
                                      [--realistic-voxels 270000 | --no-realistic]

Builds (once, under ``--workdir``) ``--sessions`` ``full-grid`` sample
sessions (143^3, gzip level 1, one seed each) in one data dir, then, each in a
fresh subprocess:

* ``export``          ``laion_fmri.export.export_zarr`` of the whole brain, default
  codec (raw float32; decodes every session into the cache, then writes);
* ``export_lz4`` / ``export_zstd`` the same with blosc lz4 / zstd (byte shuffle);
* ``export_roi``      an export of ROI ``R`` only;
* ``roi_caches``      baseline: ``np.concatenate([sub.get_betas(s, roi=R) for s in sessions])``
  from the per-session caches;
* ``roi_zarr``        ``open_export(OUT).read(roi=R)`` (same numbers, checked);
  ``roi_zarr_lz4`` / ``roi_zarr_zstd`` from the blosc exports;
* ``roi_zarr_export`` reading the ``--roi R`` export whole;
* ``roi_zarr_library`` the same columns as ``roi_zarr`` through the zarr
  library's own reader (``zarr.open_array(...).oindex``), to show what the
  direct chunk reader adds;
* ``floor_roi``       (warm) the least any reader of the export's files does
  for that result: allocate it and fill it with as many bytes by one
  contiguous ``pread`` per chunk file (no gather); ``speedups_vs_caches``
  reports ``roi_caches / floor_roi``, the most any reader could reach;
* ``blob_caches`` / ``blob_zarr``: a ball of 5,000 brain voxels that is no
  stored ROI (``get_betas(mask=...)`` per session vs ``read(mask=...)``).

Every session holds different betas (one sample per seed), so the
compressor cannot profit from repeated sessions.

``R`` is the ROI (or category) closest to 5,000 voxels. Timings run from
``load_subject`` (caches) or ``open_export`` (zarr) to the array (imports
reported separately as ``import_s``); each read is measured warm (page cache)
and cold (``*_cold``: the files evicted with ``posix_fadvise(DONTNEED)`` first).

**Realistic-scale variant** (``realistic`` in the JSON, unless
``--no-realistic``): the same sessions and ROIs, but the brain mask grown
(6-neighbour dilation, inside the 143^3 grid) to ``--realistic-voxels``
voxels, about the real data's brain size, so each per-session cache row is as
long as a real one. It is an artefact of this benchmark (the extra voxels
hold whatever the sample betas hold outside the brain), labelled as such.
Results go to ``benchmarks/results/export.json``.
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

from _common import dir_bytes, peak_mb

HERE = Path(__file__).resolve().parent
SUB = "sub-03"
SES = "ses-01"
TARGET_ROI_VOXELS = 5000
BLOB_VOXELS = 5000
BRAIN_MASK_GLOB = "*res-1pt8_desc-brain_mask.nii.gz"
READS = ("roi_caches", "roi_zarr", "roi_zarr_library", "roi_zarr_lz4", "roi_zarr_zstd",
         "roi_zarr_export", "blob_caches", "blob_zarr")
REALISTIC_READS = ("roi_caches", "roi_zarr", "roi_zarr_library", "blob_caches", "blob_zarr")


def _distinct_sessions(work: Path, n_trials: int, n_sessions: int) -> Path:
    """A data dir whose sessions hold *different* betas (one full-grid sample per seed).

    Repeating one session would let the compressor find the repetition and
    flatter the zarr side. Everything but the betas comes from seed 0 (the
    brain mask and ROIs do not depend on the seed). The data dir is rebuilt
    (symlinks, no caches), so the ``export`` timing includes decoding.
    """
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
        # Subject-level files and the anatomical session (the default brain mask).
        if not path.is_file() or layout.session_of(rel) not in (None, layout.ANATOMICAL_SESSION):
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


def _realistic(data: Path, n_voxels: int) -> Path:
    """A copy of ``data`` (symlinks, no caches) whose brain mask is dilated to about ``n_voxels`` voxels."""
    import nibabel as nib
    import numpy as np

    out = data.with_name(f"{data.name}-brain{n_voxels // 1000}k")
    if out.exists():
        shutil.rmtree(out)
    for path in data.rglob("*"):
        rel = path.relative_to(data)
        if rel.parts[0] == ".laion_fmri" or not path.is_file():
            continue
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        if path.match(BRAIN_MASK_GLOB):
            img = nib.load(path)
            mask = np.asarray(img.dataobj) > 0
            while mask.sum() < n_voxels:  # 6-neighbour dilation inside the grid
                grown = mask.copy()
                grown[1:] |= mask[:-1]
                grown[:-1] |= mask[1:]
                grown[:, 1:] |= mask[:, :-1]
                grown[:, :-1] |= mask[:, 1:]
                grown[:, :, 1:] |= mask[:, :, :-1]
                grown[:, :, :-1] |= mask[:, :, 1:]
                mask = grown
            grown_img = nib.Nifti1Image(mask.astype(np.uint8), img.affine, img.header)
            grown_img.set_data_dtype(np.uint8)
            nib.save(grown_img, out / rel)
        else:
            (out / rel).symlink_to(path.resolve())
    (out / ".laion_fmri").mkdir(exist_ok=True)
    return out


def _pick_roi(sub) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """ROI names (one ROI or a category's ROIs) whose union is closest to 5,000 voxels."""
    options = [[r] for r in sub.get_available_rois()]
    options += [sub.get_available_rois(category=c) for c in sub.get_available_categories()]
    sized = [(abs(int(sub.get_roi_mask(o).sum()) - TARGET_ROI_VOXELS), o) for o in options]
    _, best = min(sized)
    return best, int(sub.get_roi_mask(best).sum())


def _blob(sub, path: Path) -> int:  # type: ignore[no-untyped-def]
    """Save (to ``path``) a ball of brain voxels around the brain's centre that is no ROI."""
    import numpy as np

    flat = np.flatnonzero(sub.get_brain_mask())
    ijk = np.column_stack(np.unravel_index(flat, tuple(sub.grid_shape))).astype(float)
    dist = np.linalg.norm(ijk - ijk.mean(axis=0), axis=1)
    sel = np.zeros(flat.size, dtype=bool)
    sel[np.argsort(dist, kind="stable")[:BLOB_VOXELS]] = True
    np.save(path, sel)
    return int(sel.sum())


def _evict(paths: list[Path]) -> None:
    """Drop the files' pages from the OS page cache (cold reads without root)."""
    for root in paths:
        if not root.exists():
            continue
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _zarr_path(out: Path, name: str) -> Path:
    """The export each variant writes or reads."""
    if name in ("export_roi", "roi_zarr_export"):
        return out.with_name(f"{out.stem}-roi.zarr")
    for tag in ("lz4", "zstd"):
        if name.endswith(f"_{tag}"):
            return out.with_name(f"{out.stem}-{tag}.zarr")
    return out


def variant(name: str, data: Path, out: Path, roi: list[str], blob: Path) -> dict[str, object]:
    """Run one measurement in this (fresh) process (the user's journey after imports)."""
    t_import = time.perf_counter()
    import numpy as np

    from laion_fmri.export import export_zarr, open_export
    from laion_fmri.subject import load_subject

    if name.startswith("roi_zarr_library"):
        import zarr
    import_s = time.perf_counter() - t_import
    name = name.removesuffix("_cold")
    target = _zarr_path(out, name)
    sel = np.load(blob) if name.startswith("blob") else None
    t0 = time.perf_counter()
    result = np.empty((0, 0), np.float32)
    if name.startswith("export"):
        codec = {"export_lz4": "lz4", "export_zstd": "zstd"}.get(name, "none")
        export_zarr(load_subject(SUB, data_dir=data), target, codec=codec, overwrite=True,
                    roi=roi if name == "export_roi" else None)
    elif name == "roi_caches":
        sub = load_subject(SUB, data_dir=data)
        result = np.concatenate([sub.get_betas(session=s, roi=roi) for s in sub.get_sessions()])
    elif name == "blob_caches":
        sub = load_subject(SUB, data_dir=data)
        result = np.concatenate([sub.get_betas(session=s, mask=sel) for s in sub.get_sessions()])
    elif name == "roi_zarr_export":
        result = open_export(target).read()
    elif name == "roi_zarr_library":
        export = open_export(target)
        columns = export.roi_columns(roi)
        order = np.argsort(columns)
        stored = columns[order]
        array = zarr.open_array(target / "betas", mode="r")
        contiguous = stored.size and stored[-1] - stored[0] + 1 == stored.size
        # An ROI stored as one run of columns is a plain slice, zarr's fastest read.
        block = (array[:, int(stored[0]):int(stored[-1]) + 1] if contiguous
                 else array.oindex[:, stored])
        result = np.empty_like(block)
        result[:, order] = block
    elif name.startswith("roi_zarr"):
        result = open_export(target).read(roi=roi)
    elif name == "floor_roi":
        result = _floor_read(open_export(target), roi)
    elif name == "blob_zarr":
        result = open_export(target).read(mask=sel)
    else:
        raise SystemExit(f"unknown variant {name}")
    seconds = time.perf_counter() - t0
    return {
        "variant": name, "seconds": seconds, "peak_rss_mb": peak_mb(),
        "shape": list(result.shape), "output_mb": result.nbytes / 2**20,
        "checksum": float(np.nansum(result, dtype=np.float64)), "import_s": import_s,
    }


def _floor_read(export, roi: list[str]):  # type: ignore[no-untyped-def]
    """The least any reader of the export's files does for this ROI's result.

    Allocates the ``(n_trials, n_roi)`` result and fills it with as many
    bytes, copied from the page cache by one contiguous ``pread`` per chunk
    file holding the ROI (the same threads as ``read``): no gather, no
    staging. The numbers are not the ROI's; the time is a floor for ``read``.
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from laion_fmri._export_chunks import READ_THREADS
    from laion_fmri._export_layout import plan_chunk_copies

    files = export._chunks
    cols = export.roi_columns(roi)
    result = np.empty((export.shape[0], cols.size), np.float32)
    flat = memoryview(result.reshape(-1)).cast("B")
    jobs, at = [], 0
    for plan in plan_chunk_copies(cols, files.width):
        n = min(files.shape[0] * files.width * 4, flat.nbytes - at)
        jobs.append((files.path(plan.chunk), flat[at : at + n]))
        at += n
    if at < flat.nbytes:
        raise SystemExit("floor_roi: the ROI's chunk files hold fewer bytes than its result")

    def copy(job: tuple[Path, memoryview]) -> None:
        fd = os.open(job[0], os.O_RDONLY)
        try:
            os.preadv(fd, [job[1]], 0)
        finally:
            os.close(fd)

    with ThreadPoolExecutor(READ_THREADS) as pool:
        list(pool.map(copy, jobs))
    return result


def _run(name: str, data: Path, out: Path, repeats: int, roi: list[str], blob: Path) -> dict[str, object]:
    runs = []
    # A warm read gets one untimed run first, so "warm" means the files are in the page cache.
    warmup = not name.endswith("_cold") and not name.startswith("export")
    for i in range(repeats + warmup):
        if name.endswith("_cold"):
            _evict([data / ".laion_fmri" / "cache", _zarr_path(out, name.removesuffix("_cold"))])
        proc = subprocess.run(
            [sys.executable, __file__, "--variant", name, "--data", str(data), "--zarr", str(out),
             "--roi", ",".join(roi), "--blob", str(blob)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"variant {name} failed:\n{proc.stderr}")
        if i >= warmup:
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    res = dict(min(runs, key=lambda r: r["seconds"]))
    res["all_seconds"] = [r["seconds"] for r in runs]
    res["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    print(f"  {name:20s} {res['seconds']:8.3f} s  peak {res['peak_rss_mb']:7.0f} MB  "
          f"shape {res['shape']}", flush=True)
    return res


def _suite(data: Path, zarr_out: Path, exports: tuple[str, ...], reads: tuple[str, ...],
           repeats: int, work: Path) -> dict[str, object]:
    """Exports then reads of one data dir; checks that every read of a selection agrees."""
    from laion_fmri.subject import load_subject

    sub = load_subject(SUB, data_dir=data)
    roi, n_roi = _pick_roi(sub)
    blob = work / f"{data.name}-blob.npy"
    n_blob = _blob(sub, blob)
    n_brain = sub.get_n_voxels()
    print(f"{data.name}: {len(sub.get_sessions())} sessions, {n_brain} brain voxels, ROI {roi} "
          f"({n_roi} voxels), blob {n_blob} voxels", flush=True)
    results = {name: _run(name, data, zarr_out, 1, roi, blob) for name in exports}
    for name in reads:
        for suffix in ("", "_cold"):
            results[name + suffix] = _run(name + suffix, data, zarr_out, repeats, roi, blob)
    if "roi_zarr" in reads:  # warm only: the page cache to the result, nothing else
        results["floor_roi"] = _run("floor_roi", data, zarr_out, repeats, roi, blob)
    for kind in ("roi", "blob"):
        sums = {n: r["checksum"] for n, r in results.items() if n.startswith(kind) and "shape" in r}
        if len(set(sums.values())) > 1:
            raise SystemExit(f"{kind} reads differ: {sums}")
    baselines = {"roi": "roi_caches", "blob": "blob_caches"}
    speedups = {}
    for name in reads:
        for suffix in ("", "_cold") if "zarr" in name else ():
            base = results[f"{baselines[name.split('_')[0]]}{suffix}"]["seconds"]
            speedups[f"{name}{suffix}"] = base / results[f"{name}{suffix}"]["seconds"]
    if "floor_roi" in results:
        # The most any reader of these files could reach: caches / (allocate + one copy).
        speedups["floor_roi"] = results["roi_caches"]["seconds"] / results["floor_roi"]["seconds"]
    sizes = {"per_session_caches": dir_bytes(data / ".laion_fmri" / "cache") / 2**20}
    for name in exports:
        path = _zarr_path(zarr_out, name)
        sizes[path.name] = dir_bytes(path) / 2**20
    return {
        "dataset": {"data_dir": data.name, "sessions": len(sub.get_sessions()),
                    "n_trials": results[reads[0]]["shape"][0], "brain_voxels": n_brain,
                    "roi": roi, "roi_voxels": n_roi, "blob_voxels": n_blob},
        "sizes_mb": sizes, "results": results, "speedups_vs_caches": speedups,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.environ.get("LAION_FMRI_BENCH_DIR",
                                                            "/tmp/laion_fmri_bench"))
    parser.add_argument("--n-trials", type=int, default=256)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--realistic-voxels", type=int, default=270_000)
    parser.add_argument("--no-realistic", action="store_true", help="skip the realistic-scale variant")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "export.json")
    parser.add_argument("--variant")
    parser.add_argument("--data")
    parser.add_argument("--zarr")
    parser.add_argument("--roi")
    parser.add_argument("--blob")
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(variant(args.variant, Path(args.data), Path(args.zarr), args.roi.split(","),
                                 Path(args.blob))))
        return 0

    work = Path(args.workdir)
    t_start = time.perf_counter()
    load_start = list(os.getloadavg())
    data = _distinct_sessions(work, args.n_trials, args.sessions)
    summary: dict[str, object] = {
        "method": "each variant in a fresh process (fastest of --repeats); timed from "
                  "load_subject (caches) or open_export (zarr) to the array (imports excluded, "
                  "reported as import_s); warm = after one untimed read of the same files, "
                  "_cold = evicted with posix_fadvise(DONTNEED) first; exports timed once, "
                  "including the pass that decodes every session into the cache (fresh data dir)",
        "sample": _suite(data, work / f"{data.name}.zarr",
                         ("export", "export_lz4", "export_zstd", "export_roi"), READS,
                         args.repeats, work),
    }
    if not args.no_realistic:
        real = _realistic(data, args.realistic_voxels)
        summary["realistic"] = {
            "note": f"benchmark artefact: the sample's brain mask dilated to about "
                    f"{args.realistic_voxels} voxels (the real data's brain size), same sessions "
                    "and ROIs, so per-session cache rows are as long as real ones",
            **_suite(real, work / f"{real.name}.zarr", ("export",), REALISTIC_READS,
                     args.repeats, work),
        }
    summary["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                          "load_avg_at_start": load_start,
                          "load_avg_at_end": list(os.getloadavg()),
                          "wall_s": time.perf_counter() - t_start}
    summary["target_speedup"] = 10.0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    for key in ("sample", "realistic"):
        if key in summary:
            part = summary[key]
            print(f"{key}: speed-up vs per-session caches "
                  f"{ {k: round(v, 1) for k, v in part['speedups_vs_caches'].items()} }; "  # type: ignore[index]
                  f"sizes MB { {k: round(v) for k, v in part['sizes_mb'].items()} }", flush=True)  # type: ignore[index]
    return 0


if __name__ == "__main__":
    sys.exit(main())
