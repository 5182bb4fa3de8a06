"""Configure a data directory and discover what the dataset holds.

Run with the sample dataset as the source (what the tests do)::

    export LAION_FMRI_SOURCE=/path/to/sample     # laion-fmri sample /path/to/sample
    export LAION_FMRI_DATA_DIR=/path/to/data
    python examples/01_configure_and_discover.py

Without ``LAION_FMRI_SOURCE`` the script builds the tiny sample dataset in
``examples-output/sample`` and registers it as the source (``set_source``), so
the other examples work out of the box; ``set_source("")`` switches back to
the public bucket.
"""

import os
from pathlib import Path

from laion_fmri.config import dataset_initialize, effective_settings, set_source
from laion_fmri.discovery import describe, get_categories, get_rois, get_subjects
from laion_fmri.sample import make_sample_dataset

out = Path(os.environ.get("LAION_FMRI_EXAMPLES_OUT", "examples-output"))

# --- configure -----------------------------------------------------------------
data_dir = Path(os.environ.get("LAION_FMRI_DATA_DIR", out / "data"))
data_dir.mkdir(parents=True, exist_ok=True)
dataset_initialize(data_dir)  # once per machine; persisted in ~/.config/laion_fmri

if "LAION_FMRI_SOURCE" not in os.environ:
    sample = out / "sample"
    if not (sample / "dataset_description.json").is_file():
        make_sample_dataset(sample, scale="tiny", seed=0)
    set_source(str(sample.resolve()))  # persisted; set_source("") restores the public bucket

for name, (value, origin) in effective_settings().items():
    print(f"{name:13s} {value}  ({origin})")

# --- discover ------------------------------------------------------------------
subjects = get_subjects()
print("subjects:", subjects)
print("ROI categories of sub-03:", get_categories("sub-03"))
print("face ROIs of sub-03:", get_rois("sub-03", category="face"))
describe()  # subjects, sessions (held-out marked), ROIs, stimulus files, sizes
