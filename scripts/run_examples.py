"""Run the scripts in ``examples/`` in order against the sample dataset.

Used by ``make docs`` so the figures the examples make appear in the docs.
Each script runs as a fresh user would run it: its own process, a new data
directory, the tiny sample dataset as a local source and a private config
home (your own configuration is never touched). The sample's images are
synthetic, so the stimulus agreement prompt is answered for this throwaway
data directory.

Usage: ``python scripts/run_examples.py OUT_DIR``; figures land in ``OUT_DIR``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(args[0] if args else ROOT / "examples-output").resolve()
    from laion_fmri.access import ensure_local_terms
    from laion_fmri.sample import ensure_sample_dataset

    source = ensure_sample_dataset("tiny")
    with tempfile.TemporaryDirectory(prefix="laion-fmri-examples-") as tmp:
        base = Path(tmp)
        data_dir = base / "data"
        data_dir.mkdir()
        ensure_local_terms(data_dir, interactive=True, input_fn=lambda prompt: "I AGREE",
                           out=lambda text: None)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAION_FMRI_")}
        env.update(LAION_FMRI_DATA_DIR=str(data_dir), LAION_FMRI_SOURCE=str(source),
                   LAION_FMRI_EXAMPLES_OUT=str(out), XDG_CONFIG_HOME=str(base / "xdg"),
                   MPLBACKEND="Agg")
        for script in sorted((ROOT / "examples").glob("[0-9][0-9]_*.py")):
            print(f"--- {script.name}", flush=True)
            code = subprocess.call([sys.executable, str(script)], env=env, cwd=ROOT,
                                   stdin=subprocess.DEVNULL)
            if code:
                print(f"{script.name} failed with exit code {code}", file=sys.stderr)
                return code
    print(f"figures in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
