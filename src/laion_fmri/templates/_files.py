"""Finding and reading the geometry files: FreeSurfer surfaces, LTAs, fsaverage spheres."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from laion_fmri import layout
from laion_fmri.errors import DataNotDownloadedError, MissingDependencyError

HEMIS: dict[str, str] = {"L": "lh", "R": "rh"}
#: TemplateFlow density label of each fsaverage mesh.
FSAVERAGE_DENSITIES: dict[str, str] = {"fsaverage5": "10k", "fsaverage6": "41k",
                                       "fsaverage7": "164k", "fsaverage": "164k"}
SURFACES = ("white", "pial", "midthickness")
#: Folder of a TemplateFlow home inside a data directory (the sample writes one).
LOCAL_TEMPLATEFLOW = "templateflow"


def freesurfer_dir(subject: Any) -> Path:
    """The subject's FreeSurfer folder (``derivatives/freesurfer/<sub>``).

    Parameters
    ----------
    subject : Subject
        A loaded subject.

    Returns
    -------
    Path

    Raises
    ------
    DataNotDownloadedError
        If the folder is absent.

    Examples
    --------
    >>> freesurfer_dir(sub)  # doctest: +SKIP
    PosixPath('/data/derivatives/freesurfer/sub-03')
    """
    getter = getattr(subject, "get_freesurfer_dir", None)
    path = Path(getter()) if callable(getter) else (
        Path(subject.data_dir) / layout.freesurfer_prefix(subject.subject_id))
    if not path.is_dir():
        raise DataNotDownloadedError(
            f"The FreeSurfer tree of {subject.subject_id} is missing ({path}). Download the "
            f"subject's {layout.freesurfer_prefix(subject.subject_id)} folder first "
            f"(download(subject=..., include_freesurfer=True))."
        )
    return path


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a :class:`DataNotDownloadedError` naming ``what``.

    Parameters
    ----------
    path : Path
        Expected file.
    what : str
        Description for the error message.

    Returns
    -------
    Path

    Raises
    ------
    DataNotDownloadedError
        If ``path`` is not a file.

    Examples
    --------
    >>> require_file(Path("/nonexistent"), "x")  # doctest: +SKIP
    """
    if not path.is_file():
        raise DataNotDownloadedError(f"{what} is missing: {path} does not exist.")
    return path


def read_surface(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices in scanner RAS (mm) and faces of a FreeSurfer or GIFTI surface.

    FreeSurfer surfaces are stored in tkr-RAS; their ``volume_info`` footer's
    ``cras`` is added so the vertices line up with the T1w-space volumes.

    Parameters
    ----------
    path : Path
        ``surf/<h>.<name>`` (FreeSurfer binary) or ``*.surf.gii``.

    Returns
    -------
    coords : numpy.ndarray
        float64 ``(n, 3)``.
    faces : numpy.ndarray
        int64 ``(m, 3)``.

    Examples
    --------
    >>> coords, faces = read_surface(fs_dir / "surf" / "lh.white")  # doctest: +SKIP
    """
    import nibabel as nib

    if path.name.endswith(".gii"):
        img = nib.load(str(path))
        coords = img.agg_data("NIFTI_INTENT_POINTSET")
        faces = img.agg_data("NIFTI_INTENT_TRIANGLE")
        return np.asarray(coords, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    coords, faces, meta = nib.freesurfer.read_geometry(str(path), read_metadata=True)
    cras = np.asarray(meta.get("cras", np.zeros(3)), dtype=np.float64) if meta else np.zeros(3)
    return np.asarray(coords, dtype=np.float64) + cras, np.asarray(faces, dtype=np.int64)


def read_sphere(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (as stored, no ``cras`` shift) and faces of a sphere surface.

    Parameters
    ----------
    path : Path
        FreeSurfer ``sphere.reg`` or a ``*.surf.gii`` sphere.

    Returns
    -------
    coords, faces : numpy.ndarray

    Examples
    --------
    >>> coords, faces = read_sphere(fs_dir / "surf" / "lh.sphere.reg")  # doctest: +SKIP
    """
    import nibabel as nib

    if path.name.endswith(".gii"):
        return read_surface(path)
    coords, faces = nib.freesurfer.read_geometry(str(path))
    return np.asarray(coords, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def templateflow_home() -> Path:
    """TemplateFlow's home folder: ``$TEMPLATEFLOW_HOME`` or ``~/.cache/templateflow``.

    Returns
    -------
    Path

    Examples
    --------
    >>> isinstance(templateflow_home(), Path)
    True
    """
    env = os.environ.get("TEMPLATEFLOW_HOME", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "templateflow"


def fsaverage_sphere(density: str, hemi: str, data_dir: Path | None = None) -> Path:
    """Path of TemplateFlow's fsaverage sphere for ``density`` and ``hemi``.

    Looked up, in order, in ``<data_dir>/templateflow`` (an offline copy next to
    the data; the sample dataset ships one), in ``$TEMPLATEFLOW_HOME`` (or
    TemplateFlow's default home), and only then fetched with
    ``templateflow.api.get`` (network).

    Parameters
    ----------
    density : {"fsaverage5", "fsaverage6", "fsaverage7", "fsaverage"}
        fsaverage mesh.
    hemi : {"L", "R"}
        Hemisphere.
    data_dir : Path, optional
        Data directory that may hold a ``templateflow/`` copy.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        For an unknown density.
    DataNotDownloadedError
        If the sphere is nowhere local and TemplateFlow cannot fetch it.

    Examples
    --------
    >>> fsaverage_sphere("fsaverage5", "L").name  # doctest: +SKIP
    'tpl-fsaverage_hemi-L_den-10k_sphere.surf.gii'
    """
    if density not in FSAVERAGE_DENSITIES:
        raise ValueError(
            f"Unknown fsaverage density {density!r}; choose one of "
            f"{', '.join(sorted(FSAVERAGE_DENSITIES))}."
        )
    den = FSAVERAGE_DENSITIES[density]
    name = f"tpl-fsaverage_hemi-{hemi}_den-{den}_sphere.surf.gii"
    homes = ([Path(data_dir) / LOCAL_TEMPLATEFLOW] if data_dir is not None else []) + [templateflow_home()]
    for home in homes:
        candidate = home / "tpl-fsaverage" / name
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    try:
        from templateflow import api as tflow
    except ImportError as exc:
        raise MissingDependencyError("templateflow", "templates") from exc
    try:
        fetched = tflow.get("fsaverage", hemi=hemi, density=den, suffix="sphere", extension=".surf.gii")
    except Exception as exc:  # network errors come in many types
        fetched = None
        reason = f" ({exc})"
    else:
        reason = ""
    if not fetched or isinstance(fetched, list):
        raise DataNotDownloadedError(
            f"The fsaverage sphere {name} is not available offline and TemplateFlow could not fetch "
            f"it{reason}. Copy tpl-fsaverage/ from a machine with network access into "
            f"$TEMPLATEFLOW_HOME (now {templateflow_home()}) or into <data_dir>/templateflow/."
        )
    return Path(fetched)


def fingerprint(*paths: Path) -> str:
    """BLAKE2b of the files' contents and names (identifies the geometry inputs).

    Parameters
    ----------
    *paths : Path
        Files to hash.

    Returns
    -------
    str

    Examples
    --------
    >>> len(fingerprint())
    32
    """
    h = hashlib.blake2b(digest_size=16)
    for path in paths:
        h.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def read_lta(path: Path) -> np.ndarray:
    """The RAS-to-RAS matrix (source -> destination) of a FreeSurfer ``.lta`` file.

    ``LINEAR_VOX_TO_VOX`` files are converted with the volume geometries they
    carry, as FreeSurfer (and nitransforms) do.

    Parameters
    ----------
    path : Path
        e.g. ``mri/transforms/talairach.lta``.

    Returns
    -------
    numpy.ndarray
        ``(4, 4)`` float64, subject RAS -> template RAS.

    Raises
    ------
    ValueError
        If the file is not a single-transform LTA.

    Examples
    --------
    >>> read_lta(fs_dir / "mri" / "transforms" / "talairach.lta")  # doctest: +SKIP
    """
    lines = [ln.split("#")[0].strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln]
    fields: dict[str, str] = {}
    matrix = None
    geometry: dict[str, dict[str, np.ndarray]] = {}
    current = None
    for i, line in enumerate(lines):
        if line == "1 4 4":
            matrix = np.array([[float(v) for v in lines[i + k].split()] for k in range(1, 5)])
        elif line in ("src volume info", "dst volume info"):
            current = line.split()[0]
            geometry[current] = {}
        elif "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            if current is None:
                fields[key] = value
            elif key in ("volume", "voxelsize", "xras", "yras", "zras", "cras"):
                geometry[current][key] = np.array([float(v) for v in value.split()])
    if matrix is None or matrix.shape != (4, 4) or fields.get("nxforms", "1") != "1":
        raise ValueError(f"{path} is not a single-transform FreeSurfer LTA file.")
    kind = int(fields.get("type", "1"))
    if kind == 1:
        return matrix
    if kind == 0:
        return _vox2ras(geometry["dst"]) @ matrix @ np.linalg.inv(_vox2ras(geometry["src"]))
    raise ValueError(f"{path}: LTA type {kind} is not supported (use RAS2RAS or VOX2VOX).")


def _vox2ras(geom: dict[str, np.ndarray]) -> np.ndarray:
    """Voxel -> RAS affine of an LTA volume geometry (FreeSurfer's convention)."""
    rot = np.stack([geom["xras"], geom["yras"], geom["zras"]], axis=1) * geom["voxelsize"]
    centre = geom["volume"] / 2.0
    aff = np.eye(4)
    aff[:3, :3] = rot
    aff[:3, 3] = geom["cras"] - rot @ centre
    return aff


__all__ = [
    "FSAVERAGE_DENSITIES",
    "HEMIS",
    "LOCAL_TEMPLATEFLOW",
    "SURFACES",
    "fingerprint",
    "freesurfer_dir",
    "fsaverage_sphere",
    "read_lta",
    "read_sphere",
    "read_surface",
    "require_file",
    "templateflow_home",
]
