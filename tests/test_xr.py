"""``laion_fmri.xr.to_xarray``: values, coordinates, label selection, lazy variant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from laion_fmri.sample import spec_for  # noqa: E402
from laion_fmri.stats import average_repeats  # noqa: E402
from laion_fmri.subject import load_subject  # noqa: E402
from laion_fmri.xr import TRIAL_COORDS, to_xarray  # noqa: E402

SPEC = spec_for("tiny")
SUBJECT = SPEC.subjects[1]
SESSIONS = list(SPEC.sessions[:2])


@pytest.fixture(scope="module")
def sub(shared_downloaded: Path):  # type: ignore[no-untyped-def]
    return load_subject(SUBJECT, data_dir=shared_downloaded)


def test_values_and_coordinates(sub) -> None:  # type: ignore[no-untyped-def]
    da = to_xarray(sub, session=SESSIONS, roi="FFA1")
    parts = sub.get_betas(SESSIONS, roi="FFA1")
    np.testing.assert_array_equal(da.values, np.concatenate([parts[s] for s in SESSIONS]))
    assert da.dims == ("trial", "voxel") and da.dtype == np.float32
    meta = sub.metadata
    rows = meta[meta["session"].isin(SESSIONS)]
    np.testing.assert_array_equal(da["trial"].values, rows.index.to_numpy())
    for col in TRIAL_COORDS:
        assert da[col].values.tolist() == rows[col].tolist()
    xyz = np.column_stack([da[c].values for c in "xyz"])
    np.testing.assert_allclose(xyz, sub.get_voxel_coordinates(roi="FFA1"))
    ijk = np.column_stack([da[c].values for c in "ijk"])
    grid = np.zeros(sub.grid_shape, bool)
    grid.ravel()[np.flatnonzero(sub.get_brain_mask())[sub.get_roi_mask("FFA1")]] = True
    assert grid[tuple(ijk.T)].all() and len(ijk) == grid.sum()
    np.testing.assert_array_equal(da["voxel"].values, np.flatnonzero(sub.get_roi_mask("FFA1")))
    assert da.attrs["subject"] == SUBJECT


def test_label_selection(sub) -> None:  # type: ignore[no-untyped-def]
    da = to_xarray(sub, session="all", roi="face")
    ses2 = da.sel(trial=da["session"] == SESSIONS[1])
    np.testing.assert_array_equal(ses2.values, sub.get_betas(SESSIONS[1], roi="face"))
    # Repeats of one image, selected by name, average like stats.average_repeats.
    name = SPEC.doc_image
    by_name = da.set_xindex("image_name").sel(image_name=name)
    means, labels, counts = average_repeats(da.values, da["image_name"].values)
    row = list(labels).index(name)
    assert by_name.sizes["trial"] == counts[row] > 1
    np.testing.assert_allclose(by_name.mean("trial").values, means[row], rtol=1e-6)
    # Voxels by scanner position.
    near = da.where(da["x"] > float(da["x"].median()), drop=True)
    assert 0 < near.sizes["voxel"] < da.sizes["voxel"]
    assert bool((near["x"] > float(da["x"].median())).all())


def test_lazy_equals_eager(sub) -> None:  # type: ignore[no-untyped-def]
    dask_array = pytest.importorskip("dask.array")
    eager = to_xarray(sub, session=SESSIONS, roi="place")
    lazy = to_xarray(sub, session=SESSIONS, roi="place", lazy=True)
    assert isinstance(lazy.data, dask_array.Array)
    assert lazy.chunks[0] == tuple(SPEC.n_trials_in(SUBJECT, s) for s in SESSIONS)
    xr.testing.assert_identical(lazy.compute(), eager)
    picked = lazy.sel(trial=lazy["unique_or_shared"] == "shared").mean("trial")
    np.testing.assert_allclose(
        picked.compute().values,
        eager.values[eager["unique_or_shared"].values == "shared"].mean(0),
        rtol=1e-5,
    )


def test_whole_brain_single_session_and_delegate(sub) -> None:  # type: ignore[no-untyped-def]
    da = sub.to_xarray(session=SESSIONS[0])
    assert da.shape == (SPEC.n_trials_in(SUBJECT, SESSIONS[0]), sub.get_n_voxels())
    assert set(da["session"].values) == {SESSIONS[0]}


def test_nc_threshold_rules(sub) -> None:  # type: ignore[no-untyped-def]
    nc = sub.get_noise_ceiling(session=SESSIONS[0])
    thr = float(np.nanmedian(nc))
    da = to_xarray(sub, session=SESSIONS[0], nc_threshold=thr)
    assert da.sizes["voxel"] == sub.get_betas(SESSIONS[0], nc_threshold=thr).shape[1]
    assert (nc[da["voxel"].values] >= thr).all()
    with pytest.raises(ValueError, match="several sessions"):
        to_xarray(sub, session=SESSIONS, nc_threshold=thr)


def test_without_xarray_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['xarray'] = None\n"
        "import laion_fmri.xr as x\n"
        "from laion_fmri.errors import MissingDependencyError\n"
        "try:\n    x.to_xarray(None)\n"
        "except MissingDependencyError as e:\n    print('missing', e.package, e.extra)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "missing xarray xarray"
