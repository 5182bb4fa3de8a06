"""Benchmark: betas -> fsaverage5 with the cached matrix vs the reference chain.

Usage::

    python benchmarks/bench_templates.py [--trials 200 1000] [--workdir DIR]

A full-grid synthetic subject is written once under ``--workdir``: the real
143^3 grid (1.778 mm), an anatomical-size brain mask (~270k voxels), and a
real-format FreeSurfer tree whose ``{lh,rh}.white`` / ``sphere.reg`` have
163,842 vertices per hemisphere (fsaverage7-sized, i.e. a real-size native
surface), plus a local TemplateFlow home with 10,242-vertex fsaverage5
spheres. Every measurement runs in a fresh process:

* ``reference``: what the reference release does per call: scatter the trials
  into a 4-D T1w volume, ``nilearn.surface.vol_to_surf`` on each hemisphere,
  build ``nitransforms`` ``SurfaceResampler`` and ``apply``;
* ``ours_first``: :func:`laion_fmri.templates.to_template` with an empty cache
  (builds the composed matrix and writes it to disk);
* ``ours_later``: the same call in a new process once the matrix is cached
  (loads the ``.npz``, one chunked sparse product);
* ``ours_repeat``: a second call inside the ``ours_later`` process.

Peak memory is the rise of the process's peak RSS during the call over its RSS
just before (inputs already in memory; Linux ``clear_refs`` resets the mark).
The reference chain holds the 4-D volume plus nilearn's float64 samples
(about 36 MB per trial in all at this mesh size, ~36 GB for 1,000 trials),
more than this machine has, so its 1,000-trial time and memory are a linear
fit through two measured sizes (reported as such). Results: ``benchmarks/results/templates.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
GRID = (143, 143, 143)
VOXEL = 1.778
ORIGIN = (-127.127, -145.796, -104.902)
NATIVE_LEVEL = 7  # 163,842 vertices per hemisphere
TEMPLATE_LEVEL = 5  # 10,242 vertices = fsaverage5
SUBJECT = "sub-90"
REFERENCE_FIT_TRIALS = (50, 200)


def _affine() -> np.ndarray:
    aff = np.diag([VOXEL] * 3 + [1.0])
    aff[:3, 3] = ORIGIN
    return aff


def _mask() -> np.ndarray:
    ijk = np.indices(GRID).reshape(3, -1).T.astype(np.float32)
    centre = (np.asarray(GRID) - 1) / 2
    r = (((ijk - centre) / np.array([38.0, 46.0, 37.0], np.float32)) ** 2).sum(axis=1)
    return (r < 1.0).reshape(GRID)


class BenchSubject:
    """The public Subject surface that ``to_template`` uses."""

    def __init__(self, root: Path) -> None:
        self.subject_id = SUBJECT
        self.data_dir = root
        self.affine = _affine()
        self.grid_shape = GRID
        self._mask = _mask()

    def get_brain_mask(self, source: str = "anatomical") -> np.ndarray:
        return self._mask.ravel().copy()


def build_subject(root: Path) -> None:
    """Write the synthetic FreeSurfer tree and TemplateFlow home (once)."""
    import nibabel as nib

    from laion_fmri.sample._freesurfer import icosphere

    done = root / ".complete"
    if done.exists():
        return
    fs = root / "derivatives" / "freesurfer" / SUBJECT / "surf"
    fs.mkdir(parents=True, exist_ok=True)
    unit, faces = icosphere(NATIVE_LEVEL)
    aff = _affine()
    centre = aff[:3, :3] @ ((np.asarray(GRID) - 1) / 2) + aff[:3, 3]
    cras = np.array([0.8, 14.2, -9.5])
    info = {"head": np.array([2, 0, 20], dtype=np.int32), "valid": "1  # volume info valid",
            "filename": "../mri/filled-pretess255.mgz", "volume": np.array([256, 256, 256]),
            "voxelsize": np.array([1.0, 1.0, 1.0]), "xras": np.array([-1.0, 0.0, 0.0]),
            "yras": np.array([0.0, 0.0, -1.0]), "zras": np.array([0.0, 1.0, 0.0]), "cras": cras}
    rng = np.random.default_rng(0)
    for hemi, side in (("lh", -1.0), ("rh", 1.0)):
        folds = 1 + 0.12 * np.sin(9 * unit[:, 0]) * np.cos(7 * unit[:, 1]) * np.sin(5 * unit[:, 2])
        white = unit * np.array([26.0, 66.0, 50.0]) * folds[:, None] + centre + [side * 33.0, 0, 0]
        nib.freesurfer.write_geometry(str(fs / f"{hemi}.white"), white - cras, faces, volume_info=info)
        jitter = unit + rng.normal(0, 2e-4, unit.shape)
        sphere = 100 * jitter / np.linalg.norm(jitter, axis=1, keepdims=True)
        nib.freesurfer.write_geometry(str(fs / f"{hemi}.sphere.reg"), sphere, faces, volume_info=info)
    tpl, tpl_faces = icosphere(TEMPLATE_LEVEL)
    tf = root / "templateflow" / "tpl-fsaverage"
    tf.mkdir(parents=True, exist_ok=True)
    for hemi in "LR":
        arrays = [nib.gifti.GiftiDataArray((100 * tpl).astype(np.float32), intent="NIFTI_INTENT_POINTSET"),
                  nib.gifti.GiftiDataArray(tpl_faces.astype(np.int32), intent="NIFTI_INTENT_TRIANGLE")]
        name = f"tpl-fsaverage_hemi-{hemi}_den-10k_sphere.surf.gii"
        nib.save(nib.gifti.GiftiImage(darrays=arrays), tf / name)
    done.touch()


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> float:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs``); return the current RSS (MB)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    return _status_mb("VmHWM")


def _values(n_trials: int, n_vox: int) -> np.ndarray:
    out = np.empty((n_trials, n_vox), dtype=np.float32)
    rng = np.random.default_rng(1)
    for i in range(0, n_trials, 50):
        out[i:i + 50] = rng.standard_normal((min(50, n_trials - i), n_vox), dtype=np.float32)
    return out


def child(mode: str, n_trials: int, root: Path, dump: Path | None) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    # Imports are not part of the timed call.
    import nibabel as nib
    import nilearn.surface  # noqa: F401
    import nitransforms.surface  # noqa: F401
    import scipy.sparse

    from laion_fmri.templates import to_template
    from laion_fmri.templates._reference import scatter, vol_to_template

    sub = BenchSubject(root)
    mask = sub.get_brain_mask()
    values = _values(n_trials, int(mask.sum()))
    before = _reset_peak()
    start = time.perf_counter()
    if mode == "reference":
        import warnings

        surf = root / "derivatives" / "freesurfer" / SUBJECT / "surf"
        tf = root / "templateflow" / "tpl-fsaverage"
        vol = scatter(values, np.flatnonzero(mask), GRID)
        img = nib.Nifti1Image(vol, sub.affine)
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for hemi, fs in (("L", "lh"), ("R", "rh")):
                out[hemi] = vol_to_template(img, str(surf / f"{fs}.white"), str(surf / f"{fs}.sphere.reg"),
                                            str(tf / f"tpl-fsaverage_hemi-{hemi}_den-10k_sphere.surf.gii"))
        del vol, img
    else:
        out = to_template(sub, values, "fsaverage", mask_source="anatomical")
    seconds = time.perf_counter() - start
    peak = _peak_mb() - before
    result: dict[str, Any] = {"mode": mode, "n_trials": n_trials, "seconds": round(seconds, 3),
                              "peak_rss_rise_mb": round(peak, 1)}
    if mode == "ours_later":
        before2 = _reset_peak()
        start = time.perf_counter()
        to_template(sub, values, "fsaverage", mask_source="anatomical")
        result["repeat_seconds"] = round(time.perf_counter() - start, 3)
        result["repeat_peak_rss_rise_mb"] = round(_peak_mb() - before2, 1)
    if mode.startswith("ours"):
        cache = root / ".laion_fmri" / "cache" / "templates" / SUBJECT
        mats = [scipy.sparse.load_npz(p) for p in sorted(cache.glob("*.npz"))]
        result["matrix_mb"] = round(sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
                                        for m in mats) / 2**20, 1)
        result["matrix_nnz"] = int(sum(m.nnz for m in mats))
    result["output_mb"] = round(sum(np.asarray(v).nbytes for v in out.values()) / 2**20, 1)
    if dump is not None:
        np.savez(dump, **{h: np.asarray(v, dtype=np.float32) for h, v in out.items()})
    return result


def _run_child(mode: str, n_trials: int, root: Path, dump: Path | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(n_trials), "--workdir", str(root)]
    if dump is not None:
        cmd += ["--dump", str(dump)]
    env = dict(os.environ, TEMPLATEFLOW_HOME=str(root / "templateflow"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise RuntimeError(f"{mode} {n_trials} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {mode:12s} n={n_trials:5d}: {result}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/laion-bench-templates"))
    parser.add_argument("--child", default=None)
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--dump", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.n, args.workdir, args.dump)))
        return 0

    root = args.workdir
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    build_subject(root)
    print(f"synthetic subject ready in {time.perf_counter() - start:.0f} s", flush=True)
    cache = root / ".laion_fmri" / "cache"

    # Same numbers first (small run, both routes).
    shutil.rmtree(cache, ignore_errors=True)
    ref = {n: _run_child("reference", n, root, root / f"ref{n}.npz") for n in REFERENCE_FIT_TRIALS}
    ours_check = _run_child("ours_first", REFERENCE_FIT_TRIALS[0], root, root / "ours_check.npz")
    with np.load(root / f"ref{REFERENCE_FIT_TRIALS[0]}.npz") as a, np.load(root / "ours_check.npz") as b:
        max_abs = max(float(np.nanmax(np.abs(a[h] - b[h]))) for h in "LR")
        scale = max(float(np.nanmax(np.abs(a[h]))) for h in "LR")
        nan_equal = all(bool(np.array_equal(np.isnan(a[h]), np.isnan(b[h]))) for h in "LR")
    # Reference time = fixed + per-trial; fit through the two measured sizes.
    (n0, n1) = REFERENCE_FIT_TRIALS
    per_trial = (ref[n1]["seconds"] - ref[n0]["seconds"]) / (n1 - n0)
    fixed = ref[n0]["seconds"] - per_trial * n0
    mem_per_trial = (ref[n1]["peak_rss_rise_mb"] - ref[n0]["peak_rss_rise_mb"]) / (n1 - n0)

    rows = []
    for n in args.trials:
        shutil.rmtree(cache, ignore_errors=True)
        first = _run_child("ours_first", n, root)
        later = _run_child("ours_later", n, root)
        if n in ref:
            ref_s, ref_mb, ref_kind = ref[n]["seconds"], ref[n]["peak_rss_rise_mb"], "measured"
        else:
            ref_s = fixed + per_trial * n
            ref_mb = ref[n1]["peak_rss_rise_mb"] + mem_per_trial * (n - n1)
            ref_kind = f"linear fit through measured n={n0} and n={n1}"
        budget = later["output_mb"] + later["matrix_mb"] + 200.0
        rows.append({
            "n_trials": n,
            "reference_s": round(ref_s, 2), "reference_peak_rss_rise_mb": round(ref_mb, 1),
            "reference_kind": ref_kind,
            "ours_first_s": first["seconds"], "ours_first_peak_rss_rise_mb": first["peak_rss_rise_mb"],
            "ours_later_s": later["seconds"], "ours_later_peak_rss_rise_mb": later["peak_rss_rise_mb"],
            "ours_repeat_s": later["repeat_seconds"],
            "ours_repeat_peak_rss_rise_mb": later["repeat_peak_rss_rise_mb"],
            "output_mb": later["output_mb"], "matrix_mb": later["matrix_mb"],
            "matrix_nnz": later["matrix_nnz"],
            "speedup_first": round(ref_s / first["seconds"], 1),
            "speedup_later": round(ref_s / later["seconds"], 1),
            "speedup_repeat": round(ref_s / later["repeat_seconds"], 1),
            "memory_budget_mb": round(budget, 1),
            "targets_met": {
                "first_no_slower": first["seconds"] <= ref_s,
                "later_50x": ref_s / later["seconds"] >= 50,
                "memory_within_budget": max(first["peak_rss_rise_mb"], later["peak_rss_rise_mb"]) <= budget,
            },
        })
        print(json.dumps(rows[-1], indent=1), flush=True)
    import nilearn
    import nitransforms
    import scipy

    result = {
        "benchmark": "betas (n_trials x brain voxels) -> fsaverage5 both hemispheres: cached composed "
                     "matrix vs reference chain (scatter 4-D, vol_to_surf, SurfaceResampler)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_average_1min": os.getloadavg()[0]},
        "versions": {"nilearn": nilearn.__version__, "nitransforms": nitransforms.__version__,
                     "scipy": scipy.__version__},
        "subject": {"grid": GRID, "voxel_mm": VOXEL, "brain_voxels": int(_mask().sum()),
                    "native_vertices_per_hemi": 10 * 4**NATIVE_LEVEL + 2,
                    "fsaverage5_vertices_per_hemi": 10 * 4**TEMPLATE_LEVEL + 2},
        "agreement": {"n_trials": REFERENCE_FIT_TRIALS[0], "max_abs_diff": max_abs,
                      "max_abs_value": scale, "nan_pattern_equal": nan_equal},
        "reference_measured": list(ref.values()),
        "ours_first_check": ours_check,
        "results": rows,
    }
    out = HERE / "results" / "templates.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
