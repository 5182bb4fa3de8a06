"""Benchmark: ``SubjectDataset`` in a ``DataLoader`` against a naive per-item dataset.

Usage::

    python benchmarks/bench_torch.py [--scale small] [--batch-size 64] [--image-size 224]
                                     [--roi ROI] [--epochs 3] [--workdir DIR]

On a cached sample dataset (``--scale small`` by default) both datasets yield
the same items (betas of the selection + the stimulus image as a uint8
``(3, H, W)`` tensor, checked equal on a batch) and are read through a
``torch.utils.data.DataLoader`` (``--batch-size``, ``num_workers`` 0 and 2,
persistent workers). Measured in one run:

* ``ours``:  :class:`laion_fmri.torch.SubjectDataset` (memory-mapped betas
  cache read per row, stimulus HDF5 opened once per worker, JPEG draft decode);
* ``naive``: per item ``sub.get_betas(session, roi=...)[row]`` and the image
  decoded with PIL from the stimulus HDF5 opened for that item.

Batches per second are steady-state (the first epoch, which starts the
workers and warms the page cache, is reported separately). Results go to
``benchmarks/results/torch.json``, one entry per ``--scale`` (a run keeps the
other scales' entries). ``--scale full-grid`` (143^3 grid, 256 trials) shows
the real-size cost of the naive path's per-item session reload.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


class NaiveDataset:
    """What a user writes by hand: reload the session and reopen the image file per item."""

    def __init__(self, sub: Any, sessions: list[str], roi: str | None, size: int | None,
                 with_image: bool = True) -> None:
        import pandas as pd

        from laion_fmri import layout

        meta = sub.metadata
        self.sub, self.roi, self.size, self.with_image = sub, roi, size, with_image
        self.rows = meta[meta["session"].isin(sessions)]
        stim_meta = pd.read_csv(layout.local_path(sub.data_dir, layout.STIMULI_METADATA_KEY))
        self.image_row = {n: i for i, n in enumerate(stim_meta["image_name"])}
        self.h5_path = layout.local_path(sub.data_dir, layout.STIMULI_IMAGES_KEY)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import h5py
        import torch
        from PIL import Image

        row = self.rows.iloc[i]
        betas = self.sub.get_betas(row["session"], roi=self.roi)[int(row["session_trial"])]
        item = {"betas": torch.from_numpy(np.array(betas, dtype=np.float32)), "trial": int(row.name)}
        if not self.with_image:
            return item
        with h5py.File(self.h5_path, "r") as fh:
            raw = fh["images"][self.image_row[row["image_name"]]].tobytes()
        img = Image.open(io.BytesIO(raw)).convert("RGB")
        if self.size is not None:
            img = img.resize((self.size, self.size), Image.Resampling.BILINEAR)
        item["image"] = torch.from_numpy(np.asarray(img).transpose(2, 0, 1).copy())
        return item


def _time_loader(ds: Any, batch_size: int, workers: int, epochs: int) -> dict[str, float]:
    import torch

    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, num_workers=workers, shuffle=False,
        persistent_workers=workers > 0,
    )
    t0 = time.perf_counter()
    n_batches = sum(1 for _ in loader)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for _ in loader:
            pass
    steady = time.perf_counter() - t0
    del loader
    return {
        "num_workers": workers,
        "batches_per_epoch": n_batches,
        "first_epoch_s": round(first, 4),
        "steady_s": round(steady, 4),
        "batches_per_s": round(epochs * n_batches / steady, 2),
        "items_per_s": round(epochs * len(ds) / steady, 1),
    }


def main() -> None:
    """Run the benchmark and write ``benchmarks/results/torch.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="small", choices=("tiny", "small", "full-grid"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--roi", default=None, help="ROI query (default: whole brain)")
    parser.add_argument("--epochs", type=int, default=3, help="steady-state epochs per variant")
    parser.add_argument("--workdir", default=None, help="sample cache folder")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads in the main process (default 1: batch "
                        "collation is memory-bound, and OpenMP spin-waits on a busy machine)")
    parser.add_argument("--out", default=str(HERE / "results" / "torch.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]

    from laion_fmri.sample import ensure_sample_dataset
    from laion_fmri.subject import load_subject
    from laion_fmri.torch import SubjectDataset

    root = ensure_sample_dataset(args.scale, cache_root=args.workdir)
    (root / ".laion_fmri").mkdir(exist_ok=True)
    sub = load_subject("sub-03", data_dir=root)
    sessions = sub.get_sessions()
    results = []
    ours_all = None
    for features in (("image",), ()):
        label = "betas+image" if features else "betas"
        t0 = time.perf_counter()
        ours = SubjectDataset(sub, session=sessions, roi=args.roi, features=features,
                              image_size=args.image_size)
        build_s = time.perf_counter() - t0
        if ours_all is None:
            ours_all = ours
        naive = NaiveDataset(sub, sessions, args.roi, args.image_size, with_image=bool(features))
        # Same items, so the comparison is fair.
        for i in (0, len(ours) // 2, len(ours) - 1):
            a, b = ours[i], naive[i]
            assert a["trial"] == b["trial"] and set(a) - {"label", "session"} == set(b)
            np.testing.assert_array_equal(a["betas"].numpy(), b["betas"].numpy())
            if features:
                assert a["image"].shape == b["image"].shape
                diff = np.abs(a["image"].numpy().astype(int) - b["image"].numpy().astype(int))
                assert diff.mean() < 8, diff.mean()
        for workers in (0, 2):
            for name, ds in (("ours", ours), ("naive", naive)):
                timing = _time_loader(ds, args.batch_size, workers, args.epochs)
                row = {"items": label, "dataset": name, **timing}
                if name == "ours":
                    row["dataset_build_s"] = round(build_s, 3)
                results.append(row)
                print(json.dumps(row))

    def rate(items: str, name: str, workers: int) -> float:
        return next(
            r["batches_per_s"] for r in results
            if (r["items"], r["dataset"], r["num_workers"]) == (items, name, workers)
        )

    speedup = {
        f"{items}, num_workers={w}": round(rate(items, "ours", w) / rate(items, "naive", w), 2)
        for items in ("betas+image", "betas") for w in (0, 2)
    }
    report = {
        "benchmark": "torch DataLoader over SubjectDataset vs naive per-item get_betas + PIL",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "platform": platform.platform()},
        "scale": args.scale,
        "subject": sub.subject_id,
        "sessions": len(sessions),
        "n_trials": len(ours_all),
        "n_voxels": ours_all.n_voxels,
        "roi": args.roi,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "epochs_timed": args.epochs,
        "main_process_threads": args.threads,
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "pickled_dataset_bytes": len(pickle.dumps(ours_all)),
        "session_betas_bytes": int(sub.get_betas(sessions[0]).nbytes),
        "results": results,
        "speedup_batches_per_s": speedup,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # One entry per scale: a run replaces its own scale's results and keeps the others.
    try:
        merged = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        merged = {}
    if not isinstance(merged, dict) or "benchmark" in merged:
        merged = {}
    merged[args.scale] = report
    out.write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(speedup))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
