"""The reference chain, literally: scatter to a volume, ``vol_to_surf``, ``SurfaceResampler``.

This is what the reference release runs on every call (DATASET.md 9.5). It is
kept as ``route="reference"`` to cross-check the matrix route and as the
baseline of ``benchmarks/bench_templates.py``; it needs nilearn and
nitransforms and holds the whole (4-D) volume in memory.
"""

from __future__ import annotations

import numpy as np

from laion_fmri.templates._deps import require
from laion_fmri.templates._files import read_sphere, read_surface


def scatter(rows: np.ndarray, columns: np.ndarray, grid_shape: tuple[int, int, int]) -> np.ndarray:
    """``(X, Y, Z[, n])`` float32 volume with ``rows`` at ``columns``, 0 elsewhere.

    Parameters
    ----------
    rows : numpy.ndarray
        ``(n_columns,)`` or ``(n, n_columns)``.
    columns : numpy.ndarray
        Flat grid index of each column.
    grid_shape : tuple of int
        Volume shape.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> import numpy as np
    >>> scatter(np.array([1.0, 2.0]), np.array([0, 7]), (2, 2, 2)).ravel().tolist()
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]
    """
    arr = np.asarray(rows, dtype=np.float32)
    flat = np.zeros((arr.reshape(-1, arr.shape[-1]).shape[0], int(np.prod(grid_shape))), np.float32)
    flat[:, columns] = arr.reshape(-1, arr.shape[-1])
    vol = flat.reshape((-1, *grid_shape))
    return vol[0] if arr.ndim == 1 else np.moveaxis(vol, 0, -1)


def vol_to_template(img: object, surface: str, sphere: str, template: str,
                    interpolation: str = "linear") -> np.ndarray:
    """``vol_to_surf`` on the surface, then ``SurfaceResampler`` sphere.reg -> template sphere.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        3-D or 4-D volume on the betas grid.
    surface, sphere, template : str or Path
        FreeSurfer surface (``cras`` applied), its ``sphere.reg`` and the
        template sphere.
    interpolation : {"linear", "nearest"}
        ``"nearest"`` uses nilearn's nearest-voxel sampling.

    Returns
    -------
    numpy.ndarray
        ``(n_template_vertices,)`` or ``(n_volumes, n_template_vertices)``.
    """
    from pathlib import Path

    require("nilearn", "nitransforms")
    from nilearn.surface import InMemoryMesh, vol_to_surf
    from nitransforms.base import SurfaceMesh
    from nitransforms.surface import SurfaceResampler

    coords, faces = read_surface(Path(surface))
    mesh = InMemoryMesh(coords, faces)
    if interpolation == "linear":
        texture = vol_to_surf(img, mesh)
    else:
        from nilearn.surface.surface import _nearest_voxel_sampling

        data = np.asarray(img.dataobj)  # type: ignore[attr-defined]
        frames = data[None] if data.ndim == 3 else np.moveaxis(data, -1, 0)
        texture = _nearest_voxel_sampling(frames, mesh, img.affine).T  # type: ignore[attr-defined]
        texture = texture[:, 0] if data.ndim == 3 else texture
    sph, sph_faces = read_sphere(Path(sphere))
    tpl, tpl_faces = read_sphere(Path(template))
    resampler = SurfaceResampler(SurfaceMesh.from_arrays(tpl, tpl_faces),
                                 SurfaceMesh.from_arrays(sph, sph_faces))
    return np.asarray(resampler.apply(np.asarray(texture).T))


def lta_to_mni(img: object, lta: str, reference: object) -> object:
    """nitransforms' nearest-neighbour resampling of one volume through an LTA.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        3-D volume.
    lta : str or Path
        ``talairach.lta``.
    reference : nibabel.Nifti1Image
        Target grid.

    Returns
    -------
    nibabel.Nifti1Image
    """
    require("nitransforms")
    import nitransforms as nt

    xfm = nt.linear.load(str(lta), fmt="lta")
    return nt.resampling.apply(xfm, img, reference=reference, order=0)


__all__ = [
    "lta_to_mni",
    "scatter",
    "vol_to_template",
]
