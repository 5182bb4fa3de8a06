"""A minimal FreeSurfer tree and a local TemplateFlow home for the sample dataset.

Per subject, ``derivatives/freesurfer/<sub>/`` gets real-format (FreeSurfer
binary triangle files) ``surf/{lh,rh}.{white,pial,sphere.reg}`` and a
``mri/transforms/talairach.lta`` (RAS-to-RAS). The white and pial surfaces are
ellipsoids inside each half of the synthetic brain blob, in FreeSurfer's
tkr-RAS space with a non-zero ``cras`` (so code that forgets the
scanner-vs-tkr offset gets wrong numbers); ``sphere.reg`` is the same
icosahedron, radius 100, slightly rotated (a stand-in for the registration to
fsaverage).

``templateflow/tpl-fsaverage/`` holds small icosahedral spheres under the real
TemplateFlow names (``den-10k`` = fsaverage5 etc.), so template projection
runs offline: point ``TEMPLATEFLOW_HOME`` at ``<sample>/templateflow``.
Only NumPy and nibabel are used here (no optional extra needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from laion_fmri import layout
from laion_fmri.sample.spec import SampleSpec

HEMIS = {"L": "lh", "R": "rh"}
#: TemplateFlow density label of each fsaverage mesh.
DENSITIES = {"fsaverage5": "10k", "fsaverage6": "41k", "fsaverage7": "164k"}
#: Icosahedron subdivision level of the sample's stand-in fsaverage spheres.
_SAMPLE_LEVELS = {"10k": 2, "41k": 3, "164k": 4}
_SUBJECT_LEVEL = 3
TEMPLATEFLOW_DIRNAME = "templateflow"


def freesurfer_keys(subject: str) -> list[str]:
    """Every key the sample writes into a subject's FreeSurfer tree.

    Parameters
    ----------
    subject : str
        Canonical subject id.

    Returns
    -------
    list of str

    Examples
    --------
    >>> freesurfer_keys("sub-03")[-1]
    'derivatives/freesurfer/sub-03/mri/transforms/talairach.lta'
    """
    prefix = layout.freesurfer_prefix(subject)
    keys = [f"{prefix}surf/{h}.{s}" for h in HEMIS.values() for s in ("white", "pial", "sphere.reg")]
    return [*keys, f"{prefix}mri/transforms/talairach.lta"]


def templateflow_keys() -> list[str]:
    """Keys of the sample's local TemplateFlow home (fsaverage spheres).

    Returns
    -------
    list of str

    Examples
    --------
    >>> templateflow_keys()[0]
    'templateflow/tpl-fsaverage/tpl-fsaverage_hemi-L_den-10k_sphere.surf.gii'
    """
    return [f"{TEMPLATEFLOW_DIRNAME}/tpl-fsaverage/tpl-fsaverage_hemi-{h}_den-{d}_sphere.surf.gii"
            for d in _SAMPLE_LEVELS for h in HEMIS]


def icosphere(level: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere subdivided ``level`` times (outward-facing triangles).

    Parameters
    ----------
    level : int
        Subdivisions; ``10 * 4**level + 2`` vertices.

    Returns
    -------
    coords : numpy.ndarray
        ``(n, 3)`` float64 unit vectors.
    faces : numpy.ndarray
        ``(m, 3)`` int32.

    Examples
    --------
    >>> icosphere(2)[0].shape
    (162, 3)
    """
    t = (1.0 + 5**0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
             (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    coords = [np.asarray(v, dtype=np.float64) / np.linalg.norm(v) for v in verts]
    for _ in range(level):
        midpoint: dict[tuple[int, int], int] = {}
        new = []
        for a, b, c in faces:
            ab, bc, ca = (_middle(coords, midpoint, i, j) for i, j in ((a, b), (b, c), (c, a)))
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.asarray(coords), np.asarray(faces, dtype=np.int32)


def _middle(coords: list[np.ndarray], midpoint: dict[tuple[int, int], int], i: int, j: int) -> int:
    """Index of the (new, projected to the sphere) midpoint of edge ``i``-``j``."""
    key = (min(i, j), max(i, j))
    if key not in midpoint:
        m = coords[i] + coords[j]
        coords.append(m / np.linalg.norm(m))
        midpoint[key] = len(coords) - 1
    return midpoint[key]


def _rotation(angles: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _volume_info(cras: np.ndarray) -> dict[str, object]:
    """The ``volume_info`` footer FreeSurfer writes after a surface (conformed 1 mm 256^3)."""
    return {
        "head": np.array([2, 0, 20], dtype=np.int32), "valid": "1  # volume info valid",
        "filename": "../mri/filled-pretess255.mgz", "volume": np.array([256, 256, 256]),
        "voxelsize": np.array([1.0, 1.0, 1.0]), "xras": np.array([-1.0, 0.0, 0.0]),
        "yras": np.array([0.0, 0.0, -1.0]), "zras": np.array([0.0, 1.0, 0.0]),
        "cras": np.asarray(cras, dtype=np.float64),
    }


def _lta_text(matrix: np.ndarray, cras: np.ndarray) -> str:
    """A FreeSurfer ``LINEAR_RAS_TO_RAS`` LTA from the subject's RAS to MNI305 RAS."""
    def geometry(name: str, c: np.ndarray) -> list[str]:
        return ["valid = 1  # volume info valid", f"filename = {name}", "volume = 256 256 256",
                "voxelsize = 1.000000000000000e+00 1.000000000000000e+00 1.000000000000000e+00",
                "xras   = -1.000000000000000e+00 0.000000000000000e+00 0.000000000000000e+00",
                "yras   = 0.000000000000000e+00 0.000000000000000e+00 -1.000000000000000e+00",
                "zras   = 0.000000000000000e+00 1.000000000000000e+00 0.000000000000000e+00",
                "cras   = " + " ".join(f"{v:.15e}" for v in c)]
    lines = ["# transform file talairach.lta", "# created by laion_fmri.sample",
             "type      = 1 # LINEAR_RAS_TO_RAS", "nxforms   = 1",
             "mean      = 0.0000 0.0000 0.0000", "sigma     = 1.0000", "1 4 4"]
    lines += [" ".join(f"{v:.15e}" for v in row) for row in matrix]
    lines += ["src volume info", *geometry("orig.mgz", cras),
              "dst volume info", *geometry("mni305.cor.mgz", np.zeros(3))]
    return "\n".join(lines) + "\n"


def _gifti_surface(path: Path, coords: np.ndarray, faces: np.ndarray) -> None:
    import nibabel as nib

    arrays = [
        nib.gifti.GiftiDataArray(coords.astype(np.float32), intent="NIFTI_INTENT_POINTSET",
                                 datatype="NIFTI_TYPE_FLOAT32"),
        nib.gifti.GiftiDataArray(faces.astype(np.int32), intent="NIFTI_INTENT_TRIANGLE",
                                 datatype="NIFTI_TYPE_INT32"),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.gifti.GiftiImage(darrays=arrays), str(path))


def write_freesurfer(root: Path, spec: SampleSpec, subject: str, brain: np.ndarray, index: int) -> None:
    """Write a subject's minimal FreeSurfer tree under ``root``.

    Parameters
    ----------
    root : pathlib.Path
        Sample dataset root.
    spec : SampleSpec
        Scale facts (grid, affine).
    subject : str
        Canonical subject id.
    brain : numpy.ndarray
        Boolean brain mask on the beta grid (the surfaces sit inside it).
    index : int
        Subject number (varies the geometry between subjects).

    Examples
    --------
    >>> write_freesurfer(root, spec, "sub-03", brain, 1)  # doctest: +SKIP
    """
    from nibabel.freesurfer import write_geometry

    prefix = root / layout.freesurfer_prefix(subject)
    vox = np.argwhere(brain)
    centre_vox = vox.mean(axis=0)
    extent_vox = (vox.max(axis=0) - vox.min(axis=0) + 1) / 2.0
    affine = spec.affine
    centre = affine[:3, :3] @ centre_vox + affine[:3, 3]
    half = np.abs(np.diag(affine)[:3]) * extent_vox  # brain semi-axes in mm
    # tkr-RAS = scanner RAS - cras; a subject-specific, non-zero offset.
    cras = np.array([1.5, -2.25, 3.0]) + index
    coords, faces = icosphere(_SUBJECT_LEVEL)
    rng = np.random.default_rng([index, 11])
    (prefix / "surf").mkdir(parents=True, exist_ok=True)
    for hemi, fs in HEMIS.items():
        side = -1.0 if hemi == "L" else 1.0
        hemi_centre = centre + np.array([side * half[0] * 0.45, 0.0, 0.0])
        axes = half * np.array([0.38, 0.7, 0.7])
        bumps = 1.0 + 0.06 * np.sin(3 * coords[:, 0] + index) * np.cos(2 * coords[:, 1])
        white = coords * axes * bumps[:, None] + hemi_centre
        pial = coords * (axes + 2.0) * bumps[:, None] + hemi_centre
        info = _volume_info(cras)
        write_geometry(str(prefix / "surf" / f"{fs}.white"), white - cras, faces,
                       create_stamp="created by laion_fmri.sample", volume_info=info)
        write_geometry(str(prefix / "surf" / f"{fs}.pial"), pial - cras, faces,
                       create_stamp="created by laion_fmri.sample", volume_info=info)
        rot = _rotation(tuple(rng.uniform(-0.08, 0.08, 3)))
        write_geometry(str(prefix / "surf" / f"{fs}.sphere.reg"), 100.0 * coords @ rot.T, faces,
                       create_stamp="created by laion_fmri.sample", volume_info=info)
    scale = 1.05 + 0.02 * index
    tal = np.eye(4)
    tal[:3, :3] = scale * _rotation((0.05, -0.03, 0.04))
    tal[:3, 3] = [2.0, -5.0 - index, 4.0]
    lta = prefix / "mri" / "transforms" / "talairach.lta"
    lta.parent.mkdir(parents=True, exist_ok=True)
    lta.write_text(_lta_text(tal, cras), encoding="utf-8")


def write_templateflow(root: Path) -> None:
    """Write the local TemplateFlow home with small stand-in fsaverage spheres.

    Parameters
    ----------
    root : pathlib.Path
        Sample dataset root; files go under ``root/templateflow``.

    Examples
    --------
    >>> write_templateflow(root)  # doctest: +SKIP
    """
    for key in templateflow_keys():
        density = key.split("_den-")[1].split("_")[0]
        coords, faces = icosphere(_SAMPLE_LEVELS[density])
        _gifti_surface(root / key, 100.0 * coords, faces)


def write_sample_freesurfer(root: Path, spec: SampleSpec, brain: np.ndarray) -> None:
    """Write every sample subject's FreeSurfer tree and the local TemplateFlow home.

    Parameters
    ----------
    root : pathlib.Path
        Sample dataset root.
    spec : SampleSpec
        Scale facts.
    brain : numpy.ndarray
        Boolean brain mask on the beta grid.

    Examples
    --------
    >>> write_sample_freesurfer(root, spec, spec.brain_mask())  # doctest: +SKIP
    """
    for i, subject in enumerate(spec.subjects):
        write_freesurfer(root, spec, subject, brain, i + 1)
    write_templateflow(root)


__all__ = [
    "DENSITIES",
    "HEMIS",
    "TEMPLATEFLOW_DIRNAME",
    "freesurfer_keys",
    "icosphere",
    "templateflow_keys",
    "write_freesurfer",
    "write_sample_freesurfer",
    "write_templateflow",
]
