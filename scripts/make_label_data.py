"""Derive the package's compact stimulus-label data from the reference files.

Writes two files into ``src/laion_fmri/data/``:

``stimulus_labels.txt.gz``
    Every real image ID (25,052, sorted, one per line), gzip with mtime 0 so
    re-running the script gives identical bytes.
``sample_images.json``
    The image pools the sample dataset draws its trials from. Each pool is an
    ordered list of real IDs; the first few of each pool are chosen greedily so
    that every bundled split of both generations (random_0..4 of the original
    ``splits/`` and of the current ``splits-later/``, tau, cluster_k5_0..4) has
    at least one train AND one test image among them, so split tests on the
    sample are meaningful. The documentation's example names come first.

Usage::

    python scripts/make_label_data.py [--reference ../shared/reference]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "laion_fmri" / "data"
SPLITS = ("random_0", "random_1", "random_2", "random_3", "random_4", "tau",
          "cluster_k5_0", "cluster_k5_1", "cluster_k5_2", "cluster_k5_3", "cluster_k5_4")
# BIDS subject -> participant code in unique-image names (DATASET.md 4.2).
PCODE = {"sub-01": "p01", "sub-03": "p04", "sub-05": "p03", "sub-06": "p02", "sub-07": "p05"}
POOL_SIZE = 40

DOC_NAMES = {
    "shared_12rep": ["shared_12rep_LAION_cluster_1003_i0.jpg",
                     "shared_12rep_THINGS+_kmeans_0_balloon.jpg"],
    "shared_4rep_nsd": ["shared_4rep_NSD_special100_97.jpg", "shared_4rep_NSD_special1000_100.jpg"],
    "shared_4rep_ood": [
        "shared_4rep_OOD_cropped_air_pump.png",
        "shared_4rep_OOD_shape_blob_round-01.png",
        "shared_4rep_OOD_unusual_17FLORIDA.jpg",
        "shared_4rep_OOD_unusual_Screenshot 2024-05-06 at 14.45.09.jpg",
        "shared_4rep_OOD_gabor_gabor-01-top-left.jpg",
        "shared_4rep_OOD_relations_007_saucer-ontop-cup_04.jpg",
    ],
    "unique_sub-01": ["unique_LAION_fillup_cluster_0_i0_p01.jpg", "unique_THINGS+_aardvark_p01.jpg"],
    "unique_sub-03": ["unique_THINGS_zebra_p04.jpg"],
}


def _read_split(ref: Path, pool: str, name: str,
                folder: str = "splits") -> tuple[set[str], set[str]]:
    with gzip.open(ref / folder / pool / f"{name}.json.gz", "rt", encoding="utf-8") as fh:
        variant = json.load(fh)["variants"][0]
    return set(variant["train_ids"]), set(variant["test_ids"])


def _all_splits(ref: Path, pool: str) -> list[tuple[set[str], set[str]]]:
    """Both generations: the original files and the current random folds."""
    current = [_read_split(ref, pool, s, "splits-later") for s in SPLITS if s.startswith("random_")]
    return [_read_split(ref, pool, s) for s in SPLITS] + current


def _greedy(candidates: list[str], first: list[str], splits: list[tuple[set[str], set[str]]],
            rng: random.Random) -> list[str]:
    """Doc names, then a greedy cover of every (split, side), then random fill."""
    chosen = list(first)
    need = {(i, side) for i in range(len(splits)) for side in (0, 1)}
    for name in chosen:
        need -= {(i, s) for i, sp in enumerate(splits) for s in (0, 1) if name in sp[s]}
    pool = [c for c in candidates if c not in chosen]
    rng.shuffle(pool)
    while need:
        best = max(pool, key=lambda c: sum(c in splits[i][s] for i, s in need))
        covered = {(i, s) for i, s in need if best in splits[i][s]}
        if not covered:
            break
        chosen.append(best)
        pool.remove(best)
        need -= covered
    chosen.extend(pool[: max(0, POOL_SIZE - len(chosen))])
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference")
    args = parser.parse_args()
    ref: Path = args.reference
    with gzip.open(ref / "stimulus_labels.txt.gz", "rt", encoding="utf-8") as fh:
        labels = fh.read().split("\n")[:-1]
    assert len(labels) == 25052 and labels == sorted(labels), "unexpected label list"
    known = set(labels)
    for names in DOC_NAMES.values():
        missing = [n for n in names if n not in known]
        assert not missing, f"documented names not in the label list: {missing}"

    OUT.mkdir(parents=True, exist_ok=True)
    text = ("\n".join(labels) + "\n").encode("utf-8")
    with open(OUT / "stimulus_labels.txt.gz", "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(text)

    rng = random.Random(20240506)
    shared_splits = _all_splits(ref, "shared")
    pools: dict[str, list[str]] = {}
    pools["shared_12rep"] = _greedy(
        [x for x in labels if x.startswith("shared_12rep_")], DOC_NAMES["shared_12rep"],
        shared_splits, rng)
    pools["shared_4rep_nsd"] = _greedy(
        [x for x in labels if x.startswith("shared_4rep_NSD_")], DOC_NAMES["shared_4rep_nsd"],
        shared_splits, rng)
    ood = [x for x in labels if x.startswith("shared_4rep_OOD_")]
    rest = [x for x in ood if x not in DOC_NAMES["shared_4rep_ood"]]
    rng.shuffle(rest)
    pools["shared_4rep_ood"] = DOC_NAMES["shared_4rep_ood"] + rest[: POOL_SIZE - 6]
    for sub, code in PCODE.items():
        sub_splits = _all_splits(ref, sub)
        own = [x for x in labels if x.startswith("unique_") and x.endswith(f"_{code}.jpg")]
        pools[f"unique_{sub}"] = _greedy(own, DOC_NAMES.get(f"unique_{sub}", []), sub_splits, rng)
    doc = {
        "description": "Real LAION-fMRI image IDs the sample dataset draws from "
                       "(derived by scripts/make_label_data.py).",
        "participant_codes": PCODE,
        "pools": pools,
    }
    (OUT / "sample_images.json").write_text(json.dumps(doc, indent=1, ensure_ascii=True) + "\n",
                                            encoding="utf-8")
    print(f"wrote {OUT / 'stimulus_labels.txt.gz'} and {OUT / 'sample_images.json'}")


if __name__ == "__main__":
    main()
