"""Per-voxel statistics on ``(n_trials, n_voxels)`` beta matrices.

Conventions shared by every function here:

* ``betas`` is 2-D, trials on axis 0, voxels on axis 1.
* Grouping arrays (``sessions``, ``labels``, ``runs``) have one entry per trial
  and may hold any hashable values (strings, ints).
* z-scores use the population standard deviation (``ddof=0``); a voxel that
  is constant within a group gets z = 0 in that group (not NaN).
* Images are grouped in first-appearance order (the order of
  :func:`pandas.factorize` with ``sort=False``).
* NaN betas: :func:`zscore_by_session` ignores them when estimating mean and
  standard deviation and keeps them NaN; :func:`average_repeats` and
  :func:`noise_ceiling` propagate them (a voxel with any NaN trial gets a NaN
  mean / NaN noise ceiling), so a dropout voxel is never silently scored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from laion_fmri.errors import StatsInputError

__all__ = ["average_repeats", "noise_ceiling", "zscore_by_session"]

_CHUNK = 8192  # voxels per block in noise_ceiling


def _as_matrix(betas: object) -> np.ndarray:
    arr = np.asarray(betas)
    if arr.ndim != 2:
        raise StatsInputError(
            f"betas must be a 2-D (n_trials, n_voxels) array, got shape {arr.shape}; "
            "use betas[:, None] for a single voxel."
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise StatsInputError(f"betas must be real numbers, got dtype {arr.dtype}.")
    return arr


def _groups(values: object, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (first-appearance order) and the unique values of a per-trial array."""
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.ndim != 1 or len(arr) != n:
        raise StatsInputError(
            f"{what} must have one entry per trial ({n}), got shape {np.shape(arr)}."
        )
    codes, uniques = pd.factorize(pd.Series(arr, dtype=object), sort=False)
    if (codes < 0).any():
        raise StatsInputError(f"{what} contains missing values (None/NaN); every trial needs one.")
    return codes.astype(np.intp), np.asarray(uniques, dtype=object)


def _segments(codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable sort order, segment start offsets and sizes for groups 0..n_groups-1."""
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return order, starts, counts


def _zscore_groups(betas: np.ndarray, codes: np.ndarray, nan_safe: bool,
                   dtype: type | None = None) -> np.ndarray:
    """z-score every column within each group (ddof=0; constant -> 0)."""
    out = np.empty(betas.shape, dtype=dtype or np.result_type(betas.dtype, np.float32))
    for g in range(int(codes.max()) + 1 if codes.size else 0):
        rows = np.flatnonzero(codes == g)
        block = betas[rows].astype(np.float64)
        # The NaN-aware reductions are several times slower; use them only when needed.
        use_nan = nan_safe and bool(np.isnan(block).any())
        mean_fn, std_fn = (np.nanmean, np.nanstd) if use_nan else (np.mean, np.std)
        with np.errstate(invalid="ignore", divide="ignore"), _quiet_nan_warnings():
            mean = mean_fn(block, axis=0)
            std = std_fn(block, axis=0)
            z = (block - mean) / std
        # Constant (or all-NaN) columns: defined as 0 where a value exists.
        flat = ~(std > 0)
        if flat.any():
            z[:, flat] = np.where(np.isnan(block[:, flat]), np.nan, 0.0)
        out[rows] = z
    return out


class _quiet_nan_warnings:
    """Silence numpy's 'mean of empty slice' for all-NaN columns (handled explicitly)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def zscore_by_session(betas: object, sessions: object) -> np.ndarray:
    """z-score each voxel within each session.

    Parameters
    ----------
    betas : array_like, shape (n_trials, n_voxels)
        Single-trial betas.
    sessions : array_like, shape (n_trials,)
        Session id of every trial (any hashable values).

    Returns
    -------
    numpy.ndarray, shape (n_trials, n_voxels)
        float32 for float32/int input (float64 for float64 input). Mean and
        standard deviation (``ddof=0``) are estimated per session and voxel
        ignoring NaNs; NaN inputs stay NaN; a voxel constant within a session
        gets 0 there.

    Raises
    ------
    StatsInputError
        If ``betas`` is not 2-D numeric or ``sessions`` has the wrong length.

    Examples
    --------
    >>> z = zscore_by_session([[1.0], [3.0], [5.0], [5.0]], ["a", "a", "b", "b"])
    >>> z.ravel().tolist()
    [-1.0, 1.0, 0.0, 0.0]
    """
    arr = _as_matrix(betas)
    codes, _ = _groups(sessions, arr.shape[0], "sessions")
    return _zscore_groups(arr, codes, nan_safe=True)


def average_repeats(betas: object, labels: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average the repeated presentations of each image.

    Parameters
    ----------
    betas : array_like, shape (n_trials, n_voxels)
        Single-trial betas (z-score them first with :func:`zscore_by_session`
        when they span sessions).
    labels : array_like, shape (n_trials,)
        Image name of every trial.

    Returns
    -------
    means : numpy.ndarray, shape (n_images, n_voxels)
        Mean over each image's trials (NaN if any of them is NaN).
    unique_labels : numpy.ndarray of object, shape (n_images,)
        Image names in order of first appearance in ``labels``.
    counts : numpy.ndarray of int, shape (n_images,)
        Number of trials averaged for each image.

    Raises
    ------
    StatsInputError
        If the shapes do not match.

    Examples
    --------
    >>> m, names, n = average_repeats([[1.0], [2.0], [3.0]], ["b", "a", "b"])
    >>> m.ravel().tolist(), names.tolist(), n.tolist()
    ([2.0, 2.0], ['b', 'a'], [2, 1])
    """
    arr = _as_matrix(betas)
    codes, uniques = _groups(labels, arr.shape[0], "labels")
    order, starts, counts = _segments(codes, len(uniques))
    means = np.empty((len(uniques), arr.shape[1]), dtype=np.result_type(arr.dtype, np.float32))
    # One gather per distinct repeat count: (n_images, n_repeats, n_voxels) -> mean.
    for c in np.unique(counts):
        images = np.flatnonzero(counts == c)
        idx = order[starts[images][:, None] + np.arange(c)]
        means[images] = arr[idx].mean(axis=1, dtype=np.float64)
    return means, uniques, counts


def noise_ceiling(betas: object, labels: object, runs: object = None) -> np.ndarray:
    """Noise ceiling (percent of explainable variance) per voxel, NSD's ncsnr definition.

    Steps (DATASET.md 3.5):

    1. z-score each voxel within each run when ``runs`` is given, else over
       all trials (``ddof=0``; a voxel constant within a run gets 0 there).
    2. Keep only images with at least 2 trials; single presentations carry no
       noise information and are dropped (they do not enter step 5 either).
    3. noise variance = mean over the kept images of the variance across that
       image's repeats (``ddof=1``, unbiased).
    4. signal variance = max(0, 1 - noise variance);
       ncsnr = sqrt(signal variance) / sqrt(noise variance).
    5. NC = 100 * ncsnr**2 / (ncsnr**2 + mean(1 / n)), n = repeats per kept
       image. Computed as 100 * signal / (signal + noise * mean(1/n)), which is
       the same number and equals 100 when the noise variance is 0.

    A voxel whose z-scores are all 0 (constant in every run, e.g. outside the
    brain) gets 0, and a voxel with any NaN beta gets NaN.

    Parameters
    ----------
    betas : array_like, shape (n_trials, n_voxels)
        Single-trial betas.
    labels : array_like, shape (n_trials,)
        Image name of every trial.
    runs : array_like, shape (n_trials,), optional
        z-scoring groups: the run of each trial for a per-session ceiling, the
        session of each trial for a cross-session ceiling. Run numbers restart
        in every session, so over several sessions pass ``(session, run)`` keys,
        e.g. ``meta["session"] + "/" + meta["run"].astype(str)``.

    Returns
    -------
    numpy.ndarray, shape (n_voxels,)
        float64 noise ceiling in percent, 0..100.

    Raises
    ------
    StatsInputError
        If shapes do not match or no image has two or more trials.

    Examples
    --------
    >>> import numpy as np
    >>> b = np.array([[1.0, 0.0], [1.2, 1.0], [-1.0, 0.0], [-0.8, 1.0]])
    >>> noise_ceiling(b, ["x", "x", "y", "y"]).round(1).tolist()
    [99.0, 0.0]
    """
    arr = _as_matrix(betas)
    n = arr.shape[0]
    codes, uniques = _groups(labels, n, "labels")
    run_codes = np.zeros(n, np.intp) if runs is None else _groups(runs, n, "runs")[0]
    counts_all = np.bincount(codes, minlength=len(uniques))
    keep = counts_all[codes] >= 2
    if not keep.any():
        raise StatsInputError(
            "noise_ceiling needs at least one image presented two or more times; "
            "none of the given labels repeats. Pass more sessions or the repeated trials."
        )
    kept_codes, _ = pd.factorize(codes[keep], sort=False)
    order, starts, counts = _segments(kept_codes, int(kept_codes.max()) + 1)
    rows = np.flatnonzero(keep)[order]  # kept trials grouped by image
    inv_n = float(np.mean(1.0 / counts))
    # Images with the same number of repeats form one (n_images, n_repeats) index block,
    # so within-image variances are computed for all of them (and all voxels) at once.
    blocks = [rows[starts[counts == c][:, None] + np.arange(c)] for c in np.unique(counts)]
    nc = np.empty(arr.shape[1], dtype=np.float64)
    # Voxel chunks bound the float64 temporaries on session-sized inputs.
    for lo in range(0, arr.shape[1], _CHUNK):
        cols = slice(lo, lo + _CHUNK)
        z_all = _zscore_groups(arr[:, cols], run_codes, nan_safe=False, dtype=np.float64)
        within_sum = np.zeros(z_all.shape[1])
        for idx in blocks:
            x = z_all[idx]  # (n_images, n_repeats, n_voxels)
            resid = x - x.mean(axis=1, keepdims=True)
            within_sum += np.einsum("irv,irv->v", resid, resid) / (idx.shape[1] - 1)
        noise_var = within_sum / len(counts)
        signal_var = np.maximum(0.0, 1.0 - noise_var)
        with np.errstate(invalid="ignore", divide="ignore"):
            part = 100.0 * signal_var / (signal_var + noise_var * inv_n)
        # Constant voxels carry no information: 0, not the 100 that zero noise would give.
        part[~np.any(z_all != 0, axis=0) & ~np.isnan(noise_var)] = 0.0
        nc[cols] = part
    return nc
