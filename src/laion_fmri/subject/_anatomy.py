"""A subject's anatomy, FreeSurfer reconstruction and localizer maps (DATASET.md 2.7).

Anatomical images come back as nibabel images (lazy proxies: nothing is
decoded until asked); localizer volume maps are read onto the voxel axis
through the same brain space as the betas, so a grid mismatch is an error,
never a resample. :class:`AnatomyMethods` is the mixin of
:class:`laion_fmri.subject.Subject` over these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri import layout
from laion_fmri._docs import fill_doc
from laion_fmri.errors import DataNotDownloadedError
from laion_fmri.subject._brain import anatomical_mask_hint
from laion_fmri.subject._files import SubjectFiles

if TYPE_CHECKING:  # pragma: no cover
    import nibabel as nib
    import pandas as pd

    from laion_fmri.subject._voxels import VoxelSpace

LOCALIZER_COLUMNS = ("task", "session", "run", "contrast", "stat", "space", "res", "hemi", "path")


def _freesurfer_hint(subject: str) -> str:
    return f'laion_fmri.download.download(subject="{subject}", include_freesurfer=True)'


def anatomical_image(files: SubjectFiles, suffix: str, res: str) -> nib.Nifti1Image:
    """The T1w, T2w or brain-mask image at ``res`` (a nibabel image with a lazy data proxy)."""
    import nibabel as nib

    path = files.path(layout.anatomical_key(files.subject, suffix, res))
    if not path.is_file():
        raise DataNotDownloadedError(
            f"The anatomical {suffix} ({res}) of {files.subject} is not on disk ({path}). "
            f"Download the anatomical folder with `{anatomical_mask_hint(files.subject)}`."
        )
    return nib.load(str(path))


def freesurfer_dir(files: SubjectFiles) -> Path:
    """The subject's FreeSurfer folder (``mri/``, ``surf/``, ``label/``), or an error naming the download."""
    path = files.path(layout.freesurfer_prefix(files.subject).rstrip("/"))
    if not path.is_dir():
        raise DataNotDownloadedError(
            f"The FreeSurfer tree of {files.subject} is not on disk ({path}). "
            f"Download it with `{_freesurfer_hint(files.subject)}`."
        )
    return path


def localizer_table(files: SubjectFiles) -> pd.DataFrame:
    """Every localizer map on disk, one row per file, sorted (see :data:`LOCALIZER_COLUMNS`)."""
    import pandas as pd

    base = files.path(layout.localizer_prefix(files.subject).rstrip("/"))
    rows = []
    for path in sorted(base.glob("ses-*/func/*_statmap.*")) if base.is_dir() else []:
        fields = layout.parse_localizer_key(path.relative_to(files.root).as_posix())
        if fields is not None and fields["subject"] == files.subject:
            rows.append({**{c: fields.get(c) for c in LOCALIZER_COLUMNS[:-1]}, "path": path})
    table = pd.DataFrame(rows, columns=list(LOCALIZER_COLUMNS))
    return table.astype({"run": "Int64"})


def localizer_path(files: SubjectFiles, task: str, contrast: str, stat: str,
                   session: str | None, run: int | None) -> Path:
    """The ``space-T1w_res-1pt8`` map of one localizer contrast (the betas grid)."""
    table = localizer_table(files)
    hits = table[(table["task"] == task) & (table["contrast"] == contrast) & (table["stat"] == stat)
                 & (table["space"] == layout.SPACE) & (table["res"] == "1pt8")]
    hits = hits[hits["run"].isna()] if run is None else hits[hits["run"] == run]
    if session is not None:
        hits = hits[hits["session"] == session]
    if hits.empty:
        have = sorted({f"{r.task}/{r.contrast}/stat-{r.stat}" for r in table.itertuples()})
        raise DataNotDownloadedError(
            f"No res-1pt8 volume map of localizer task={task!r} contrast={contrast!r} "
            f"stat={stat!r}{'' if run is None else f' run={run}'} of {files.subject} is on disk "
            f"in {files.path(layout.localizer_prefix(files.subject).rstrip('/'))}. On disk: "
            f"{', '.join(have) or 'none'} (see get_localizers())."
        )
    if hits["session"].nunique() > 1:
        raise ValueError(
            f"Localizer {task}/{contrast} of {files.subject} exists in sessions "
            f"{sorted(hits['session'])}; pass session= to pick one."
        )
    return Path(hits["path"].iloc[0])


@fill_doc
class AnatomyMethods:
    """Anatomy, FreeSurfer and localizer methods of :class:`laion_fmri.subject.Subject`."""

    _files: SubjectFiles
    _space: Any

    def get_t1w(self, res: str = "1pt8") -> nib.Nifti1Image:
        """The T1-weighted image of the anatomical folder.

        Parameters
        ----------
        res : {"1pt8", "0pt8"}
            ``1pt8``: the betas grid; ``0pt8``: the FreeSurfer hires grid.

        Returns
        -------
        nibabel.Nifti1Image

        Raises
        ------
        DataNotDownloadedError
            Names the download call (``include_anatomical=True``).
        """
        return anatomical_image(self._files, "T1w", res)

    def get_t2w(self, res: str = "1pt8") -> nib.Nifti1Image:
        """The T2-weighted image of the anatomical folder.

        Parameters
        ----------
        res : {"1pt8", "0pt8"}
            Grid, as for :meth:`get_t1w`.

        Returns
        -------
        nibabel.Nifti1Image
        """
        return anatomical_image(self._files, "T2w", res)

    def get_anatomical_brain_mask(self, res: str = "1pt8") -> nib.Nifti1Image:
        """The anatomical brain mask image (``res="1pt8"`` is the default voxel axis's source).

        Parameters
        ----------
        res : {"1pt8", "0pt8"}
            Grid, as for :meth:`get_t1w`.

        Returns
        -------
        nibabel.Nifti1Image
        """
        return anatomical_image(self._files, "mask", res)

    def get_freesurfer_dir(self) -> Path:
        """The subject's FreeSurfer folder (``mri/``, ``surf/``, ``label/``).

        Returns
        -------
        Path

        Raises
        ------
        DataNotDownloadedError
            Names the download call (``include_freesurfer=True``).
        """
        return freesurfer_dir(self._files)

    def has_freesurfer(self) -> bool:
        """Whether the FreeSurfer reconstruction is on disk.

        Returns
        -------
        bool
        """
        return self._files.path(layout.freesurfer_prefix(self._files.subject).rstrip("/")).is_dir()

    def get_localizers(self) -> pd.DataFrame:
        """Localizer maps on disk, one row per file.

        Returns
        -------
        pandas.DataFrame
            Columns ``task``, ``session``, ``run`` (``<NA>`` for pooled maps),
            ``contrast``, ``stat``, ``space`` (``T1w``/``fsnative``), ``res``,
            ``hemi`` and ``path``.
        """
        return localizer_table(self._files)

    def get_localizer(self, task: str, contrast: str, stat: str = "z", session: str | None = None,
                      run: int | None = None, mask_source: str | None = None) -> np.ndarray:
        """A localizer map on the voxel axis (the ``res-1pt8`` volume, on the betas grid).

        Parameters
        ----------
        task : str
            ``"floc"``, ``"oloc"``, ``"MotionLeft"``, ``"MotionRight"`` or ``"MotionLoc"``.
        contrast : str
            camelCase contrast (``"faceVsOthers"``), or a condition of a per-run ``effect`` map.
        stat : {"z", "effect"}
            Statistic.
        session : str, optional
            Session of the map, when several sessions have it.
        run : int, optional
            Run of a per-run map (``None``: the pooled map).
        %(mask_source)s

        Returns
        -------
        numpy.ndarray
            ``(n_voxels,)`` float32 in voxel order.

        Raises
        ------
        DataNotDownloadedError
            No such map on disk (lists what is).
        CorruptFileError
            The map is not on the betas grid.
        """
        path = localizer_path(self._files, task, contrast, stat, session, run)
        space: VoxelSpace = self._space(mask_source)
        return space.brain.grid_map(path).astype(np.float32)


__all__ = [
    "LOCALIZER_COLUMNS",
    "AnatomyMethods",
    "anatomical_image",
    "freesurfer_dir",
    "localizer_path",
    "localizer_table",
]
