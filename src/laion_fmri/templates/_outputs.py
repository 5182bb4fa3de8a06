"""BIDS-named output files: one GIFTI per hemisphere, or one NIfTI for MNI305."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def bids_name(subject: str, session: str | None, space: str, desc: str | None, extension: str,
              hemi: str | None = None) -> str:
    """``sub-XX[_ses-YY][_hemi-H]_space-S[_desc-D]_statmap<extension>``.

    Parameters
    ----------
    subject : str
        Canonical subject id.
    session : str or None
        Session entity (``"ses-01"`` or ``"01"``).
    space : str
        e.g. ``"fsaverage5"`` or ``"MNI305"``.
    desc : str or None
        Free label (alphanumeric).
    extension : str
        ``".func.gii"`` or ``".nii.gz"``.
    hemi : str or None
        ``"L"`` or ``"R"`` for surface files.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``desc`` is not alphanumeric.

    Examples
    --------
    >>> bids_name("sub-03", "ses-01", "fsaverage5", "nc", ".func.gii", hemi="L")
    'sub-03_ses-01_hemi-L_space-fsaverage5_desc-nc_statmap.func.gii'
    """
    parts = [subject]
    if session:
        parts.append(session if str(session).startswith("ses-") else f"ses-{session}")
    if hemi:
        parts.append(f"hemi-{hemi}")
    parts.append(f"space-{space}")
    if desc:
        if not str(desc).isalnum():
            raise ValueError(f"desc must be alphanumeric (a BIDS label), not {desc!r}.")
        parts.append(f"desc-{desc}")
    return "_".join(parts) + "_statmap" + extension


def write_surfaces(data: dict[str, np.ndarray], folder: Path, subject: str, space: str,
                   session: str | None, desc: str | None) -> list[Path]:
    """One ``.func.gii`` per hemisphere (one data array per sample).

    Parameters
    ----------
    data : dict
        ``{"L": (n_vertices,) or (n_samples, n_vertices), ...}``.
    folder : Path
        Output folder (created).
    subject, space, session, desc
        BIDS entities, see :func:`bids_name`.

    Returns
    -------
    list of Path

    Examples
    --------
    >>> write_surfaces({"L": nc_l}, Path("out"), "sub-03", "fsaverage5", None, "nc")  # doctest: +SKIP
    """
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for hemi, values in data.items():
        rows = np.atleast_2d(np.asarray(values, dtype=np.float32))
        arrays = [nib.gifti.GiftiDataArray(row, intent="NIFTI_INTENT_NONE",
                                           datatype="NIFTI_TYPE_FLOAT32") for row in rows]
        path = folder / bids_name(subject, session, space, desc, ".func.gii", hemi=hemi)
        nib.save(nib.gifti.GiftiImage(darrays=arrays), str(path))
        paths.append(path)
    return paths


def write_volume(img: Any, folder: Path, subject: str, session: str | None, desc: str | None) -> Path:
    """The MNI305 image as ``<...>_space-MNI305[_desc-D]_statmap.nii.gz``.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        Output of :func:`volume_to_template`.
    folder : Path
        Output folder (created).
    subject, session, desc
        BIDS entities, see :func:`bids_name`.

    Returns
    -------
    Path

    Examples
    --------
    >>> write_volume(img, Path("out"), "sub-03", None, None)  # doctest: +SKIP
    """
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / bids_name(subject, session, "MNI305", desc, ".nii.gz")
    nib.save(img, str(path))
    return path


__all__ = [
    "bids_name",
    "write_surfaces",
    "write_volume",
]
