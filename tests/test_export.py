"""Voxel-major zarr export: same numbers as get_betas, column chunks, atomic output, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("zarr")

from laion_fmri.cli import main
from laion_fmri.errors import RoiNotFoundError
from laion_fmri.export import (
    chunk_voxels,
    column_passes,
    export_zarr,
    mask_source_kwargs,
    open_export,
)
from laion_fmri.subject import load_subject


def _concat(sub, sessions, **kwargs) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([sub.get_betas(session=s, **kwargs) for s in sessions])


def test_whole_brain_export_matches_get_betas(downloaded: Path, tmp_path: Path) -> None:
    sub = load_subject("sub-03")
    sessions = sub.get_sessions()
    # A tiny memory limit forces several column passes and chunks.
    out = export_zarr(sub, tmp_path / "x.zarr", memory_limit=64 * 1024, target_chunk_bytes=8 * 1024)
    ex = open_export(out)
    expected = _concat(sub, sessions)
    assert ex.betas.shape == expected.shape
    assert ex.betas.chunks[0] == expected.shape[0] and ex.betas.chunks[1] < expected.shape[1]
    np.testing.assert_array_equal(ex.read(), expected)
    # Columns are ROI-major: each ROI's voxels form one run; voxel_index says which is which.
    np.testing.assert_array_equal(np.sort(ex.voxel_index), np.arange(sub.get_n_voxels()))
    np.testing.assert_array_equal(ex.betas[:], expected[:, ex.voxel_index])
    first_roi = sorted(ex.rois)[0]
    run = np.sort(ex.roi_columns(first_roi))
    assert run[-1] - run[0] + 1 == run.size
    # Default codec: raw float32 (betas barely compress; raw reads are several times faster).
    assert [c.to_dict()["name"] for c in ex.betas.metadata.codecs] == ["bytes"]
    assert ex.attrs["sessions"] == sessions and ex.attrs["subject"] == "sub-03"
    assert ex.attrs["session_offsets"][1] == ex.attrs["session_rows"][0]
    # ROI columns stored in the export give the same numbers as get_betas(roi=...).
    roi = sub.get_available_rois()[0]
    assert roi in ex.rois
    np.testing.assert_array_equal(ex.read(roi=roi), _concat(sub, sessions, roi=roi))
    union = sub.get_available_rois()[:3]  # possibly overlapping ROIs, read as one union
    np.testing.assert_array_equal(ex.read(roi=union), _concat(sub, sessions, roi=union))
    # Scattered columns across several chunk runs read like numpy fancy indexing.
    picks = np.array([0, 1, 5, expected.shape[1] // 2, expected.shape[1] - 1])
    np.testing.assert_array_equal(ex.read_columns(picks), expected[:, ex.voxel_index[picks]])
    np.testing.assert_array_equal(ex.read_columns(picks[::-1]), expected[:, ex.voxel_index[picks[::-1]]])
    with pytest.raises(IndexError):
        ex.read_columns(np.array([3, expected.shape[1]]))
    trials = ex.trials()
    assert len(trials) == expected.shape[0]
    ref = pd.concat([sub.get_trial_info(s) for s in sessions], ignore_index=True)
    assert trials["label"].tolist() == ref["label"].tolist()
    assert trials["session"].tolist() == ref["session"].tolist()
    assert trials["session_trial"].iloc[ex.attrs["session_offsets"][1]] == 0
    assert not (tmp_path / "x.zarr.partial").exists()


def test_roi_export_and_session_subset(downloaded: Path, tmp_path: Path) -> None:
    sub = load_subject("sub-03")
    sessions = sub.get_sessions()[:2]
    out = export_zarr(sub, tmp_path / "face.zarr", session=sessions, roi="face")
    ex = open_export(out)
    np.testing.assert_array_equal(ex.read(), _concat(sub, sessions, roi="face"))
    np.testing.assert_array_equal(np.sort(ex.voxel_index), np.flatnonzero(sub.get_roi_mask("face")))
    for name in sub.get_available_rois(category="face"):
        np.testing.assert_array_equal(ex.read(roi=name), _concat(sub, sessions, roi=name))
    with pytest.raises(FileExistsError, match="overwrite"):
        export_zarr(sub, out, roi="face")
    with pytest.raises(KeyError, match="not stored"):
        ex.roi_columns("NoSuchROI")


def test_failed_export_leaves_nothing(downloaded: Path, tmp_path: Path) -> None:
    sub = load_subject("sub-03")
    with pytest.raises(RoiNotFoundError):
        export_zarr(sub, tmp_path / "bad.zarr", roi="NoSuchROI")
    assert not (tmp_path / "bad.zarr").exists() and not (tmp_path / "bad.zarr.partial").exists()
    with pytest.raises(FileNotFoundError, match="not a laion-fmri zarr export"):
        open_export(tmp_path)


def test_mask_source_is_passed_only_when_supported() -> None:
    def with_source(session, mask_source=None):  # type: ignore[no-untyped-def]
        return mask_source

    def without(session):  # type: ignore[no-untyped-def]
        return session

    assert mask_source_kwargs(with_source, "R2mean") == {"mask_source": "R2mean"}
    assert mask_source_kwargs(without, None) == {}
    with pytest.raises(ValueError, match="not supported"):
        mask_source_kwargs(without, "R2mean")


def test_chunk_and_pass_planning() -> None:
    assert chunk_voxels(4096, 65_000, 16 * 2**20) == 1024
    assert chunk_voxels(10**7, 5, 1024) == 5  # at least MIN_CHUNK_VOXELS, at most all
    assert chunk_voxels(10**7, 50_000, 1024) == 16
    passes = column_passes(10_000, 256, 100, 100 * 4 * 1000)
    assert passes[0] == (0, 768) and passes[-1][1] == 10_000
    assert all(b - a == 768 for a, b in passes[:-1])


def test_cli_export(downloaded: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "cli.zarr"
    assert main(["export", "--subject", "3", "--format", "zarr", "--roi", "face", str(out)]) == 0
    assert "Wrote" in capsys.readouterr().out
    sub = load_subject("sub-03")
    np.testing.assert_array_equal(open_export(out).read(), _concat(sub, sub.get_sessions(), roi="face"))
    assert main(["export", "--subject", "3", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["export", "--subject", "3", "--mask-source", "R2mean", str(tmp_path / "m")]) == 2
