"""Benchmark: split masks over 1M trial labels, vectorised vs a per-row set lookup.

Run::

    python benchmarks/bench_splits.py [--n-labels 1000000] [--repeats 5]

Writes ``benchmarks/results/splits.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "splits.json"


def naive_masks(labels, train: list[str], test: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The obvious per-row Python loop with set membership (the baseline)."""
    train_set, test_set = set(train), set(test)
    train_mask = np.array([label in train_set for label in labels], dtype=bool)
    test_mask = np.array([label in test_set for label in labels], dtype=bool)
    return train_mask, test_mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-labels", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    from laion_fmri import splits
    from laion_fmri.splits._bundle import bundled

    bundled()
    load_s = time.perf_counter() - start

    name, pool = "tau", "sub-03"
    train, test = splits.get_train_test_ids(name, pool)
    # Realistic trial labels: the subject's images, shared OOD images and blanks,
    # written as a TSV and read back, so each label is its own fresh string whose
    # hash is not cached yet (as in a table freshly loaded from disk).
    vocabulary = np.array([*train, *test, *splits.get_train_test_ids("ood", pool)[1], "blank"],
                          dtype=object)
    labels = np.random.default_rng(0).choice(vocabulary, args.n_labels)
    tsv = ("label\n" + "\n".join(labels.tolist()) + "\n").encode("utf-8")

    def fresh_table() -> pd.DataFrame:
        return pd.read_csv(io.BytesIO(tsv), sep="\t", keep_default_na=False)

    def timed(func, make_input) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
        best, out = float("inf"), None
        for _ in range(args.repeats):
            data = make_input()  # not timed
            start = time.perf_counter()
            out = func(data)
            best = min(best, time.perf_counter() - start)
        return best, out

    def vectorised(table):
        return splits.get_split_masks(table, name, pool)

    def naive_series(table):
        return naive_masks(table["label"], train, test)

    def naive_list(table):
        return naive_masks(table["label"].tolist(), train, test)

    runs = {
        "vectorised_dataframe": timed(vectorised, fresh_table),
        "vectorised_categorical": timed(
            vectorised, lambda: fresh_table().astype({"label": "category"})),
        "naive_loop_over_series": timed(naive_series, fresh_table),
        "naive_loop_over_list": timed(naive_list, fresh_table),
    }
    reference = runs["naive_loop_over_list"][1]
    for key, (_, masks) in runs.items():
        if not all(np.array_equal(a, b) for a, b in zip(masks, reference, strict=True)):
            raise SystemExit(f"{key}: masks differ from the naive loop")
    seconds = {key: round(value[0], 4) for key, value in runs.items()}
    best_naive = min(seconds["naive_loop_over_series"], seconds["naive_loop_over_list"])
    result = {
        "benchmark": "split masks",
        "split": name,
        "pool": pool,
        "n_labels": args.n_labels,
        "n_distinct_labels": len(vocabulary),
        "repeats": args.repeats,
        "timing": "best of repeats, fresh table each repeat, table loading not timed",
        "bundle_decode_s": round(load_s, 4),
        "seconds": seconds,
        "speedup_vs_naive_series_loop": round(
            seconds["naive_loop_over_series"] / seconds["vectorised_dataframe"], 1),
        "speedup_vs_fastest_naive": round(best_naive / seconds["vectorised_dataframe"], 1),
        "n_train_trials": int(reference[0].sum()),
        "n_test_trials": int(reference[1].sum()),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
