"""Convert the published split JSON files into the compact bundled form.

Reads ``<src>/<pool>/<name>.json`` or ``.json.gz`` for the 6 pools x 12 splits
and writes ``splits.npz`` and ``splits.json`` into ``--out`` (default: the
package's ``src/laion_fmri/splits/data``). The output is deterministic: the
same input always gives the same bytes.

Usage::

    python scripts/convert_splits.py /work/shared/reference/splits
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

from laion_fmri.splits._bundle import JSON_NAME, NPZ_NAME, decode, encode
from laion_fmri.splits._catalog import POOLS, SPLIT_NAMES, ood_type

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "laion_fmri" / "splits" / "data"


def read_published(path: Path) -> dict:
    """Parse one published split file (plain or gzip-compressed JSON)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return json.loads(raw.decode("utf-8"))


def find_file(src: Path, pool: str, name: str) -> Path:
    """The published file of one pool and split (``.json`` or ``.json.gz``)."""
    for suffix in (".json", ".json.gz"):
        candidate = src / pool / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Missing published split {src / pool / name}.json[.gz].")


def convert(src: Path, out: Path) -> tuple[Path, Path]:
    """Convert every published split under ``src``; write the bundle into ``out``."""
    published = []
    for pool in POOLS:
        for name in SPLIT_NAMES:
            doc = read_published(find_file(src, pool, name))
            if doc["name"] != name:
                raise ValueError(f"{pool}/{name}: the file says name={doc['name']!r}.")
            published.append((pool, doc))
    all_ids = {i for _, doc in published for v in doc["variants"] for i in v["test_ids"]}
    ood_types = sorted({t for t in map(ood_type, all_ids) if t is not None})
    npz, text = encode(published, POOLS, SPLIT_NAMES, ood_types)
    decode(npz, text)  # refuse to write a bundle we cannot read back
    out.mkdir(parents=True, exist_ok=True)
    npz_path, json_path = out / NPZ_NAME, out / JSON_NAME
    npz_path.write_bytes(npz)
    json_path.write_text(text, encoding="utf-8")
    return npz_path, json_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="folder with <pool>/<name>.json[.gz]")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    for path in convert(args.src, args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
