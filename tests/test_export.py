"""Voxel-major zarr export: same numbers as get_betas, column chunks, atomic output, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("zarr")

from laion_fmri._export_layout import place_columns, plan_chunk_copies
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


def _export_v1_style(src: Path, dest: Path, chunk_keys: dict | None = None) -> None:
    """Re-write an export the way version 1 wrote it: blosc zstd betas, zarr-compressed index arrays."""
    import zarr
    from zarr.codecs import BloscCodec, BloscShuffle

    old = zarr.open_group(str(src), mode="r")
    group = zarr.open_group(str(dest), mode="w", zarr_format=3)
    extra = {"chunk_key_encoding": chunk_keys} if chunk_keys else {}
    group.create_array("betas", data=old["betas"][:], chunks=(old["betas"].shape[0], 16),
                       compressors=BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle),
                       fill_value=np.float32("nan"), **extra)
    group.create_array("voxel_index", data=old["voxel_index"][:])
    for name in old["rois"].array_keys():
        group.create_array(f"rois/{name}", data=old[f"rois/{name}"][:])
    attrs = dict(old.attrs)
    attrs["laion_fmri_export"] = 1
    attrs.pop("n_brain_voxels")
    group.attrs.update(attrs)
    (dest / "trials.tsv").write_bytes((src / "trials.tsv").read_bytes())


def test_layout_reads_equal_get_betas_for_rois_masks_and_columns(downloaded: Path, tmp_path: Path) -> None:
    sub = load_subject("sub-03")
    sessions = sub.get_sessions()
    out = export_zarr(sub, tmp_path / "x.zarr", target_chunk_bytes=16 * 1024)
    ex = open_export(out)
    expected = _concat(sub, sessions)
    whole = ex.betas[:]  # zarr's own decode of every chunk
    np.testing.assert_array_equal(whole, expected[:, ex.voxel_index])
    # Every stored ROI, overlapping ones included (split between runs: the gather path).
    sizes = {name: int(sub.get_roi_mask(name).sum()) for name in ex.rois}
    for name in ex.rois:
        np.testing.assert_array_equal(ex.read(roi=name), _concat(sub, sessions, roi=name))
    # A voxel shared by ROIs sits with the largest one: the largest ROI is one run in brain order.
    largest = max(sizes, key=lambda n: (sizes[n], n))
    assert np.all(np.diff(ex.roi_columns(largest)) == 1)
    # Voxels in no ROI follow in 8^3 bricks of the grid, each brick one run.
    in_roi = np.zeros(ex.voxel_index.size, dtype=bool)
    for name in ex.rois:
        in_roi[ex.roi_columns(name)] = True
    first_rest = int(np.flatnonzero(~in_roi)[0])
    assert not in_roi[first_rest:].any()
    flat = np.flatnonzero(sub.get_brain_mask())[ex.voxel_index[first_rest:]]
    bricks = np.ravel_multi_index(tuple(np.array(np.unravel_index(flat, sub.grid_shape)) // 8), (18, 18, 18))
    assert np.count_nonzero(np.diff(bricks)) == np.unique(bricks).size - 1 > 0
    # Brain-voxel masks, as for get_betas(mask=...), and arbitrary column sets in any order.
    rng = np.random.default_rng(7)
    mask = rng.random(sub.get_n_voxels()) < 0.1
    np.testing.assert_array_equal(ex.read(mask=mask), _concat(sub, sessions, mask=mask))
    cols = rng.permutation(expected.shape[1])[:500]
    np.testing.assert_array_equal(ex.read_columns(cols), whole[:, cols])
    np.testing.assert_array_equal(ex.read_columns(cols, threads=1), whole[:, cols])
    # Every column shuffled: each chunk is gathered, straight into the result ...
    shuffled = rng.permutation(expected.shape[1])
    np.testing.assert_array_equal(ex.read_columns(shuffled), whole[:, shuffled])
    # ... and slice-copied runs mixed with gathered chunks.
    mixed = np.concatenate([np.arange(40), 40 + rng.permutation(expected.shape[1] - 40)[:300]])
    np.testing.assert_array_equal(ex.read_columns(mixed, threads=2), whole[:, mixed])
    run = np.arange(3, expected.shape[1] - 5)  # one long run across every chunk
    np.testing.assert_array_equal(ex.read_columns(run, threads=3), whole[:, run])
    np.testing.assert_array_equal(ex.read(threads=1), expected)
    with pytest.raises(ValueError, match="either roi or mask"):
        ex.read(roi=largest, mask=mask)
    with pytest.raises(ValueError, match="boolean array"):
        ex.read(mask=mask[:-1])
    roi_only = open_export(export_zarr(sub, tmp_path / "face.zarr", roi="face"))
    with pytest.raises(ValueError, match="not in"):
        roi_only.read(mask=mask)
    face = sub.get_roi_mask("face")
    np.testing.assert_array_equal(roi_only.read(mask=face & mask), _concat(sub, sessions, mask=face & mask))


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_blosc_exports_read_the_same_numbers(downloaded: Path, tmp_path: Path, codec: str) -> None:
    sub = load_subject("sub-03")
    sessions = sub.get_sessions()
    ex = open_export(export_zarr(sub, tmp_path / f"{codec}.zarr", codec=codec, target_chunk_bytes=16 * 1024))
    blosc = ex.betas.metadata.codecs[-1].to_dict()
    assert blosc["name"] == "blosc" and blosc["configuration"]["cname"] == codec
    assert ex.attrs["codec"] == codec
    np.testing.assert_array_equal(ex.read(), _concat(sub, sessions))
    roi = sub.get_available_rois()[0]
    np.testing.assert_array_equal(ex.read(roi=roi), _concat(sub, sessions, roi=roi))
    # A chunk that decodes to the wrong size is an error, never short data.
    from numcodecs import blosc

    wrong = blosc.compress(np.zeros(10, np.float32).tobytes(), b"lz4", 5)
    (ex.path / "betas" / "c" / "0" / "0").write_bytes(wrong)
    with pytest.raises(OSError, match="damaged, write it again"):
        ex.read_columns(np.array([0]))


@pytest.mark.parametrize("chunk_keys", [None, {"name": "v2", "separator": "."}])
def test_version_1_exports_still_read(downloaded: Path, tmp_path: Path, chunk_keys: dict | None) -> None:
    sub = load_subject("sub-03")
    sessions = sub.get_sessions()
    src = export_zarr(sub, tmp_path / "new.zarr")
    _export_v1_style(src, tmp_path / "old.zarr", chunk_keys)  # v2 keys: only zarr reads the chunks
    ex = open_export(tmp_path / "old.zarr")
    assert ex.attrs["laion_fmri_export"] == 1
    np.testing.assert_array_equal(ex.read(), _concat(sub, sessions))
    for roi in ex.rois[:3]:
        np.testing.assert_array_equal(ex.read(roi=roi), _concat(sub, sessions, roi=roi))
    mask = np.zeros(sub.get_n_voxels(), dtype=bool)
    mask[::7] = True
    np.testing.assert_array_equal(ex.read(mask=mask), _concat(sub, sessions, mask=mask))


def test_unknown_version_damaged_and_missing_chunks(downloaded: Path, tmp_path: Path) -> None:
    sub = load_subject("sub-03")
    out = export_zarr(sub, tmp_path / "x.zarr", target_chunk_bytes=16 * 1024)
    chunks = sorted((out / "betas" / "c" / "0").iterdir(), key=lambda p: int(p.name))
    # zarr leaves an all-fill chunk unwritten: a missing chunk reads as NaN, like zarr reads it.
    chunks[1].unlink()
    ex = open_export(out)
    via_zarr = ex.betas[:]
    assert np.isnan(via_zarr[:, ex.betas.chunks[1]]).all()
    np.testing.assert_array_equal(ex.read_columns(np.arange(via_zarr.shape[1])), via_zarr)
    # A truncated chunk is an error that says what to do, never short data.
    chunks[0].write_bytes(chunks[0].read_bytes()[:100])
    with pytest.raises(OSError, match="damaged, write it again"):
        ex.read_columns(np.array([0, 1]))
    index = out / "voxel_index" / "c" / "0"
    index.write_bytes(index.read_bytes()[:16])
    with pytest.raises(OSError, match="damaged, write it again"):
        open_export(out).voxel_index  # noqa: B018 - read on first use
    meta = json.loads((out / "zarr.json").read_text())
    meta["attributes"]["laion_fmri_export"] = 99
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match="export it again"):
        open_export(out)


def test_reading_needs_no_zarr_import(downloaded: Path, tmp_path: Path) -> None:
    sub = load_subject("sub-03")
    roi = sub.get_available_rois()[0]
    out = export_zarr(sub, tmp_path / "x.zarr")
    expected = _concat(sub, sub.get_sessions(), roi=roi)
    np.save(tmp_path / "expected.npy", expected)
    code = (
        "import sys, numpy as np\n"
        "from laion_fmri.export import open_export\n"
        f"got = open_export({str(out)!r}).read(roi={roi!r})\n"
        f"np.testing.assert_array_equal(got, np.load({str(tmp_path / 'expected.npy')!r}))\n"
        "assert 'zarr' not in sys.modules, 'zarr was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_chunk_copy_plans_rebuild_fancy_indexing() -> None:
    rng = np.random.default_rng(3)
    data = rng.random((4, 97)).astype(np.float32)
    for cols in (np.arange(10, 60), rng.permutation(97)[:40], np.array([5, 6, 7, 96, 0, 1, 2, 50])):
        out = np.full((4, cols.size), np.nan, dtype=np.float32)
        plans = plan_chunk_copies(cols, 16)
        assert [p.chunk for p in plans] == sorted(set((cols // 16).tolist()))
        for plan in plans:
            block = np.zeros((4, 16), dtype=np.float32)
            width = min(16, 97 - plan.chunk * 16)
            block[:, :width] = data[:, plan.chunk * 16 : plan.chunk * 16 + width]
            place_columns(out, block, plan)
        np.testing.assert_array_equal(out, data[:, cols])
    assert len(plan_chunk_copies(np.arange(10, 60), 16)[0].runs) == 1
