"""Public template-space functions: ``to_template`` and its three building blocks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from laion_fmri import vocab
from laion_fmri.templates import _mni, _project
from laion_fmri.templates._deps import require
from laion_fmri.templates._files import (
    FSAVERAGE_DENSITIES,
    HEMIS,
    SURFACES,
    freesurfer_dir,
    fsaverage_sphere,
    read_lta,
    read_sphere,
    require_file,
)
from laion_fmri.templates._resample import resampling_matrix

MASK_SOURCES = vocab.MASK_SOURCES
ROUTES = ("auto", "matrix", "reference")
INTERPOLATIONS = ("linear", "nearest")


# --------------------------------------------------------------------------- subject access
def _brain_mask(subject: Any, mask_source: str) -> np.ndarray:
    """Flat bool brain mask of ``subject`` for ``mask_source`` (the only mask access here)."""
    if mask_source not in MASK_SOURCES:
        raise ValueError(f"mask_source must be one of {MASK_SOURCES}, not {mask_source!r}.")
    return np.asarray(subject.get_brain_mask(source=mask_source), dtype=bool).ravel()


def _cache_dir(subject: Any) -> Path:
    from laion_fmri._cache import cache_root

    return cache_root(subject.data_dir) / "templates" / subject.subject_id


# --------------------------------------------------------------------------- inputs
class _NiftiRows:
    """A 3-D/4-D NIfTI on the betas grid whose volumes are the rows (C-order flat voxels)."""

    def __init__(self, path: Path, img: Any) -> None:
        self.path = path
        self.img = img
        shape = tuple(int(s) for s in img.shape)
        self.grid_shape = shape[:3]
        self.shape = (1 if len(shape) == 3 else shape[3], int(np.prod(shape[:3])))

    def read_columns(self, grid_indices: np.ndarray) -> np.ndarray:
        """``(n_volumes, len(grid_indices))`` float32: one streaming pass over the file."""
        from laion_fmri import _nifti as nifti

        offsets = nifti.gather_offsets(np.asarray(grid_indices, dtype=np.int64), self.grid_shape)
        return nifti.read_masked(self.path, offsets)


def _prepare(subject: Any, values: Any, mask_source: str) -> tuple[Any, np.ndarray | None, bool]:
    """Values as a row-sliceable 2-D object, their columns' grid indices, and whether 1-D."""
    if isinstance(values, (str, os.PathLike)):
        import nibabel as nib

        img = nib.load(str(values))
        shape = tuple(int(s) for s in img.shape)
        if shape[:3] != tuple(subject.grid_shape) or not np.allclose(img.affine, subject.affine,
                                                                      atol=1e-3):
            raise ValueError(
                f"{values} is not on the betas grid of {subject.subject_id} (shape {shape[:3]} vs "
                f"{tuple(subject.grid_shape)}, or a different affine); resample it to that grid first."
            )
        if len(shape) not in (3, 4):
            raise ValueError(f"{values} must be a 3-D or 4-D image, not {len(shape)}-D.")
        return _NiftiRows(Path(values), img), None, len(shape) == 3
    mask = _brain_mask(subject, mask_source)
    columns = np.flatnonzero(mask)
    ndim = len(getattr(values, "shape", ()))
    if ndim not in (1, 2):
        values = np.asarray(values)
        ndim = values.ndim
    if ndim not in (1, 2) or values.shape[-1] != columns.size:
        raise ValueError(
            f"values must be (n_voxels,) or (n_samples, n_voxels) over the {mask_source!r} brain "
            f"mask ({columns.size} voxels), a dask array of that shape, or a NIfTI path; got shape "
            f"{getattr(values, 'shape', None)}."
        )
    if ndim == 1:
        values = values[None, :]
    return values, columns, ndim == 1


def _hemis(hemi: str | None) -> list[str]:
    if hemi is None:
        return list(HEMIS)
    key = {"l": "L", "left": "L", "lh": "L", "r": "R", "right": "R", "rh": "R"}.get(str(hemi).lower())
    if key is None:
        raise ValueError(f"hemi must be 'L', 'R' or None (both), not {hemi!r}.")
    return [key]


def _density(target: str, fsaverage_density: str) -> str:
    density = fsaverage_density if target == "fsaverage" else target
    if density not in FSAVERAGE_DENSITIES:
        raise ValueError(
            f"Unknown fsaverage density {density!r}; use fsaverage5, fsaverage6 or fsaverage7."
        )
    return density


def _check(route: str, interpolation: str, surface: str) -> None:
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, not {route!r}.")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {interpolation!r}.")
    if surface not in SURFACES:
        raise ValueError(f"surface must be one of {SURFACES}, not {surface!r}.")


def _surface_path(fs_dir: Path, hemi: str, surface: str) -> Path:
    return require_file(fs_dir / "surf" / f"{HEMIS[hemi]}.{surface}",
                        f"The {HEMIS[hemi]}.{surface} surface")


def _geometries(subject: Any, hemis: list[str], surface: str, density: str | None,
                interpolation: str, columns: np.ndarray | None) -> list[_project.Geometry]:
    fs_dir = freesurfer_dir(subject)
    out = []
    for h in hemis:
        sphere = require_file(fs_dir / "surf" / f"{HEMIS[h]}.sphere.reg", f"{HEMIS[h]}.sphere.reg")
        template = fsaverage_sphere(density, h, Path(subject.data_dir)) if density else None
        out.append(_project.Geometry(
            surface=_surface_path(fs_dir, h, surface), sphere=sphere, template=template,
            affine=np.asarray(subject.affine, dtype=np.float64),
            grid_shape=tuple(int(s) for s in subject.grid_shape), columns=columns,
            interpolation=interpolation))
    return out


# --------------------------------------------------------------------------- projections
def projection_matrices(subject: Any, *, hemi: str | None = None, surface: str = "white",
                        fsaverage_density: str = "fsaverage5", interpolation: str = "linear",
                        mask_source: str = "anatomical") -> dict[str, Any]:
    """The cached composed matrices ``(n_fsaverage_vertices, n_brain_voxels)`` per hemisphere.

    Built on first use (sampling weights of ``vol_to_surf`` times the
    ``SurfaceResampler`` weights), then loaded from
    ``<cache>/templates/<sub>/*.npz``. ``betas @ M.T`` gives the vertex data
    (``NaN`` rows aside, see :func:`to_template`).

    Parameters
    ----------
    subject : Subject
        A loaded subject with its FreeSurfer tree downloaded.
    hemi : {"L", "R"} or None
        One hemisphere, or both.
    surface : {"white", "pial", "midthickness"}
        The surface sampled.
    fsaverage_density : {"fsaverage5", "fsaverage6", "fsaverage7"}
        Target mesh.
    interpolation : {"linear", "nearest"}
        Sampling of the volume.
    mask_source : {"anatomical", "rsquare"}
        Brain mask the columns follow.

    Returns
    -------
    dict
        ``{"L": scipy.sparse.csr_array, "R": ...}`` (float32).

    Examples
    --------
    >>> mats = projection_matrices(sub, mask_source="rsquare")  # doctest: +SKIP
    >>> mats["L"].shape  # doctest: +SKIP
    (10242, 61234)
    """
    require("scipy")
    _check("matrix", interpolation, surface)
    columns = np.flatnonzero(_brain_mask(subject, mask_source))
    geoms = _geometries(subject, _hemis(hemi), surface, _density("fsaverage", fsaverage_density),
                        interpolation, columns)
    return {h: _project.load_or_build(g, _cache_dir(subject))[0].matrix
            for h, g in zip(_hemis(hemi), geoms, strict=True)}


def _project_surface(subject: Any, values: Any, hemis: list[str], surface: str, density: str | None,
                     interpolation: str, mask_source: str, route: str,
                     selection: np.ndarray | None = None) -> dict[str, np.ndarray]:
    rows, columns, one_d = _prepare(subject, values, mask_source) if selection is None else \
        _prepare_selection(subject, values, mask_source, selection)
    grid_size = int(np.prod(subject.grid_shape))
    geoms = _geometries(subject, hemis, surface, density, interpolation,
                        columns if selection is None else _brain_columns(subject, mask_source))
    if route == "reference":
        outs = _reference_route(subject, rows, columns, geoms)
    else:
        projections = [_project.load_or_build(g, _cache_dir(subject))[0] for g in geoms]
        if isinstance(rows, _NiftiRows):
            # Read only the voxels the surfaces sample, in one pass over the file.
            columns = np.unique(np.concatenate([p.matrix.indices for p in projections]))
            rows = rows.read_columns(columns)
            selection = columns
        if selection is not None:
            projections = [_project.Projection(_select_columns(p.matrix, selection), p.empty_rows)
                           for p in projections]
            geoms = [_with_columns(g, columns) for g in geoms]
        outs = _project.apply(projections, rows, rebuild=geoms, columns_to_grid=columns,
                              grid_size=grid_size)
    return {h: (o[0] if one_d else o) for h, o in zip(hemis, outs, strict=True)}


def _brain_columns(subject: Any, mask_source: str) -> np.ndarray:
    return np.flatnonzero(_brain_mask(subject, mask_source))


def _prepare_selection(subject: Any, values: Any, mask_source: str,
                       selection: np.ndarray) -> tuple[Any, np.ndarray, bool]:
    brain = _brain_columns(subject, mask_source)
    columns = brain[selection]
    ndim = len(getattr(values, "shape", ()))
    if ndim not in (1, 2) or values.shape[-1] != columns.size:
        raise ValueError(f"values must have {columns.size} columns (the selection), got "
                         f"{getattr(values, 'shape', None)}.")
    return (values[None, :] if ndim == 1 else values), columns, ndim == 1


def _select_columns(matrix: Any, selection: np.ndarray) -> Any:
    from scipy import sparse

    return sparse.csr_array(matrix[:, selection])


def _with_columns(geometry: _project.Geometry, columns: np.ndarray) -> _project.Geometry:
    from dataclasses import replace

    return replace(geometry, columns=columns)


def _reference_route(subject: Any, rows: Any, columns: np.ndarray | None,
                     geoms: list[_project.Geometry]) -> list[np.ndarray]:
    """Scatter everything into one (4-D) volume, then nilearn + nitransforms (the reference)."""
    import nibabel as nib

    from laion_fmri.templates import _reference

    if isinstance(rows, _NiftiRows):
        img = rows.img
        n_rows = rows.shape[0]
    else:
        block = np.asarray(rows[0:rows.shape[0]], dtype=np.float32)
        img = nib.Nifti1Image(_reference.scatter(block, columns, tuple(subject.grid_shape)),
                              np.asarray(subject.affine))
        n_rows = block.shape[0]
    outs = []
    for g in geoms:
        if g.template is None:
            raise ValueError("route='reference' projects to a template; use route='matrix' here.")
        out = _reference.vol_to_template(img, str(g.surface), str(g.sphere), str(g.template),
                                         g.interpolation)
        outs.append(np.asarray(out, dtype=np.float32).reshape(n_rows, -1))
    return outs


def volume_to_surface(subject: Any, values: Any, *, hemi: str | None = None, surface: str = "white",
                      interpolation: str = "linear", mask_source: str = "anatomical",
                      ) -> dict[str, np.ndarray]:
    """T1w-grid values -> the subject's own surface (fsnative), like ``vol_to_surf``.

    Parameters
    ----------
    subject : Subject
        A loaded subject with its FreeSurfer tree.
    values : array-like or str or os.PathLike
        ``(n_voxels,)`` or ``(n_samples, n_voxels)`` over the brain mask (NumPy
        or dask), or a NIfTI path on the betas grid.
    hemi : {"L", "R"} or None
        One hemisphere, or both.
    surface : {"white", "pial", "midthickness"}
        ``surf/<h>.<surface>`` is sampled along its normals (+-3 mm).
    interpolation : {"linear", "nearest"}
        Trilinear (default) or nearest-voxel sampling.
    mask_source : {"anatomical", "rsquare"}
        Brain mask the columns of ``values`` follow.

    Returns
    -------
    dict
        ``{"L": ..., "R": ...}`` (requested hemispheres), float32 ``(n_vertices,)``
        or ``(n_samples, n_vertices)``; ``NaN`` where no sample lies in the image.

    Examples
    --------
    >>> native = volume_to_surface(sub, sub.get_noise_ceiling(), mask_source="rsquare")  # doctest: +SKIP
    """
    require("scipy")
    _check("matrix", interpolation, surface)
    return _project_surface(subject, values, _hemis(hemi), surface, None, interpolation,
                            mask_source, "matrix")


def surface_to_template(subject: Any, values: Mapping[str, Any] | Any, *, hemi: str | None = None,
                        fsaverage_density: str = "fsaverage5") -> dict[str, np.ndarray]:
    """fsnative vertex data -> fsaverage, with ``SurfaceResampler``'s barycentric weights.

    Parameters
    ----------
    subject : Subject
        A loaded subject with ``surf/<h>.sphere.reg``.
    values : dict or array-like
        ``{"L": (..., n_fsnative_L), "R": ...}``, or one array when ``hemi`` is given.
    hemi : {"L", "R"} or None
        Needed when ``values`` is a single array.
    fsaverage_density : {"fsaverage5", "fsaverage6", "fsaverage7"}
        Target mesh.

    Returns
    -------
    dict
        ``{"L": ..., "R": ...}`` float32 ``(..., n_fsaverage_vertices)``.

    Raises
    ------
    ValueError
        If an array is given without ``hemi`` or its length does not match the surface.

    Examples
    --------
    >>> fsavg = surface_to_template(sub, volume_to_surface(sub, nc))  # doctest: +SKIP
    """
    require("scipy")
    if not isinstance(values, Mapping):
        if hemi is None:
            raise ValueError("Pass values as {'L': ..., 'R': ...}, or give hemi= for a single array.")
        values = {_hemis(hemi)[0]: values}
    density = _density("fsaverage", fsaverage_density)
    fs_dir = freesurfer_dir(subject)
    out = {}
    for key, data in values.items():
        h = _hemis(key)[0]
        sphere, faces = read_sphere(require_file(fs_dir / "surf" / f"{HEMIS[h]}.sphere.reg",
                                                 f"{HEMIS[h]}.sphere.reg"))
        template, _ = read_sphere(fsaverage_sphere(density, h, Path(subject.data_dir)))
        arr = np.asarray(data, dtype=np.float32)
        if arr.shape[-1] != len(sphere):
            raise ValueError(f"{h} values have {arr.shape[-1]} vertices; {HEMIS[h]}.sphere.reg has "
                             f"{len(sphere)}.")
        mat = resampling_matrix(template, sphere, faces).astype(np.float32)
        res = mat @ arr.reshape(-1, arr.shape[-1]).T
        out[h] = (res.T[0] if arr.ndim == 1 else res.T).astype(np.float32)
    return out


def volume_to_template(subject: Any, values: Any, target: str = "MNI305", *,
                       mask_source: str = "anatomical") -> Any:
    """T1w-grid values -> MNI305 through ``mri/transforms/talairach.lta`` (nearest neighbour).

    The output grid is 2 mm isotropic, 91 x 109 x 91 (``templates.MNI305_AFFINE``).

    Parameters
    ----------
    subject : Subject
        A loaded subject with its FreeSurfer tree.
    values : array-like or str or os.PathLike
        As for :func:`volume_to_surface`.
    target : {"MNI305"}
        Template space.
    mask_source : {"anatomical", "rsquare"}
        Brain mask the columns of ``values`` follow.

    Returns
    -------
    nibabel.Nifti1Image
        float32, 3-D for one sample, 4-D ``(..., n_samples)`` otherwise.

    Raises
    ------
    ValueError
        For a target other than MNI305.

    Examples
    --------
    >>> img = volume_to_template(sub, sub.get_noise_ceiling(), mask_source="rsquare")  # doctest: +SKIP
    """
    import nibabel as nib

    if target != "MNI305":
        raise ValueError(f"volume_to_template supports target='MNI305', not {target!r}.")
    rows, columns, one_d = _prepare(subject, values, mask_source)
    lta = require_file(freesurfer_dir(subject) / "mri" / "transforms" / "talairach.lta",
                       "mri/transforms/talairach.lta")
    mapping = _mni.index_map(read_lta(lta), np.asarray(subject.affine),
                             tuple(int(s) for s in subject.grid_shape), columns)
    if isinstance(rows, _NiftiRows):  # read only the voxels the output copies
        needed, mapping[mapping >= 0] = np.unique(mapping[mapping >= 0], return_inverse=True)
        rows = rows.read_columns(needed)
    n = int(rows.shape[0])
    data = np.empty((*_mni.MNI305_SHAPE, n), dtype=np.float32)
    for start, block in _project.iter_row_blocks(rows, _project.DEFAULT_CHUNK):
        gathered = _mni.gather(block, mapping)
        data[..., start:start + len(block)] = np.moveaxis(
            gathered.reshape((len(block), *_mni.MNI305_SHAPE)), 0, -1)
    img = nib.Nifti1Image(data[..., 0] if one_d else data, _mni.MNI305_AFFINE)
    img.header.set_xyzt_units("mm")
    return img


def to_template(subject: Any, values: Any, target: str, *, hemi: str | None = None,
                route: str = "auto", surface: str = "white", fsaverage_density: str = "fsaverage5",
                interpolation: str = "linear", output_dir: str | os.PathLike[str] | None = None,
                desc: str | None = None, session: str | None = None,
                mask_source: str = "anatomical") -> dict[str, np.ndarray] | Any:
    """Project T1w-grid values to fsaverage (per hemisphere) or MNI305.

    fsaverage: the same numbers as the reference chain (``nilearn.surface.vol_to_surf``
    on ``surf/<h>.<surface>``, then ``nitransforms`` ``SurfaceResampler`` from
    ``surf/<h>.sphere.reg`` to TemplateFlow's fsaverage sphere), computed as one
    cached sparse matrix product over the brain voxels: the 4-D volume is
    never built and the geometry work happens once per subject and setting.

    Parameters
    ----------
    subject : Subject
        A loaded subject with its FreeSurfer tree (``derivatives/freesurfer/<sub>``).
    values : array-like or str or os.PathLike
        ``(n_voxels,)`` or ``(n_samples, n_voxels)`` over the brain mask (NumPy
        or dask, read a block of rows at a time), or a NIfTI path on the betas grid.
    target : {"fsaverage", "fsaverage5", "fsaverage6", "fsaverage7", "MNI305"}
        Template. ``"fsaverage"`` uses ``fsaverage_density``.
    hemi : {"L", "R"} or None
        One hemisphere, or both (surface targets).
    route : {"auto", "matrix", "reference"}
        ``"auto"``/``"matrix"``: the cached matrix; ``"reference"``: the
        reference chain itself (slow, builds the volume; for cross-checks).
    surface : {"white", "pial", "midthickness"}
        Surface sampled.
    fsaverage_density : {"fsaverage5", "fsaverage6", "fsaverage7"}
        Target mesh for ``target="fsaverage"``.
    interpolation : {"linear", "nearest"}
        Volume sampling.
    output_dir : str or os.PathLike, optional
        Also write BIDS-named files there (GIFTI per hemisphere, or NIfTI).
    desc : str, optional
        ``desc-`` entity of the written files.
    session : str, optional
        ``ses-`` entity of the written files.
    mask_source : {"anatomical", "rsquare"}
        Brain mask the columns of ``values`` follow.

    Returns
    -------
    dict or nibabel.Nifti1Image
        fsaverage: ``{"L": ..., "R": ...}`` (requested hemispheres), float32
        ``(n_vertices,)`` for 1-D input, ``(n_samples, n_vertices)`` for 2-D;
        ``NaN`` where the reference gives ``NaN``. MNI305: a NIfTI image.

    Raises
    ------
    ValueError
        For an unknown target, hemisphere, density, route, interpolation or
        mask source, or values that do not fit the mask.
    MissingDependencyError
        Without the ``[templates]`` extra.
    DataNotDownloadedError
        If the FreeSurfer files or the fsaverage sphere are missing.

    Examples
    --------
    >>> fsavg = to_template(sub, sub.get_noise_ceiling(), "fsaverage")  # doctest: +SKIP
    >>> fsavg["L"].shape  # doctest: +SKIP
    (10242,)
    """
    return _to_template(subject, values, target, hemi=hemi, route=route, surface=surface,
                        fsaverage_density=fsaverage_density, interpolation=interpolation,
                        output_dir=output_dir, desc=desc, session=session, mask_source=mask_source)


def _to_template(subject: Any, values: Any, target: str, *, hemi: str | None = None,
                 route: str = "auto", surface: str = "white", fsaverage_density: str = "fsaverage5",
                 interpolation: str = "linear", output_dir: str | os.PathLike[str] | None = None,
                 desc: str | None = None, session: str | None = None,
                 mask_source: str = "anatomical", selection: np.ndarray | None = None) -> Any:
    """:func:`to_template` plus ``selection``: ``values`` columns are ``brain[selection]``."""
    require("scipy")
    if target == "MNI305":
        if selection is not None:
            raise ValueError("MNI305 output for a voxel selection is not supported; pass whole-brain values.")
        img = volume_to_template(subject, values, target, mask_source=mask_source)
        if output_dir is not None:
            from laion_fmri.templates._outputs import write_volume

            write_volume(img, Path(output_dir), subject.subject_id, session, desc)
        return img
    if not str(target).startswith("fsaverage"):
        raise ValueError(f"target must be 'fsaverage', 'fsaverage5/6/7' or 'MNI305', not {target!r}.")
    _check(route, interpolation, surface)
    density = _density(target, fsaverage_density)
    out = _project_surface(subject, values, _hemis(hemi), surface, density, interpolation,
                           mask_source, route, selection=selection)
    if output_dir is not None:
        from laion_fmri.templates._outputs import write_surfaces

        write_surfaces(out, Path(output_dir), subject.subject_id, density, session, desc)
    return out


def project_betas(subject: Any, betas: Any, space: str, *, hemi: str | None = None,
                  selection: np.ndarray | None = None, mask_source: str = "anatomical",
                  surface: str = "white", interpolation: str = "linear") -> Any:
    """Betas as ``Subject.get_betas`` returns them, moved to ``space`` (``get_betas(space=...)``).

    Parameters
    ----------
    subject : Subject
        The subject the betas come from.
    betas : numpy.ndarray or dict
        ``(n_trials, n_selected)``, or ``{session: array}`` for a session list.
    space : {"T1w", "fsaverage5", "fsaverage6", "fsaverage7", "fsaverage", "MNI305"}
        ``"T1w"`` returns ``betas`` unchanged.
    hemi : {"L", "R"} or None
        For surface spaces: one hemisphere's array, or ``{"L", "R"}`` dicts.
    selection : numpy.ndarray, optional
        Which brain voxels the columns are (``Subject.voxel_selection(roi, mask)``);
        voxels outside count as 0, as in ``Subject.to_nifti``.
    mask_source : {"anatomical", "rsquare"}
        The brain mask the betas follow.
    surface, interpolation
        As for :func:`to_template`.

    Returns
    -------
    numpy.ndarray or dict or nibabel.Nifti1Image
        Surface spaces: ``(n_trials, n_vertices)`` when ``hemi`` is given, else
        ``{"L": ..., "R": ...}``; a dict of those for a session dict.

    Examples
    --------
    >>> lh = project_betas(sub, sub.get_betas(session="ses-01"), "fsaverage5", hemi="L",
    ...                    mask_source="rsquare")  # doctest: +SKIP
    """
    if space in (None, "T1w"):
        return betas
    if isinstance(betas, Mapping):
        return {key: project_betas(subject, value, space, hemi=hemi, selection=selection,
                                   mask_source=mask_source, surface=surface,
                                   interpolation=interpolation)
                for key, value in betas.items()}
    out = _to_template(subject, betas, space, hemi=hemi, surface=surface,
                       interpolation=interpolation, mask_source=mask_source, selection=selection)
    return out[_hemis(hemi)[0]] if hemi is not None and isinstance(out, dict) else out


__all__ = [
    "INTERPOLATIONS",
    "MASK_SOURCES",
    "ROUTES",
    "project_betas",
    "projection_matrices",
    "surface_to_template",
    "to_template",
    "volume_to_surface",
    "volume_to_template",
]
