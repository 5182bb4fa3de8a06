"""Figures on the fsaverage surface: per-hemisphere vertex data, e.g. the noise ceiling.

Pure matplotlib (``mpl_toolkits.mplot3d``, object-oriented API, headless), so
it runs offline on any machine with the ``[templates]`` extra. The mesh comes
from the TemplateFlow home that :mod:`laion_fmri.templates` uses: the
``inflated`` fsaverage surface when it is there, else the ``sphere`` (the
sample dataset ships only spheres). Each face is coloured by the mean of its
vertices; ``NaN`` vertices are grey.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri.plotting import _figure, _save
from laion_fmri.templates._files import FSAVERAGE_DENSITIES, fsaverage_sphere, read_surface

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: (elevation, azimuth) of the lateral and medial views per hemisphere.
_VIEWS = {"L": ((0, 180), (0, 0)), "R": ((0, 0), (0, 180))}


def fsaverage_mesh(density: str, hemi: str, data_dir: str | os.PathLike[str] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, str]:
    """Vertices, faces and kind (``"inflated"`` or ``"sphere"``) of an fsaverage hemisphere.

    Parameters
    ----------
    density : {"fsaverage5", "fsaverage6", "fsaverage7"}
        Mesh.
    hemi : {"L", "R"}
        Hemisphere.
    data_dir : str or os.PathLike, optional
        Data directory that may hold a ``templateflow/`` copy.

    Returns
    -------
    coords : numpy.ndarray
    faces : numpy.ndarray
    kind : str

    Examples
    --------
    >>> coords, faces, kind = fsaverage_mesh("fsaverage5", "L")  # doctest: +SKIP
    """
    sphere = fsaverage_sphere(density, hemi, Path(data_dir) if data_dir is not None else None)
    inflated = sphere.with_name(sphere.name.replace("_sphere.surf.gii", "_inflated.surf.gii"))
    if inflated.is_file():
        coords, faces = read_surface(inflated)
        return coords, faces, "inflated"
    coords, faces = read_surface(sphere)
    return coords, faces, "sphere"


def plot_fsaverage(values: Mapping[str, np.ndarray], *, density: str = "fsaverage5",
                   data_dir: str | os.PathLike[str] | None = None, title: str | None = None,
                   cmap: str = "inferno", vmin: float | None = None, vmax: float | None = None,
                   label: str | None = None, out: str | os.PathLike[str] | None = None) -> Figure:
    """Lateral and medial views of vertex data on both fsaverage hemispheres.

    Parameters
    ----------
    values : dict
        ``{"L": (n_vertices,), "R": (n_vertices,)}`` (one or both hemispheres),
        e.g. the output of :func:`laion_fmri.templates.to_template` for 1-D input.
    density : {"fsaverage5", "fsaverage6", "fsaverage7"}
        The mesh the values live on.
    data_dir : str or os.PathLike, optional
        Data directory that may hold a ``templateflow/`` copy.
    title : str, optional
        Figure title.
    cmap : str
        Matplotlib colormap.
    vmin, vmax : float, optional
        Colour limits (default: 2nd and 98th percentiles).
    label : str, optional
        Colour-bar label.
    out : str or os.PathLike, optional
        Also save as PNG.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For an unknown density or hemisphere, or values that do not fit the mesh.

    Examples
    --------
    >>> fig = plot_fsaverage(to_template(sub, nc, "fsaverage"))  # doctest: +SKIP
    """
    from matplotlib import cm, colors
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    if density not in FSAVERAGE_DENSITIES:
        raise ValueError(f"Unknown fsaverage density {density!r}.")
    hemis = [h for h in ("L", "R") if h in values]
    if not hemis or set(values) - {"L", "R"}:
        raise ValueError("values must be a dict with keys 'L' and/or 'R'.")
    data = {h: np.asarray(values[h], dtype=np.float64).ravel() for h in hemis}
    finite = np.concatenate([d[np.isfinite(d)] for d in data.values()])
    lo = float(np.percentile(finite, 2)) if vmin is None and finite.size else (vmin or 0.0)
    hi = float(np.percentile(finite, 98)) if vmax is None and finite.size else (vmax or 1.0)
    norm = colors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0)
    mapper = cm.ScalarMappable(norm=norm, cmap=cmap)
    fig = _figure(3.2 * 2 * len(hemis), 3.6)
    panel = 0
    for hemi in hemis:
        coords, faces, _ = fsaverage_mesh(density, hemi, data_dir)
        if len(coords) != data[hemi].size:
            raise ValueError(f"{hemi}: {data[hemi].size} values for a {len(coords)}-vertex {density} mesh.")
        face_values = data[hemi][faces].mean(axis=1)
        face_colors = mapper.to_rgba(np.nan_to_num(face_values, nan=lo))
        face_colors[~np.isfinite(face_values)] = (0.6, 0.6, 0.6, 1.0)
        centre = coords.mean(axis=0)
        span = np.abs(coords - centre).max()
        for view, (elev, azim) in zip(("lateral", "medial"), _VIEWS[hemi], strict=True):
            panel += 1
            ax = fig.add_subplot(1, 2 * len(hemis), panel, projection="3d")
            poly = Poly3DCollection(coords[faces], facecolors=face_colors, edgecolors=face_colors,
                                    linewidths=0.2)
            ax.add_collection3d(poly)
            for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre, strict=True):
                setter(c - span, c + span)
            ax.view_init(elev=elev, azim=azim)
            ax.set_box_aspect((1, 1, 1))
            ax.set_axis_off()
            ax.set_title(f"{hemi} {view}", fontsize=9)
    fig.subplots_adjust(left=0.0, right=0.9, bottom=0.02, top=0.85, wspace=0.0)
    cax = fig.add_axes((0.91, 0.15, 0.015, 0.6))
    bar = fig.colorbar(mapper, cax=cax)
    if label:
        bar.set_label(label)
    if title:
        fig.suptitle(title)
    _save(fig, out)
    return fig


def plot_noise_ceiling_on_fsaverage(sub: Any, *, session: str | None = None, desc: str | None = None,
                                    density: str = "fsaverage5", mask_source: str = "anatomical",
                                    out: str | os.PathLike[str] | None = None) -> Figure:
    """The subject's noise ceiling projected to fsaverage (the demo's surface figure).

    Parameters
    ----------
    sub : Subject
        A loaded subject with its FreeSurfer tree.
    session : str, optional
        Per-session noise ceiling; else the subject-level one (``desc``).
    desc : str, optional
        Subject-level noise-ceiling ``desc`` (as :meth:`Subject.get_noise_ceiling`).
    density : {"fsaverage5", "fsaverage6", "fsaverage7"}
        Target mesh.
    mask_source : {"anatomical", "rsquare"}
        Brain mask of the noise-ceiling values.
    out : str or os.PathLike, optional
        Also save as PNG.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> plot_noise_ceiling_on_fsaverage(sub, session="ses-01", mask_source="rsquare",
    ...                                 out="nc_fsaverage.png")  # doctest: +SKIP
    """
    from laion_fmri.templates import to_template

    kwargs: dict[str, Any] = {}
    if session is not None:
        kwargs["session"] = session
    if desc is not None:
        kwargs["desc"] = desc
    nc = sub.get_noise_ceiling(**kwargs, mask_source=mask_source)
    surf = to_template(sub, nc, "fsaverage", fsaverage_density=density, mask_source=mask_source)
    what = session or desc or "noise ceiling"
    return plot_fsaverage(surf, density=density, data_dir=sub.data_dir, label="noise ceiling (%)",
                          title=f"{sub.subject_id} {what} on {density}", out=out)


__all__ = ["fsaverage_mesh", "plot_fsaverage", "plot_noise_ceiling_on_fsaverage"]
