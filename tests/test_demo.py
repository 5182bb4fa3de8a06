"""`laion-fmri demo` walks the whole journey on the sample dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def test_demo_runs_end_to_end(tmp_path: Path, sample_root: Path, monkeypatch, capsys) -> None:
    from laion_fmri import sample
    from laion_fmri.cli import main

    # Reuse the session's sample tree instead of building a second one.
    monkeypatch.setattr(sample, "ensure_sample_dataset", lambda scale="tiny", seed=0: sample_root)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    for expected in ("get_subjects() -> ['sub-01', 'sub-03']", ">>> download(subject='sub-03', n_jobs=4)",
                     "re-run fetched 0 file(s)", "Downloaded",
                     "roi='FFA1'", "to_nifti round trip", "tau split", "aligned", "wrote",
                     "shared images between train and test: 0", "group.get_shared_betas",
                     "0 missing, 0 truncated, 0 altered", "mask_source='rsquare' (R2mean != 0)",
                     "get_t1w() -> ", "get_events('ses-01') -> ", "get_raw_bold(", "get_localizers() -> ",
                     "get_localizer('floc', 'faceVsOthers')"):
        assert expected in out, expected
    assert "equal=True" in out
    for name in ("noise_ceiling.png", "rois.png", "trial_0.png", "noise_ceiling_fsaverage.png"):
        png = tmp_path / "demo" / name
        assert png.stat().st_size > 5_000


def test_demo_recovers_planted_signal(tmp_path: Path, sample_root: Path, monkeypatch) -> None:
    from laion_fmri import sample
    from laion_fmri._demo import run_demo

    monkeypatch.setattr(sample, "ensure_sample_dataset", lambda scale="tiny", seed=0: sample_root)
    results = run_demo(tmp_path / "demo", echo=lambda line: None)
    assert results["score"] > 0.1
    assert results["score"] > results["shuffled"] + 0.1
    assert np.prod(results["ffa_shape"]) > 0
    spec = sample.spec_for("tiny")
    assert results["n_voxels"] == {"anatomical": spec.n_anatomical_voxels, "rsquare": spec.n_brain_voxels}
    assert results["localizer_face_z"] > 2  # the planted face contrast shows in the face ROIs
