"""``laion_fmri.templates``: the cached matrix route against the reference chain itself.

The reference chain is run here directly with nilearn (``vol_to_surf``) and
nitransforms (``SurfaceResampler``, LTA ``apply``) on the scattered volume,
exactly as the reference release does, and compared with our numbers at
float32 tolerance: on the sample dataset's FreeSurfer files and on a larger,
oblique, real-format FreeSurfer surface written here.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("nilearn")
pytest.importorskip("nitransforms")

from nilearn.surface import InMemoryMesh, vol_to_surf
from nitransforms.base import SurfaceMesh
from nitransforms.surface import SurfaceResampler

from laion_fmri import load_subject
from laion_fmri.errors import DataNotDownloadedError, MissingDependencyError
from laion_fmri.sample._freesurfer import icosphere
from laion_fmri.templates import (
    MNI305_AFFINE,
    MNI305_SHAPE,
    _project,
    projection_matrices,
    surface_to_template,
    to_template,
    volume_to_surface,
    volume_to_template,
)
from laion_fmri.templates._files import read_lta
from laion_fmri.templates.api import _to_template

RTOL = 1e-5
HEMI = {"L": "lh", "R": "rh"}


# --------------------------------------------------------------------------- the reference chain
def _scatter(rows: np.ndarray, mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    rows = np.atleast_2d(rows)
    vol = np.zeros((rows.shape[0], mask.size), np.float32)
    vol[:, mask] = rows
    return np.moveaxis(vol.reshape((-1, *shape)), 0, -1)


def _fs_mesh(path: Path) -> InMemoryMesh:
    coords, faces, meta = nib.freesurfer.read_geometry(str(path), read_metadata=True)
    return InMemoryMesh(coords + meta["cras"], faces)


def _gifti_or_fs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.name.endswith(".gii"):
        img = nib.load(path)
        return img.agg_data("NIFTI_INTENT_POINTSET"), img.agg_data("NIFTI_INTENT_TRIANGLE")
    return nib.freesurfer.read_geometry(str(path))


def reference_chain(vol4d: np.ndarray, affine: np.ndarray, fs_dir: Path, template: Path, hemi: str,
                    surface: str = "white", interpolation: str = "linear") -> np.ndarray:
    """scatter -> vol_to_surf -> SurfaceResampler.apply, as the reference release does."""
    img = nib.Nifti1Image(vol4d, affine)
    mesh = _fs_mesh(fs_dir / "surf" / f"{HEMI[hemi]}.{surface}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN vertices
        if interpolation == "linear":
            texture = vol_to_surf(img, mesh)
        else:
            from nilearn.surface.surface import _nearest_voxel_sampling

            texture = _nearest_voxel_sampling(np.moveaxis(vol4d, -1, 0), mesh, affine).T
    sph, sph_faces = _gifti_or_fs(fs_dir / "surf" / f"{HEMI[hemi]}.sphere.reg")
    tpl, tpl_faces = _gifti_or_fs(template)
    resampler = SurfaceResampler(SurfaceMesh.from_arrays(np.asarray(tpl), np.asarray(tpl_faces)),
                                 SurfaceMesh.from_arrays(np.asarray(sph), np.asarray(sph_faces)))
    return np.asarray(resampler.apply(texture.T))


def _template(root: Path, hemi: str, den: str = "10k") -> Path:
    return root / "templateflow" / "tpl-fsaverage" / f"tpl-fsaverage_hemi-{hemi}_den-{den}_sphere.surf.gii"


def assert_same(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    scale = np.nanmax(np.abs(ref))
    assert scale > 0
    np.testing.assert_allclose(np.nan_to_num(ours), np.nan_to_num(ref), rtol=RTOL, atol=RTOL * scale)


@pytest.fixture
def sub(shared_downloaded: Path):  # type: ignore[no-untyped-def]
    return load_subject("sub-03", data_dir=shared_downloaded)


# --------------------------------------------------------------------------- fsaverage on the sample
@pytest.mark.parametrize("session", ["ses-01", "ses-02"])
def test_betas_on_fsaverage_match_reference_chain(sub, session: str) -> None:  # type: ignore[no-untyped-def]
    betas = sub.get_betas(session=session)
    out = to_template(sub, betas, "fsaverage")
    assert set(out) == {"L", "R"}
    vol = _scatter(betas, sub.get_brain_mask(), sub.grid_shape)
    fs_dir = sub.data_dir / "derivatives" / "freesurfer" / "sub-03"
    for hemi in "LR":
        ref = reference_chain(vol, sub.affine, fs_dir, _template(sub.data_dir, hemi), hemi)
        assert ref.shape == (betas.shape[0], 162)
        assert_same(out[hemi], ref)


def test_one_d_values_pial_nearest_fsaverage6(sub) -> None:  # type: ignore[no-untyped-def]
    nc = sub.get_noise_ceiling(session="ses-01", mask_source="rsquare")  # the R2mean axis
    out = to_template(sub, nc, "fsaverage6", hemi="R", surface="pial", interpolation="nearest",
                      mask_source="rsquare")
    assert list(out) == ["R"] and out["R"].shape == (642,)
    vol = _scatter(nc, sub.get_brain_mask(source="rsquare"), sub.grid_shape)
    fs_dir = sub.data_dir / "derivatives" / "freesurfer" / "sub-03"
    ref = reference_chain(vol, sub.affine, fs_dir, _template(sub.data_dir, "R", "41k"), "R",
                          surface="pial", interpolation="nearest")
    assert_same(out["R"], ref[0])


def test_nan_voxels_follow_nilearn(sub) -> None:  # type: ignore[no-untyped-def]
    """NaN voxels on the surface: nilearn drops the samples touching them from the average."""
    betas = sub.get_betas(session="ses-01")[:6].copy()
    dense = projection_matrices(sub, hemi="L")["L"].toarray()
    hot = np.argsort(-np.abs(dense).sum(axis=0))[:25]  # voxels the surface samples most
    betas[:3, hot[:20]] = np.nan  # one NaN pattern for rows 0-2 ...
    betas[4, hot[10:]] = np.nan  # ... another for row 4; rows 3 and 5 are clean
    out = to_template(sub, betas, "fsaverage", hemi="L")["L"]
    vol = _scatter(betas, sub.get_brain_mask(), sub.grid_shape)
    fs_dir = sub.data_dir / "derivatives" / "freesurfer" / "sub-03"
    ref = reference_chain(vol, sub.affine, fs_dir, _template(sub.data_dir, "L"), "L")
    assert np.isfinite(ref[3]).all() and not np.allclose(ref[0], ref[3])
    assert_same(out, ref)


def test_input_kinds_agree(sub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dask_array = pytest.importorskip("dask.array")
    betas = sub.get_betas(session="ses-01")
    ours = to_template(sub, betas, "fsaverage")
    lazy = to_template(sub, dask_array.from_array(betas, chunks=(7, -1)), "fsaverage")
    single = to_template(sub, betas[5], "fsaverage")
    for hemi in "LR":
        np.testing.assert_array_equal(lazy[hemi], ours[hemi])
        np.testing.assert_allclose(single[hemi], ours[hemi][5], rtol=1e-6, atol=1e-6)
    # A NIfTI path: the full grid, including anything outside the brain mask.
    vol = _scatter(betas[:4], sub.get_brain_mask(), sub.grid_shape)
    vol[0, 0, 0, :] = 5.0
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(vol, sub.affine), path)
    from_file = to_template(sub, path, "fsaverage", hemi="L")
    fs_dir = sub.data_dir / "derivatives" / "freesurfer" / "sub-03"
    assert_same(from_file["L"], reference_chain(vol, sub.affine, fs_dir, _template(sub.data_dir, "L"), "L"))
    path3 = tmp_path / "one.nii"
    nib.save(nib.Nifti1Image(vol[..., 2], sub.affine), path3)
    one = to_template(sub, path3, "fsaverage", hemi="L")
    np.testing.assert_allclose(one["L"], from_file["L"][2], rtol=1e-6, atol=1e-6)
    mni_file = np.asarray(to_template(sub, path, "MNI305").dataobj)
    mni_rows = np.asarray(to_template(sub, betas[:4], "MNI305").dataobj)
    np.testing.assert_array_equal(mni_file, mni_rows)  # (the out-of-mask voxel maps outside MNI)


def test_building_blocks_compose(sub) -> None:  # type: ignore[no-untyped-def]
    betas = sub.get_betas(session="ses-02")[:5]
    native = volume_to_surface(sub, betas)
    assert native["L"].shape == (5, 642)
    vol = _scatter(betas, sub.get_brain_mask(), sub.grid_shape)
    mesh = _fs_mesh(sub.data_dir / "derivatives" / "freesurfer" / "sub-03" / "surf" / "lh.white")
    assert_same(native["L"], vol_to_surf(nib.Nifti1Image(vol, sub.affine), mesh).T)
    fsavg = surface_to_template(sub, native)
    direct = to_template(sub, betas, "fsaverage5")
    for hemi in "LR":
        np.testing.assert_allclose(fsavg[hemi], direct[hemi], rtol=1e-5, atol=1e-5)
    one = surface_to_template(sub, native["R"][2], hemi="R")
    np.testing.assert_allclose(one["R"], direct["R"][2], rtol=1e-5, atol=1e-5)


def test_selection_equals_zero_filled_whole_brain(sub) -> None:  # type: ignore[no-untyped-def]
    betas = sub.get_betas(session="ses-01")[:8]
    sel = sub.voxel_selection("face", None)
    assert 0 < np.asarray(sel).sum() < betas.shape[1]
    part = _to_template(sub, betas[:, sel], "fsaverage", selection=sel)
    full = np.zeros_like(betas)
    full[:, sel] = betas[:, sel]
    whole = to_template(sub, full, "fsaverage")
    for hemi in "LR":
        np.testing.assert_allclose(part[hemi], whole[hemi], rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- the cache
def test_matrix_cached_on_disk_and_keyed_by_inputs(downloaded: Path) -> None:
    sub = load_subject("sub-01", data_dir=downloaded)
    cache = downloaded / ".laion_fmri" / "cache" / "templates" / "sub-01"
    betas = sub.get_betas(session="ses-01")[:3]
    first = to_template(sub, betas, "fsaverage")
    files = sorted(cache.glob("*.npz"))
    assert [f.name.split("-")[0] for f in files] == ["lh.white", "rh.white"]
    from scipy import sparse

    stored = sparse.load_npz(files[0])  # plain scipy.sparse .npz
    assert stored.dtype == np.float32 and stored.shape == (162, sub.get_n_voxels())
    stamps = [f.stat().st_mtime_ns for f in files]
    again = to_template(sub, betas, "fsaverage")
    assert [f.stat().st_mtime_ns for f in files] == stamps
    for hemi in "LR":
        np.testing.assert_array_equal(first[hemi], again[hemi])
    # A damaged entry is rebuilt, not trusted.
    files[0].write_bytes(b"not a zip")
    repaired = to_template(sub, betas, "fsaverage", hemi="L")
    np.testing.assert_array_equal(repaired["L"], first["L"])
    # New geometry (another sphere.reg) -> a new key, and new numbers.
    fs = downloaded / "derivatives" / "freesurfer" / "sub-01" / "surf"
    coords, faces, meta = nib.freesurfer.read_geometry(str(fs / "lh.sphere.reg"), read_metadata=True)
    rot = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    nib.freesurfer.write_geometry(str(fs / "lh.sphere.reg"), coords @ rot.T, faces, volume_info=meta)
    moved = to_template(sub, betas, "fsaverage", hemi="L")
    assert len(list(cache.glob("lh.white-*.npz"))) == 2
    assert not np.allclose(moved["L"], first["L"])


# --------------------------------------------------------------------------- MNI305
def test_mni305_matches_nitransforms(sub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import nitransforms as nt

    betas = sub.get_betas(session="ses-01")[:4]
    img = to_template(sub, betas, "MNI305", output_dir=tmp_path, desc="betas",
                      session="ses-01")
    assert img.shape == (*MNI305_SHAPE, 4)
    np.testing.assert_array_equal(img.affine, MNI305_AFFINE)
    lta = sub.data_dir / "derivatives" / "freesurfer" / "sub-03" / "mri" / "transforms" / "talairach.lta"
    xfm = nt.linear.load(str(lta), fmt="lta")
    grid = nib.Nifti1Image(np.zeros(MNI305_SHAPE, np.float32), MNI305_AFFINE)
    vol = _scatter(betas, sub.get_brain_mask(), sub.grid_shape)
    data = np.asarray(img.dataobj)
    for i in range(4):  # the reference: one volume at a time
        ref = nt.resampling.apply(xfm, nib.Nifti1Image(vol[..., i], sub.affine), reference=grid, order=0)
        np.testing.assert_array_equal(data[..., i], np.asarray(ref.dataobj))
    assert (data != 0).sum() > 1000
    written = tmp_path / "sub-03_ses-01_space-MNI305_desc-betas_statmap.nii.gz"
    np.testing.assert_array_equal(np.asarray(nib.load(written).dataobj), data)
    one = volume_to_template(sub, betas[2])
    np.testing.assert_array_equal(np.asarray(one.dataobj), data[..., 2])


def test_vox2vox_lta_equals_nitransforms(tmp_path: Path) -> None:
    from nitransforms.io.lta import FSLinearTransform

    text = """type      = 0 # LINEAR_VOX_TO_VOX
nxforms   = 1
mean      = 0.0000 0.0000 0.0000
sigma     = 1.0000
1 4 4
1.02 0.01 0.0 -3.5
-0.02 0.98 0.05 2.0
0.0 -0.04 1.01 1.25
0 0 0 1
src volume info
valid = 1  # volume info valid
filename = src.mgz
volume = 64 70 60
voxelsize = 1.5 1.5 1.5
xras   = -1 0 0
yras   = 0 0 -1
zras   = 0 1 0
cras   = 2.0 -3.0 4.5
dst volume info
valid = 1  # volume info valid
filename = dst.mgz
volume = 256 256 256
voxelsize = 1 1 1
xras   = -1 0 0
yras   = 0 0 1
zras   = 0 1 0
cras   = 0 0 0
"""
    path = tmp_path / "x.lta"
    path.write_text(text)
    ours = read_lta(path)
    theirs = np.linalg.inv(FSLinearTransform.from_filename(str(path)).to_ras())
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-4)


# --------------------------------------------------------------------------- outputs
def test_output_dir_writes_bids_gifti(sub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    betas = sub.get_betas(session="ses-01")[:3]
    out = to_template(sub, betas, "fsaverage", output_dir=tmp_path,
                      desc="singletrial", session="ses-01")
    for hemi in "LR":
        path = tmp_path / f"sub-03_ses-01_hemi-{hemi}_space-fsaverage5_desc-singletrial_statmap.func.gii"
        gii = nib.load(path)
        np.testing.assert_array_equal(np.stack([d.data for d in gii.darrays]), out[hemi])


# --------------------------------------------------------------------------- a real-size-ish, oblique subject
class _Subject:
    """The public Subject surface ``to_template`` uses, with the future ``source=`` mask API."""

    def __init__(self, data_dir: Path, affine: np.ndarray, masks: dict[str, np.ndarray]) -> None:
        self.subject_id = "sub-05"
        self.data_dir = data_dir
        self.affine = affine
        self.grid_shape = masks["anatomical"].shape
        self._masks = masks

    def get_brain_mask(self, source: str = "anatomical") -> np.ndarray:
        return self._masks[source].ravel().copy()


def _oblique_subject(root: Path) -> _Subject:
    shape = (48, 52, 44)
    angle = 0.2
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-1.778, 1.778, 1.778])  # LAS, rotated
    affine[:3, 3] = [40.0, -45.0, -38.0]
    centre = affine[:3, :3] @ (np.asarray(shape) / 2) + affine[:3, 3]
    ijk = np.indices(shape).reshape(3, -1).T
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    radial = np.linalg.norm((world - centre) / np.array([36.0, 40.0, 32.0]), axis=1)
    anatomical = (radial < 1.0).reshape(shape)
    rsquare = anatomical & (np.random.default_rng(3).random(shape) < 0.6)
    fs = root / "derivatives" / "freesurfer" / "sub-05"
    (fs / "surf").mkdir(parents=True)
    cras = np.array([3.0, -7.5, 11.0])
    info = {"head": np.array([2, 0, 20], dtype=np.int32), "valid": "1  # volume info valid",
            "filename": "../mri/filled-pretess255.mgz", "volume": np.array([256, 256, 256]),
            "voxelsize": np.array([1.0, 1.0, 1.0]), "xras": np.array([-1.0, 0.0, 0.0]),
            "yras": np.array([0.0, 0.0, -1.0]), "zras": np.array([0.0, 1.0, 0.0]), "cras": cras}
    unit, faces = icosphere(5)  # 10,242 vertices
    rng = np.random.default_rng(5)
    for hemi, side in (("lh", -1.0), ("rh", 1.0)):
        wobble = 1 + 0.08 * np.sin(5 * unit[:, 0]) * np.cos(4 * unit[:, 2])
        white = unit * np.array([14.0, 30.0, 24.0]) * wobble[:, None] + centre + [side * 17, 0, 0]
        nib.freesurfer.write_geometry(str(fs / "surf" / f"{hemi}.white"), white - cras, faces,
                                      volume_info=info)
        jitter = unit + rng.normal(0, 2e-4, unit.shape)
        sphere = 100 * jitter / np.linalg.norm(jitter, axis=1, keepdims=True)
        nib.freesurfer.write_geometry(str(fs / "surf" / f"{hemi}.sphere.reg"), sphere, faces,
                                      volume_info=info)
    tpl_dir = root / "tf-home" / "tpl-fsaverage"
    tpl_dir.mkdir(parents=True)
    tpl, tpl_faces = icosphere(4)
    for hemi in "LR":
        arrays = [nib.gifti.GiftiDataArray((100 * tpl).astype(np.float32), intent="NIFTI_INTENT_POINTSET"),
                  nib.gifti.GiftiDataArray(tpl_faces.astype(np.int32), intent="NIFTI_INTENT_TRIANGLE")]
        nib.save(nib.gifti.GiftiImage(darrays=arrays),
                 tpl_dir / f"tpl-fsaverage_hemi-{hemi}_den-10k_sphere.surf.gii")
    return _Subject(root, affine, {"anatomical": anatomical, "rsquare": rsquare})


def test_real_format_surface_oblique_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    subject = _oblique_subject(tmp_path)
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "tf-home"))  # offline TemplateFlow home
    rng = np.random.default_rng(0)
    for source in ("anatomical", "rsquare"):
        mask = subject.get_brain_mask(source)
        values = rng.standard_normal((3, int(mask.sum()))).astype(np.float32)
        out = to_template(subject, values, "fsaverage", mask_source=source)
        vol = _scatter(values, mask, subject.grid_shape)
        fs_dir = tmp_path / "derivatives" / "freesurfer" / "sub-05"
        for hemi in "LR":
            tpl = tmp_path / "tf-home" / "tpl-fsaverage" / _template(tmp_path, hemi).name
            ref = reference_chain(vol, subject.affine, fs_dir, tpl, hemi)
            assert ref.shape == (3, 2562)
            assert_same(out[hemi], ref)


# --------------------------------------------------------------------------- errors
def test_clear_errors(sub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    nc = sub.get_noise_ceiling(session="ses-01")
    with pytest.raises(ValueError, match="mask_source must be one of"):
        to_template(sub, nc, "fsaverage", mask_source="r2")
    with pytest.raises(ValueError, match="n_voxels"):  # rsquare values on the anatomical axis
        to_template(sub, sub.get_noise_ceiling(session="ses-01", mask_source="rsquare"), "fsaverage")
    with pytest.raises(ValueError, match="hemi"):
        to_template(sub, nc, "fsaverage", hemi="X")
    with pytest.raises(ValueError, match="target"):
        to_template(sub, nc, "MNI152")
    with pytest.raises(ValueError, match="fsaverage5, fsaverage6 or fsaverage7"):
        to_template(sub, nc, "fsaverage", fsaverage_density="fsaverage9")
    with pytest.raises(ValueError, match="n_voxels"):
        to_template(sub, nc[:-1], "fsaverage")
    with pytest.raises(ValueError, match="interpolation"):
        to_template(sub, nc, "fsaverage", interpolation="cubic")
    bad = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), bad)
    with pytest.raises(ValueError, match="betas grid"):
        to_template(sub, bad, "fsaverage")


def test_missing_files_and_extra(downloaded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = load_subject("sub-03", data_dir=downloaded)
    nc = sub.get_noise_ceiling(session="ses-01")
    (downloaded / "derivatives" / "freesurfer" / "sub-03" / "surf" / "lh.white").unlink()
    with pytest.raises(DataNotDownloadedError, match=r"lh\.white"):
        to_template(sub, nc, "fsaverage", hemi="L")
    # No local fsaverage sphere and no templateflow package: the error names the extra.
    import shutil
    import sys

    shutil.rmtree(downloaded / "templateflow")
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(downloaded / "empty-tf"))
    monkeypatch.setitem(sys.modules, "templateflow", None)
    with pytest.raises(MissingDependencyError, match=r"laion-fmri\[templates\]"):
        to_template(sub, nc, "fsaverage", hemi="R")
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "scipy" else real_find(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'laion-fmri\[templates\]'"):
        to_template(sub, nc, "fsaverage")
    shutil.rmtree(downloaded / "derivatives" / "freesurfer")
    monkeypatch.setattr(importlib.util, "find_spec", real_find)
    with pytest.raises(DataNotDownloadedError, match="FreeSurfer tree"):
        to_template(sub, nc, "fsaverage")


def test_cache_key_changes_with_interpolation_and_mask(tmp_path: Path) -> None:
    subject = _oblique_subject(tmp_path)
    kw = {"surface": tmp_path / "derivatives/freesurfer/sub-05/surf/lh.white",
          "sphere": tmp_path / "derivatives/freesurfer/sub-05/surf/lh.sphere.reg",
          "template": tmp_path / "tf-home/tpl-fsaverage/tpl-fsaverage_hemi-L_den-10k_sphere.surf.gii",
          "affine": subject.affine, "grid_shape": subject.grid_shape}
    anat = np.flatnonzero(subject.get_brain_mask("anatomical"))
    rsq = np.flatnonzero(subject.get_brain_mask("rsquare"))
    keys = {_project.Geometry(columns=c, interpolation=i, **kw).key()
            for c in (anat, rsq, None) for i in ("linear", "nearest")}
    assert len(keys) == 6


# ------------------------------------------------------------- get_betas(space=...) helper, figure
def test_project_betas_for_selections_and_session_dicts(sub) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.templates import project_betas

    sessions = sub.get_betas(session=["ses-01", "ses-02"], roi="face")
    sel = sub.voxel_selection("face", None)
    out = project_betas(sub, sessions, "fsaverage5", hemi="L", selection=sel)
    assert set(out) == {"ses-01", "ses-02"}
    full = np.zeros((sessions["ses-02"].shape[0], sub.get_n_voxels()), np.float32)
    full[:, sel] = sessions["ses-02"]
    expected = to_template(sub, full, "fsaverage5", hemi="L")["L"]
    np.testing.assert_allclose(out["ses-02"], expected, rtol=1e-6, atol=1e-6)
    whole = sub.get_betas(session="ses-01")
    assert project_betas(sub, whole, "T1w") is whole
    both = project_betas(sub, whole, "fsaverage")
    assert set(both) == {"L", "R"} and both["R"].shape == (whole.shape[0], 162)


def test_noise_ceiling_figure_on_fsaverage(sub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.plotting_surface import plot_fsaverage, plot_noise_ceiling_on_fsaverage

    png = tmp_path / "nc.png"
    fig = plot_noise_ceiling_on_fsaverage(sub, session="ses-01", out=png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len([ax for ax in fig.axes if ax.name == "3d"]) == 4
    assert "ses-01" in fig._suptitle.get_text()  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="values"):
        plot_fsaverage({"L": np.zeros(5)}, data_dir=sub.data_dir)


def test_get_betas_in_template_space(sub) -> None:  # type: ignore[no-untyped-def]
    """get_betas(space=...) equals projecting the voxel-axis betas, for both mask sources."""
    for source in ("anatomical", "rsquare"):
        native = sub.get_betas("ses-01", roi="face", mask_source=source)
        full = np.zeros((native.shape[0], sub.get_n_voxels(source)), np.float32)
        full[:, sub.get_roi_mask("face", mask_source=source)] = native
        expected = to_template(sub, full, "fsaverage5", mask_source=source)
        left = sub.get_betas("ses-01", roi="face", mask_source=source, space="fsaverage5", hemi="L")
        assert left.shape == (native.shape[0], 162)
        np.testing.assert_allclose(left, expected["L"], rtol=1e-6, atol=1e-6)
    both = sub.get_betas(["ses-01", "ses-02"], space="fsaverage5")
    assert set(both) == {"ses-01", "ses-02"} and set(both["ses-02"]) == {"L", "R"}
    assert sub.get_betas("ses-01", space="T1w").shape == (both["ses-01"]["L"].shape[0],
                                                          sub.get_n_voxels())
    via_method = sub.to_template(sub.get_noise_ceiling(session="ses-01"), "fsaverage5", hemi="R")
    direct = to_template(sub, sub.get_noise_ceiling(session="ses-01"), "fsaverage5", hemi="R")
    np.testing.assert_array_equal(via_method["R"], direct["R"])
