"""xarray adapter: betas as a labelled ``(trial, voxel)`` DataArray.

Trial metadata (session, run, image name, ...) and voxel coordinates
(scanner mm and grid indices) become coordinates, so trials and voxels can be
selected by label. ``lazy=True`` wraps the dask array of
``sub.get_betas(..., lazy=True)`` (one chunk per session) instead of loading.

``xarray`` is an optional dependency (``pip install 'laion-fmri[xarray]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri._docs import fill_doc
from laion_fmri.errors import MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    import xarray

    from laion_fmri._types import SubjectLike

#: ``sub.metadata`` columns carried as ``trial`` coordinates (when present).
TRIAL_COORDS: tuple[str, ...] = (
    "session",
    "run",
    "beta_index",
    "session_trial",
    "label",
    "image_name",
    "unique_or_shared",
    "dataset",
)


def _grid_indices(
    brain: np.ndarray, grid_shape: tuple[int, int, int], sel: np.ndarray | None
) -> np.ndarray:
    """``(n, 3)`` int64 grid indices ``(i, j, k)`` of the selected brain voxels."""
    flat = np.flatnonzero(brain)
    flat = flat if sel is None else flat[sel]
    return np.column_stack(np.unravel_index(flat, grid_shape)).astype(np.int64)


@fill_doc
def to_xarray(
    sub: SubjectLike,
    session: object = "all",
    roi: object = None,
    mask: object = None,
    nc_threshold: float | None = None,
    lazy: bool = False,
    mask_source: str | None = None,
) -> xarray.DataArray:
    """Betas of one subject as an ``xarray.DataArray`` with dims ``(trial, voxel)``.

    Parameters
    ----------
    sub : Subject
        A loaded subject.
    %(session)s
        Sessions are stacked in the order given.
    %(roi_mask)s
    %(nc_threshold_one)s
    lazy : bool
        Back the array with dask (one chunk per session) instead of loading it.
    %(mask_source)s

    Returns
    -------
    xarray.DataArray
        float32 ``(n_trials, n_voxels)`` named ``"betas"``. The ``trial``
        index holds global trial indices (rows of ``sub.metadata``) and the
        coordinates :data:`TRIAL_COORDS`; the ``voxel`` index holds the voxel's
        position in the brain mask, with coordinates ``x``, ``y``, ``z``
        (scanner mm) and ``i``, ``j``, ``k`` (grid indices).

    Raises
    ------
    MissingDependencyError
        ``xarray`` (or, with ``lazy=True``, ``dask``) is not installed.
    ValueError
        Bad selection arguments, or ``nc_threshold`` with several sessions.
    SessionNotFoundError, RoiNotFoundError, DataNotDownloadedError
        Unknown session/ROI, or data not on disk.

    Examples
    --------
    >>> da = to_xarray(sub, session="ses-01", roi="FFA1")  # doctest: +SKIP
    >>> name = "shared_12rep_LAION_cluster_1003_i0.jpg"
    >>> da.sel(trial=da.image_name == name).mean("trial")  # doctest: +SKIP
    """
    xr = MissingDependencyError.require("xarray", "xarray")
    import pandas as pd

    selection = sub.select(session, roi, mask, nc_threshold, one_voxel_set=True,
                           mask_source=mask_source)
    sessions = list(selection.sessions)
    sel = selection.voxels_for()
    source = selection.mask_source
    if lazy:
        data = sub.get_betas(sessions, mask=sel, lazy=True, mask_source=source)
    else:
        parts = sub.get_betas(sessions, mask=sel, mask_source=source)
        data = np.concatenate([parts[s] for s in sessions], axis=0)

    meta = sub.metadata
    frames = [meta[meta["session"] == s] for s in sessions]
    trials = pd.concat(frames) if len(frames) > 1 else frames[0]
    if data.shape[0] != len(trials):
        raise ValueError(
            f"{sub.subject_id}: the betas have {data.shape[0]} trials but the trial tables list "
            f"{len(trials)}; re-download the affected session."
        )
    coords: dict[str, Any] = {"trial": trials.index.to_numpy(dtype=np.int64)}
    for col in TRIAL_COORDS:
        if col in trials.columns:
            coords[col] = ("trial", trials[col].to_numpy())

    voxel_ids = np.arange(selection.n_brain) if sel is None else np.flatnonzero(sel)
    ijk = _grid_indices(sub.get_brain_mask(source=source), sub.grid_shape, sel)
    xyz = ijk.astype(np.float64) @ sub.affine[:3, :3].T + sub.affine[:3, 3]
    coords["voxel"] = voxel_ids.astype(np.int64)
    for name, column in zip("xyz", xyz.T, strict=True):
        coords[name] = ("voxel", column)
    for name, column in zip("ijk", ijk.T, strict=True):
        coords[name] = ("voxel", column)
    return xr.DataArray(
        data,
        dims=("trial", "voxel"),
        coords=coords,
        name="betas",
        attrs={"subject": sub.subject_id, "sessions": list(sessions), "mask_source": source},
    )


__all__ = ["TRIAL_COORDS", "to_xarray"]
