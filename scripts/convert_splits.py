"""Convert the published split JSON files into the compact bundled form.

Reads two generations of the published files:

* ``<original>/<pool>/<name>.json[.gz]``: the 6 pools x 12 splits of the
  original release (generation 1);
* ``<current>/<pool>/random_<k>.json[.gz]``: the current ``random_*`` files
  (generation 3: shuffled 5-fold CV, duplicates moved in the subject pools).

The current generation's ``tau`` and ``ood`` are the original files (unchanged
upstream); its ``cluster_k5_*`` keep the original members under the header the
current release publishes (``kmeans_cluster_holdout``; its files end with a
newline). Writes ``splits.npz`` and ``splits.json`` into ``--out`` (default:
the package's ``src/laion_fmri/splits/data``). The output is deterministic.

Usage::

    python scripts/convert_splits.py /work/shared/reference/splits /work/shared/reference/splits-later
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

from laion_fmri.splits._bundle import JSON_NAME, NPZ_NAME, Published, decode, encode, render_text
from laion_fmri.splits._catalog import POOLS, SPLIT_NAMES, VERSIONS, ood_type

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "laion_fmri" / "splits" / "data"
CURRENT, ORIGINAL = VERSIONS  # the default generation first


def read_text(path: Path) -> str:
    """The exact text of one published split file (plain or gzip-compressed JSON)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def read_published(path: Path) -> dict:
    """Parse one published split file (plain or gzip-compressed JSON)."""
    return json.loads(read_text(path))


def find_file(src: Path, pool: str, name: str) -> Path:
    """The published file of one pool and split (``.json`` or ``.json.gz``)."""
    for suffix in (".json", ".json.gz"):
        candidate = src / pool / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Missing published split {src / pool / name}.json[.gz].")


def _current_cluster_header(doc: dict) -> dict:
    """The header the current release gives ``cluster_k5_k`` (members unchanged)."""
    k = doc["params"]["held_out_cluster"]
    params = {"method": "kmeans_clip_k5_holdout", "feature_space": "CLIP", "n_clusters": 5,
              "seed": 2026, "n_init": 10, "held_out_cluster": k}
    return {**doc, "splitter": "kmeans_cluster_holdout", "params": params}


def _read(src: Path, version: str, pool: str, name: str) -> Published:
    text = read_text(find_file(src, pool, name))
    doc = json.loads(text)
    if doc["name"] != name:
        raise ValueError(f"{pool}/{name}: the file says name={doc['name']!r}.")
    return Published(version, pool, doc, text)


def convert(original: Path, current: Path, out: Path) -> tuple[Path, Path]:
    """Convert both generations of published splits; write the bundle into ``out``."""
    published = []
    for pool in POOLS:
        for name in SPLIT_NAMES:
            old = _read(original, ORIGINAL, pool, name)
            published.append(old)
            if name.startswith("random_"):
                published.append(_read(current, CURRENT, pool, name))
            elif name.startswith("cluster_k5_"):
                doc = _current_cluster_header(old.doc)
                published.append(Published(CURRENT, pool, doc, render_text(doc, 2, True)))
            else:
                published.append(Published(CURRENT, pool, old.doc, old.text))
    all_ids = {i for p in published for v in p.doc["variants"] for i in v["test_ids"]}
    ood_types = sorted({t for t in map(ood_type, all_ids) if t is not None})
    npz, text = encode(published, VERSIONS, POOLS, SPLIT_NAMES, ood_types)
    decode(npz, text)  # refuse to write a bundle we cannot read back
    out.mkdir(parents=True, exist_ok=True)
    npz_path, json_path = out / NPZ_NAME, out / JSON_NAME
    npz_path.write_bytes(npz)
    json_path.write_text(text, encoding="utf-8")
    return npz_path, json_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original", type=Path, help="folder with <pool>/<name>.json[.gz] (gen 1)")
    parser.add_argument("current", type=Path, help="folder with <pool>/random_<k>.json[.gz] (gen 3)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    for path in convert(args.original, args.current, args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
