"""Figures render headless and show the data they claim to show."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from PIL import Image

from laion_fmri import layout
from laion_fmri.cli import main
from laion_fmri.errors import RoiNotFoundError
from laion_fmri.plotting import back_project, pick_slices, plot_map, plot_rois, plot_trial
from laion_fmri.sample import spec_for
from laion_fmri.subject import load_subject

SPEC = spec_for("tiny")
SUBJECT = SPEC.subjects[1]


@pytest.fixture(scope="module")
def sub(shared_downloaded: Path):  # type: ignore[no-untyped-def]
    return load_subject(SUBJECT, data_dir=shared_downloaded)


def assert_real_png(path: Path, min_colours: int = 20) -> np.ndarray:
    """The file is a PNG with actual content: size, several colours, pixel variance."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5_000
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert rgb.shape[0] > 200 and rgb.shape[1] > 300
    assert rgb.astype(float).var() > 100
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) >= min_colours
    return rgb


def test_pick_slices() -> None:
    occupied = np.zeros(20, bool)
    occupied[5:15] = True
    assert pick_slices(occupied, 3) == [5, 9, 14]  # positions 0, 4.5, 9 (round half to even)
    assert pick_slices(occupied, 50) == list(range(5, 15))
    assert pick_slices(np.zeros(4, bool), 3) == []


def test_back_project_matches_to_nifti(sub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    values = sub.get_noise_ceiling(session=SPEC.sessions[0], roi="face")
    sel = sub.get_roi_mask("face")
    vol = back_project(sub, values, sel)
    written = nib.load(sub.to_nifti(values, tmp_path / "nc.nii.gz", roi="face")).get_fdata()
    placed = ~np.isnan(vol)
    assert placed.sum() == sel.sum()
    np.testing.assert_allclose(vol[placed], written[placed], rtol=1e-6)
    assert not written[~placed].any()
    with pytest.raises(ValueError, match=str(int(sel.sum()))):
        back_project(sub, values[:-1], sel)


def test_plot_map_whole_brain_and_roi(sub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nc = sub.get_noise_ceiling(desc="Noiseceiling12rep")
    out = tmp_path / "nc.png"
    fig = plot_map(sub, nc, title="NC", n_slices=6, out=out)
    assert_real_png(out)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6
    # The colour scale spans the data.
    layer = panels[0].images[1]
    assert layer.get_clim() == pytest.approx((float(np.nanmin(nc)), float(np.nanmax(nc))))
    face = sub.get_noise_ceiling(desc="Noiseceiling12rep", roi="face")
    roi_fig = plot_map(sub, face, roi="face", n_slices=3, out=tmp_path / "face.png")
    assert_real_png(tmp_path / "face.png")
    # Every shown plane contains face voxels, and only face voxels are coloured.
    shown = sum(int((~ax.images[1].get_array().mask).sum()) for ax in roi_fig.axes if ax.images)
    assert 0 < shown <= int(sub.get_roi_mask("face").sum())
    with pytest.raises(ValueError, match="one entry per selected voxel"):
        plot_map(sub, nc, roi="face")
    with pytest.raises(ValueError, match="n_slices"):
        plot_map(sub, nc, n_slices=0)


def test_plot_rois_category(sub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "rois.png"
    fig = plot_rois(sub, category="face", out=out)
    assert_real_png(out)
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names == sorted(SPEC.rois["face"]) == sub.get_available_rois(category="face")
    every = plot_rois(sub, n_slices=1)
    assert len(every.legends[0].get_texts()) == len(SPEC.roi_labels)
    with pytest.raises(RoiNotFoundError, match="face"):
        plot_rois(sub, category="faces")


def test_plot_trial_shows_the_trials_betas(sub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    meta = sub.metadata
    i = int(np.flatnonzero(meta["image_name"] == SPEC.doc_image)[0])
    out = tmp_path / "trial.png"
    fig = plot_trial(sub, i, roi="face", out=out)
    assert_real_png(out, min_colours=50)
    strips = fig.axes[2]
    row = sub.get_betas(meta["session"].iloc[i])[int(meta["session_trial"].iloc[i])]
    masks = sub.get_roi_data("face", format="volume")
    assert [t.get_text() for t in strips.get_xticklabels()] == list(masks)
    scatters = [c for c in strips.collections if isinstance(c, PathCollection)]
    assert len(scatters) == len(masks)
    for collection, name in zip(scatters, masks, strict=True):
        shown = np.sort(collection.get_offsets()[:, 1])
        np.testing.assert_allclose(shown, np.sort(row[masks[name]]), rtol=1e-6)
    text = "\n".join(t.get_text() for t in fig.axes[1].texts)
    human = sub.captions.human(i, limit=1)[0]
    assert human.split()[0] in text
    with pytest.raises(IndexError, match="out of range"):
        plot_trial(sub, len(meta))


def test_plot_trial_without_images_still_renders(downloaded: Path, tmp_path: Path) -> None:
    (downloaded / layout.STIMULI_IMAGES_KEY).unlink()
    sub = load_subject(SUBJECT)
    fig = plot_trial(sub, 0, out=tmp_path / "t.png")
    assert "download_stimuli" in fig.axes[0].texts[0].get_text()
    assert_real_png(tmp_path / "t.png", min_colours=10)


def test_cli_plot(shared_downloaded: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    base = ["--subject", SUBJECT, "--data-dir", str(shared_downloaded)]
    assert main(["plot", "nc", *base, "--slices", "2", "--out", str(tmp_path / "nc.png")]) == 0
    assert_real_png(tmp_path / "nc.png")
    assert main(["plot", "nc", *base, "--session", SPEC.sessions[0], "--roi", "face",
                 "--slices", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert_real_png(tmp_path / "s.png")
    assert main(["plot", "rois", *base, "--category", "place", "--slices", "2",
                 "--out", str(tmp_path / "r.png")]) == 0
    assert_real_png(tmp_path / "r.png")
    assert main(["plot", "trial", *base, "--trial", "2", "--out", str(tmp_path / "t.png")]) == 0
    assert_real_png(tmp_path / "t.png")
    capsys.readouterr()
    assert main(["plot", "nc", *base, "--desc", "Noiseceiling99rep", "--out",
                 str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "Noiseceiling99rep" in err and "Noiseceiling12rep" in err
    assert not (tmp_path / "x.png").exists()


def test_plot_map_outlines_an_roi(sub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nc = sub.get_noise_ceiling(desc="Noiseceiling12rep")
    fig = plot_map(sub, nc, outline="face", n_slices=4, out=tmp_path / "outlined.png")
    assert_real_png(tmp_path / "outlined.png")
    face = np.zeros(int(np.prod(sub.grid_shape)), bool)
    face[np.flatnonzero(sub.get_brain_mask())[sub.get_roi_mask("face")]] = True
    face = face.reshape(sub.grid_shape)
    panels = [ax for ax in fig.axes if ax.images]
    # A contour is drawn on exactly the panels whose plane holds face voxels.
    planes = [int(ax.get_title().split("=")[1]) for ax in panels]
    has_contour = [bool(ax.collections) for ax in panels]
    assert has_contour == [bool(face[:, :, k].any()) for k in planes]
    assert any(has_contour)
    with pytest.raises(RoiNotFoundError):
        plot_map(sub, nc, outline="nope")
