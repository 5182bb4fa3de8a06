"""Figures on the subject's own grid: voxel maps, ROI outlines, single trials.

Pure matplotlib through the object-oriented :class:`matplotlib.figure.Figure`
API (no ``pyplot`` state), so every function works headless (Agg backend)
and inside notebooks alike. Each returns the figure and, given ``out``, also
writes it as PNG. nilearn is not needed.

Slices are axial planes of the ``(x, y, z)`` voxel grid, shown with ``x``
to the right and ``y`` up, at evenly spaced ``z`` planes that contain the
selected voxels.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri import layout
from laion_fmri._docs import fill_doc
from laion_fmri.errors import RoiNotFoundError, StimuliNotDownloadedError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from laion_fmri.subject import Subject

DEFAULT_CMAP = "inferno"
DEFAULT_SLICES = 8
_MAX_COLS = 4
_DPI = 100


def _figure(width: float, height: float, constrained: bool = False) -> Figure:
    from matplotlib.figure import Figure

    # Slice grids use a fixed layout: constrained layout costs seconds on many panels.
    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained" if constrained else None)


def _save(fig: Figure, out: str | os.PathLike[str] | None) -> None:
    if out is not None:
        path = Path(out)
        if path.parent and not path.parent.exists():
            raise FileNotFoundError(f"Cannot save the figure: folder {path.parent} does not exist.")
        fig.savefig(path, format="png", dpi=_DPI)


def _check_slices(n_slices: object) -> int:
    if isinstance(n_slices, bool) or not isinstance(n_slices, (int, np.integer)) or n_slices < 1:
        raise ValueError(f"n_slices must be a positive integer, not {n_slices!r}.")
    return int(n_slices)


def pick_slices(occupied: np.ndarray, n_slices: int) -> list[int]:
    """Evenly spaced plane indices among the planes where ``occupied`` is True.

    Parameters
    ----------
    occupied : numpy.ndarray
        1-D bool, one entry per plane.
    n_slices : int
        Wanted number of planes (fewer if fewer planes are occupied).

    Returns
    -------
    list of int
        Sorted, distinct plane indices (empty if nothing is occupied).

    Examples
    --------
    >>> pick_slices(np.array([0, 1, 1, 1, 1, 0], bool), 2)
    [1, 4]
    """
    planes = np.flatnonzero(occupied)
    if planes.size == 0:
        return []
    picks = np.linspace(0, planes.size - 1, num=min(n_slices, planes.size))
    return sorted({int(planes[round(p)]) for p in picks})


@fill_doc
def back_project(sub: Subject, values: np.ndarray, sel: np.ndarray | None,
                 mask_source: str | None = None) -> np.ndarray:
    """Put per-voxel values back on the subject's grid (NaN outside the selection).

    Parameters
    ----------
    sub : Subject
        The subject.
    values : numpy.ndarray
        ``(n_selected,)`` values in voxel order.
    sel : numpy.ndarray or None
        Boolean selection over brain voxels the values belong to (``None``: all).
    %(mask_source)s

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``sub.grid_shape``.

    Raises
    ------
    ValueError
        If ``values`` is not 1-D with one entry per selected voxel.

    Examples
    --------
    >>> vol = back_project(sub, sub.get_noise_ceiling(session="ses-01"), None)  # doctest: +SKIP
    >>> vol.shape == sub.grid_shape  # doctest: +SKIP
    True
    """
    index = np.flatnonzero(sub.get_brain_mask(source=mask_source))
    if sel is not None:
        index = index[sel]
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size != index.size:
        raise ValueError(
            f"values must be 1-D with one entry per selected voxel ({index.size}), got shape "
            f"{arr.shape}; pass the same roi=/mask= the values were computed with."
        )
    vol = np.full(int(np.prod(sub.grid_shape)), np.nan)
    vol[index] = arr
    return vol.reshape(sub.grid_shape)


def _background(sub: Subject, mask_source: str | None = None) -> np.ndarray:
    """Mean R2 map for anatomy-like context; the brain mask when R2mean is absent."""
    from laion_fmri import _nifti as nifti

    brain = sub.get_brain_mask(source=mask_source).reshape(sub.grid_shape).astype(np.float64)
    path = layout.local_path(sub.data_dir, layout.r2mean_key(sub.subject_id))
    if not path.is_file():
        return brain
    data, _ = nifti.read_volume(path)
    data = np.nan_to_num(np.asarray(data, dtype=np.float64))
    return data if data.shape == brain.shape else brain


def _grid(fig: Figure, n: int, right: float) -> list[Any]:
    """``n`` slice panels filling the figure left of ``right`` (figure fraction)."""
    ncols = min(n, _MAX_COLS)
    nrows = int(np.ceil(n / ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.01, right=right, bottom=0.02, top=0.88, wspace=0.05, hspace=0.2)
    for ax in axes.ravel():
        ax.set_axis_off()
    return list(axes.ravel()[:n])


@fill_doc
def plot_map(
    sub: Subject,
    values: np.ndarray,
    roi: str | Sequence[str] | None = None,
    mask: np.ndarray | None = None,
    title: str | None = None,
    cmap: str = DEFAULT_CMAP,
    n_slices: int = DEFAULT_SLICES,
    vmin: float | None = None,
    vmax: float | None = None,
    outline: str | Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    mask_source: str | None = None,
) -> Figure:
    """Axial slices of a per-voxel map (noise ceiling, R2, model scores) on the subject's grid.

    Parameters
    ----------
    sub : Subject
        The subject whose grid the values live on.
    values : numpy.ndarray
        ``(n_selected,)`` one value per selected voxel, in voxel order
        (e.g. ``sub.get_noise_ceiling(session="ses-01", roi="face")``).
    roi, mask : optional
        The selection ``values`` belongs to (whole brain by default).
    title : str, optional
        Figure title.
    cmap : str
        Matplotlib colormap name.
    n_slices : int
        Number of axial planes (evenly spaced over the planes with data).
    vmin, vmax : float, optional
        Colour limits (default: finite minimum and maximum of ``values``).
    outline : str or list of str, optional
        ROI query (name, category, ``"all"`` or a list) drawn as a white
        contour over the map, e.g. ``outline="face"``.
    %(out_png)s
    %(mask_source)s

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        Wrong ``values`` length, ``roi`` with ``mask``, bad ``n_slices``.
    RoiNotFoundError
        Unknown ROI.

    Examples
    --------
    >>> nc = sub.get_noise_ceiling(desc="Noiseceiling12rep")  # doctest: +SKIP
    >>> fig = plot_map(sub, nc, title="NC 12rep (%)", out="nc.png")  # doctest: +SKIP
    """
    n_slices = _check_slices(n_slices)
    sel = sub.voxel_selection(roi, mask, mask_source=mask_source)
    vol = back_project(sub, values, sel, mask_source)
    finite = np.isfinite(vol)
    lo = float(np.nanmin(vol[finite])) if vmin is None and finite.any() else vmin
    hi = float(np.nanmax(vol[finite])) if vmax is None and finite.any() else vmax
    if lo is not None and hi is not None and lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    placed = ~np.isnan(vol)
    planes = pick_slices(placed.any(axis=(0, 1)), n_slices) or [sub.grid_shape[2] // 2]
    bg = _background(sub, mask_source)
    contour = None
    if outline is not None:
        contour = np.zeros(int(np.prod(sub.grid_shape)), dtype=bool)
        brain_index = np.flatnonzero(sub.get_brain_mask(source=mask_source))
        contour[brain_index[sub.get_roi_mask(outline, mask_source=mask_source)]] = True
        contour = contour.reshape(sub.grid_shape)

    ncols = min(len(planes), _MAX_COLS)
    nrows = int(np.ceil(len(planes) / ncols))
    width = 2.4 * ncols + 1.4
    fig = _figure(width, 2.4 * nrows + 0.5)
    axes = _grid(fig, len(planes), right=1 - 1.4 / width)
    image = None
    for ax, k in zip(axes, planes, strict=False):
        ax.imshow(bg[:, :, k].T, origin="lower", cmap="gray", interpolation="nearest")
        layer = np.ma.masked_invalid(vol[:, :, k].T)
        image = ax.imshow(
            layer, origin="lower", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest"
        )
        if contour is not None and contour[:, :, k].any():
            ax.contour(contour[:, :, k].T.astype(float), levels=[0.5], colors=["white"],
                       linewidths=1.0)
        ax.set_title(f"z = {k}", fontsize=8)
    if image is not None:
        cax = fig.add_axes((1 - 1.15 / width, 0.15, 0.15 / width, 0.65))
        fig.colorbar(image, cax=cax)
    if title:
        fig.suptitle(title)
    _save(fig, out)
    return fig


@fill_doc
def plot_rois(
    sub: Subject,
    category: str | None = None,
    n_slices: int = DEFAULT_SLICES,
    out: str | os.PathLike[str] | None = None,
    mask_source: str | None = None,
) -> Figure:
    """ROI fills and outlines over the mean-R2 map, one colour per ROI.

    Parameters
    ----------
    sub : Subject
        The subject.
    category : str, optional
        Only this category's ROIs (e.g. ``"face"``); default all ROIs on disk.
    n_slices : int
        Number of axial planes (evenly spaced over planes with ROI voxels).
    %(out_png)s
    %(mask_source)s

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    RoiNotFoundError
        Unknown category, or no ROI files on disk.

    Examples
    --------
    >>> fig = plot_rois(sub, category="face", out="face_rois.png")  # doctest: +SKIP
    """
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    n_slices = _check_slices(n_slices)
    names = sub.get_available_rois(category=category)
    if not names:
        raise RoiNotFoundError(
            f"No ROI masks of {sub.subject_id} are on disk in {sub.data_dir}. Download them with "
            f'`laion_fmri.download.download(subject="{sub.subject_id}")`.'
        )
    masks = sub.get_roi_data(names, format="volume", mask_source=mask_source)
    brain_index = np.flatnonzero(sub.get_brain_mask(source=mask_source))
    labels = np.zeros(int(np.prod(sub.grid_shape)), dtype=np.int16)
    for code, name in enumerate(names, start=1):
        labels[brain_index[masks[name]]] = code
    labels = labels.reshape(sub.grid_shape)
    palette = colormaps["tab20"](np.linspace(0, 1, 20))
    colors = [palette[(2 * c) % 20 + (2 * c) // 20 % 2] for c in range(len(names))]
    planes = pick_slices((labels > 0).any(axis=(0, 1)), n_slices) or [sub.grid_shape[2] // 2]
    bg = _background(sub, mask_source)

    ncols = min(len(planes), _MAX_COLS)
    nrows = int(np.ceil(len(planes) / ncols))
    width = 2.4 * ncols + 1.6
    fig = _figure(width, 2.4 * nrows + 0.5)
    axes = _grid(fig, len(planes), right=1 - 1.6 / width)
    fill = ListedColormap(colors)
    for ax, k in zip(axes, planes, strict=False):
        plane = labels[:, :, k].T
        ax.imshow(bg[:, :, k].T, origin="lower", cmap="gray", interpolation="nearest")
        ax.imshow(
            np.ma.masked_equal(plane, 0) - 1, origin="lower", cmap=fill, vmin=0,
            vmax=max(len(names) - 1, 1), alpha=0.55, interpolation="nearest",
        )
        for code, color in enumerate(colors, start=1):
            inside = plane == code
            if inside.any() and not inside.all():
                ax.contour(inside.astype(float), levels=[0.5], colors=[color], linewidths=1.0)
        ax.set_title(f"z = {k}", fontsize=8)
    handles = [Patch(facecolor=c, edgecolor=c, label=n) for n, c in zip(names, colors, strict=True)]
    fig.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    what = f"{category} ROIs" if category else "ROIs"
    fig.suptitle(f"{sub.subject_id}: {what}")
    _save(fig, out)
    return fig


def _trial_row(sub: Subject, i: object) -> Any:
    meta = sub.metadata
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"Trials are looked up by global trial index (int), not {type(i).__name__}.")
    if not 0 <= int(i) < len(meta):
        raise IndexError(
            f"Trial index {i} is out of range: {sub.subject_id} has {len(meta)} trials "
            f"(rows 0..{len(meta) - 1} of sub.metadata)."
        )
    return meta.iloc[int(i)]


@fill_doc
def plot_trial(
    sub: Subject,
    i: int,
    roi: str | Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    mask_source: str | None = None,
) -> Figure:
    """One trial: its image, the image's captions, and its betas per ROI.

    Parameters
    ----------
    sub : Subject
        The subject.
    i : int
        Global trial index (row of ``sub.metadata``).
    roi : str or list of str, optional
        ROI query (name, category, ``"all"`` or list); every ROI it names gets
        one strip of voxel betas with its mean. Default: the whole brain mask.
    %(out_png)s
    %(mask_source)s

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    IndexError, TypeError
        ``i`` is not a trial index of the subject.
    RoiNotFoundError
        Unknown ROI.

    Notes
    -----
    Missing stimulus files do not fail the figure: the image panel (raw
    images need the data-use agreement) or the caption list then says which
    download call provides them.

    Examples
    --------
    >>> fig = plot_trial(sub, 42, roi="face", out="trial42.png")  # doctest: +SKIP
    """
    row = _trial_row(sub, i)
    session, k = str(row["session"]), int(row["session_trial"])
    name = str(row["image_name"])
    whole = np.asarray(sub.get_betas(session, mask_source=mask_source)[k], dtype=np.float64)
    groups = {"brain": whole} if roi is None else {
        r: whole[m]
        for r, m in sub.get_roi_data(roi, format="volume", mask_source=mask_source).items()
    }

    fig = _figure(11.0, 3.8, constrained=True)
    ax_img, ax_txt, ax_b = fig.subplots(1, 3, width_ratios=[1.0, 1.1, 1.4])
    ax_img.set_axis_off()
    try:
        ax_img.imshow(np.asarray(sub.images.get(int(i)).convert("RGB")))
    except StimuliNotDownloadedError:
        ax_img.text(0.5, 0.5, "image not downloaded\n(laion_fmri.download.download_stimuli())",
                    ha="center", va="center", fontsize=8, wrap=True)
    ax_img.set_title(textwrap.shorten(name, 48), fontsize=8)

    ax_txt.set_axis_off()
    try:
        lines = [f"- {c}" for c in sub.captions.human(int(i), limit=3)]
        ai = sub.captions.ai(int(i))
        if ai:
            lines.append(f"AI: {ai}")
    except StimuliNotDownloadedError:
        lines = ["captions not downloaded", "(laion_fmri.download.download_captions())"]
    text = "\n".join(textwrap.fill(s, 42) for s in lines) or "(no captions)"
    ax_txt.text(0.0, 1.0, text, ha="left", va="top", fontsize=8, transform=ax_txt.transAxes)
    ax_txt.set_title("captions", fontsize=9)

    rng = np.random.default_rng(int(i))
    for pos, (_label, vals) in enumerate(groups.items()):
        vals = vals[np.isfinite(vals)]
        jitter = rng.uniform(-0.25, 0.25, vals.size)
        ax_b.scatter(pos + jitter, vals, s=4, alpha=0.5)
        if vals.size:
            ax_b.hlines(vals.mean(), pos - 0.35, pos + 0.35, colors="k", linewidth=2)
    ax_b.axhline(0.0, color="0.6", linewidth=0.8)
    ax_b.set_xticks(range(len(groups)), list(groups), rotation=45, ha="right", fontsize=8)
    ax_b.set_ylabel("beta")
    ax_b.set_title("betas per voxel (bar = mean)", fontsize=9)
    fig.suptitle(
        f"{sub.subject_id} trial {int(i)} - {session} run {row['run']} trial {k} "
        f"({row['unique_or_shared']}, {row['dataset']})",
        fontsize=10,
    )
    _save(fig, out)
    return fig


__all__ = ["back_project", "pick_slices", "plot_map", "plot_rois", "plot_trial"]
