"""The product page's code examples run unchanged against the sample dataset.

The snippets below are copied verbatim from
``shared/reference/product-description.txt`` (only ``/path/to/data`` is
replaced by a real folder). ``test_snippets_match_product_page`` fails when the
page and this file drift apart.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

DISCOVER = """
from laion_fmri.config import dataset_initialize
from laion_fmri.discovery import describe, get_rois, get_subjects

dataset_initialize("/path/to/data")      # one-time setup
print(get_subjects())                     # ['sub-01', 'sub-03', ...]
print(get_rois("sub-03", category="face"))
describe()                                # human-readable bucket summary
"""

DOWNLOAD = """
from laion_fmri.download import download

# Download one session (BIDS-aware, idempotent)
download(subject="sub-03", ses="ses-01", n_jobs=4)

# Download only subject-level aggregate maps
download(subject="sub-03", ses="averages")

# Download everything for all subjects
download(subject="all", n_jobs=4)

# Include stimulus images
download(subject="sub-03", ses="ses-01", include_stimuli=True, n_jobs=4)
"""

STIMULUS_FILES = """
from laion_fmri.download import (
    download_stimuli,
    download_embeddings,
    download_segmentations,
    download_captions,
)

download_stimuli()              # raw images + metadata
download_embeddings()           # CLIP, DINOv2, PEcore, SigLIP2
download_segmentations()        # shared-image object masks
download_captions()             # human + AI captions
"""

LOAD = """
from laion_fmri.subject import load_subject

sub   = load_subject("sub-03")
betas = sub.get_betas(session="ses-01")           # (n_trials, n_voxels), float32

# Filter to a region of interest
betas_ffa = sub.get_betas(session="ses-01", roi="FFA1")

# Only keep well-driven voxels
betas_nc  = sub.get_betas(session="ses-01", nc_threshold=0.2)

# Get trial metadata as a DataFrame
trials = sub.get_trial_info(session="ses-01")     # image IDs, conditions, ...
"""

ALIGNED = """
import laion_fmri
from laion_fmri.subject import load_subject

stim = laion_fmri.load_stimuli()
stim.metadata.head()                               # 25,052 image rows
stim.embeddings.get("CLIP", "shared_12rep_LAION_cluster_1003_i0.jpg")
stim.captions.human("shared_12rep_LAION_cluster_1003_i0.jpg")
stim.segmentations.nouns("shared_12rep_LAION_cluster_1003_i0.jpg")

sub = load_subject("sub-03")
trials = sub.metadata                              # trial table across sessions
X = sub.embeddings.all("CLIP", session="ses-01")   # rows align to betas
img = sub.images.get(42)                           # PIL image for trial 42
"""

SPLITS = """
from laion_fmri.splits import get_split_masks
from laion_fmri.subject import load_subject
import numpy as np
import pandas as pd

sub = load_subject("sub-03")
sessions = sub.get_sessions()
betas_per_session = sub.get_betas(session=sessions, roi="face")
trials_per_session = sub.get_trial_info(session=sessions)

betas = np.concatenate(list(betas_per_session.values()), axis=0)
trials = pd.concat(list(trials_per_session.values()), ignore_index=True)

# Random split — one of five seeded 80/20 baselines (random_0 … random_4)
train_mask, test_mask = get_split_masks(trials, "random_0", pool="shared")

# Within-distribution split (tau) — balanced by image-space coverage
train_mask, test_mask = get_split_masks(trials, "tau", pool="shared")

# OOD cluster split — 5-fold cross-validation across semantic clusters
for k in range(5):
    train_mask, test_mask = get_split_masks(trials, f"cluster_k5_{k}", pool="shared")

# OOD images — train on shared pool, test on held-out OOD images
train_mask, test_mask = get_split_masks(
    trials, "ood", pool="shared", ood_types=["shape", "unusual", "cropped"]
)

# Apply any mask to betas
X_train, X_test = betas[train_mask], betas[test_mask]
"""

NOISE_CEILING = """
# Noise ceiling: max explainable variance per voxel (0-100)
nc = sub.get_noise_ceiling(session="ses-01")      # (n_voxels,)
nc_12rep = sub.get_noise_ceiling(desc="Noiseceiling12rep")

# Inspect available sessions and ROIs
print(sub.get_sessions())
print(sub.get_available_rois())
print(sub.get_available_categories())
print(f"Brain-mask voxels: {sub.get_n_voxels()}")
"""

SNIPPETS = [DISCOVER, DOWNLOAD, STIMULUS_FILES, LOAD, ALIGNED, SPLITS, NOISE_CEILING]


def _product_page() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[2] / "shared" / "reference" / "product-description.txt",
        Path("/work/shared/reference/product-description.txt"),
    ):
        if candidate.is_file():
            return candidate
    return None


def test_snippets_match_product_page() -> None:
    page = _product_page()
    if page is None:
        pytest.skip("shared/reference/product-description.txt is not beside this checkout")
    text = page.read_text(encoding="utf-8")
    for snippet in SNIPPETS:
        for line in snippet.strip().splitlines():
            if line.strip():
                assert line.rstrip() in text, f"product page no longer has: {line!r}"


def _run(snippet: str, namespace: dict, data_dir: Path) -> None:
    code = textwrap.dedent(snippet).replace("/path/to/data", str(data_dir))
    exec(compile(code, "<product page>", "exec"), namespace)


def test_product_page_examples_run_unchanged(
    local_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from laion_fmri import access, licenses

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Scripted acceptance of the CC0 notice and of the stimulus agreement
    # (the prompts themselves are tested elsewhere).
    licenses.accept_dataset_license(data_dir)
    access.record_local_agreement(data_dir)

    ns: dict = {}
    _run(DISCOVER, ns, data_dir)
    out = capsys.readouterr().out
    assert "['sub-01', 'sub-03']" in out
    assert "FFA1" in out
    _run(DOWNLOAD, ns, data_dir)
    _run(STIMULUS_FILES, ns, data_dir)
    _run(LOAD, ns, data_dir)
    assert ns["betas"].dtype == np.float32 and ns["betas"].ndim == 2
    assert ns["betas"].shape[0] == len(ns["trials"])
    assert 0 < ns["betas_ffa"].shape[1] < ns["betas"].shape[1]
    _run(ALIGNED, ns, data_dir)
    assert ns["X"].shape[0] == len(ns["sub"].get_trial_info(session="ses-01"))
    assert ns["img"].size[0] > 0
    _run(SPLITS, ns, data_dir)
    assert ns["X_train"].shape[0] + ns["X_test"].shape[0] <= ns["betas"].shape[0]
    assert not np.any(ns["train_mask"] & ns["test_mask"])
    _run(NOISE_CEILING, ns, data_dir)
    assert ns["nc"].shape == (ns["sub"].get_n_voxels(),)
    assert np.nanmax(ns["nc"]) <= 100
