"""A subject's raw BIDS runs: events tables, multi-echo BOLD and single-band references.

BOLD runs are large (a 4-D volume per echo and part), so they are streamed
with the betas' reader (:func:`laion_fmri._nifti.read_masked`): one volume at
a time, only the brain-mask voxels kept, the same voxel axis as the betas.
:class:`RawMethods` is the mixin of :class:`laion_fmri.subject.Subject`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri import _nifti, layout
from laion_fmri._docs import fill_doc
from laion_fmri.errors import CorruptFileError, DataNotDownloadedError
from laion_fmri.subject._files import SubjectFiles
from laion_fmri.vocab import normalize_session

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_RUN = re.compile(r"_run-(\d+)_events\.tsv$")


def raw_hint(subject: str, session: str | None = None) -> str:
    """The download call that brings raw runs."""
    ses = f', ses="{session}"' if session else ""
    return f'laion_fmri.download.download_raw(subject="{subject}"{ses})'


def _func_dirs(files: SubjectFiles, session: str | None) -> list[Path]:
    base = files.path(layout.raw_subject_prefix(files.subject).rstrip("/"))
    pattern = f"{session}/func" if session else "ses-*/func"
    return sorted(p for p in base.glob(pattern) if p.is_dir()) if base.is_dir() else []


def has_raw(files: SubjectFiles, session: object = None) -> bool:
    """Whether any raw BOLD run (of ``session``, or of any session) is on disk."""
    ses = None if session is None else normalize_session(session)
    return any(any(d.glob("*_bold.nii*")) for d in _func_dirs(files, ses))


def event_runs(files: SubjectFiles, session: str) -> list[int]:
    """Runs of ``session`` whose events table is on disk, sorted."""
    runs = {int(m.group(1)) for d in _func_dirs(files, session) for p in d.iterdir()
            if (m := _RUN.search(p.name))}
    return sorted(runs)


def events(files: SubjectFiles, session: object, run: int | None) -> pd.DataFrame:
    """One run's events table, or every run's stacked with a ``run`` column."""
    import pandas as pd

    ses = normalize_session(session)
    runs = [run] if run is not None else event_runs(files, ses)
    if not runs:
        raise DataNotDownloadedError(
            f"No raw events tables of {files.subject} {ses} are on disk. Download them with "
            f"`{raw_hint(files.subject, ses)}`."
        )
    frames = []
    for r in runs:
        path = files.path(layout.raw_events_key(files.subject, ses, r))
        if not path.is_file():
            raise DataNotDownloadedError(
                f"The events table of {files.subject} {ses} run {r} is not on disk ({path}). "
                f"Download it with `{raw_hint(files.subject, ses)}`."
            )
        table = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a", ""])
        frames.append(table if run is not None else table.assign(run=r))
    return frames[0] if run is not None else pd.concat(frames, ignore_index=True)


def raw_image_path(files: SubjectFiles, session: object, run: int, echo: int, part: str,
                   suffix: str) -> Path:
    """The raw BOLD or sbref file, or an error naming the download."""
    ses = normalize_session(session)
    path = files.path(layout.raw_image_key(files.subject, ses, run, echo, part, suffix))
    if not path.is_file():
        raise DataNotDownloadedError(
            f"The raw {suffix} of {files.subject} {ses} run {run} echo {echo} ({part}) is not on "
            f"disk ({path}). Download it with `{raw_hint(files.subject, ses)}` (run={run}, "
            f"echo={echo}, part={part!r} narrow it)."
        )
    return path


def read_masked_run(path: Path, brain: Any) -> np.ndarray:
    """``(n_volumes, n_voxels)`` float32 of a raw image on the betas grid, streamed."""
    header = _nifti.read_header(path)
    if header.grid_shape != brain.grid_shape or not np.allclose(header.affine, brain.affine,
                                                                atol=1e-3):
        raise CorruptFileError(
            f"{path.name} is on grid {header.grid_shape}, not the betas grid {brain.grid_shape} "
            "its brain mask is defined on; laion_fmri does not resample raw runs."
        )
    return _nifti.read_masked(path, brain.offsets, header=header)


@fill_doc
class RawMethods:
    """Raw BIDS methods of :class:`laion_fmri.subject.Subject`."""

    _files: SubjectFiles
    _space: Any

    def has_raw(self, session: object = None) -> bool:
        """Whether raw BOLD runs are on disk (for ``session``, or for any session).

        Parameters
        ----------
        session : str or int, optional
            One session (``"ses-01"``, ``1``).

        Returns
        -------
        bool
        """
        return has_raw(self._files, session)

    def get_events(self, session: object, run: int | None = None) -> pd.DataFrame:
        """BIDS events of a raw run; all runs (with a ``run`` column) when ``run`` is ``None``.

        Parameters
        ----------
        session : str or int
            One session.
        run : int, optional
            Run number.

        Returns
        -------
        pandas.DataFrame
            ``onset``, ``duration``, ``trial_type``, ... (+ ``run`` for all runs).

        Raises
        ------
        DataNotDownloadedError
            Names the ``download_raw`` call.
        """
        return events(self._files, session, run)

    def get_raw_bold(self, session: object, run: int, echo: int, part: str = "mag",
                     mask_source: str | None = None) -> np.ndarray:
        """One raw BOLD run masked like the betas, streamed volume by volume.

        Parameters
        ----------
        session : str or int
            One session.
        run : int
            Run number.
        echo : {1, 2, 3}
            Echo.
        part : {"mag", "phase"}
            Magnitude or phase.
        %(mask_source)s

        Returns
        -------
        numpy.ndarray
            ``(n_volumes, n_voxels)`` float32, columns in voxel order.

        Raises
        ------
        DataNotDownloadedError
            Names the ``download_raw`` call.
        CorruptFileError
            The run is not on the betas grid.
        """
        path = raw_image_path(self._files, session, run, echo, part, "bold")
        return read_masked_run(path, self._space(mask_source).brain.get())

    def get_sbref(self, session: object, run: int, echo: int, part: str = "mag",
                  mask_source: str | None = None) -> np.ndarray:
        """The single-band reference of a raw run, masked like the betas.

        Parameters
        ----------
        session : str or int
            One session.
        run : int
            Run number.
        echo : {1, 2, 3}
            Echo.
        part : {"mag", "phase"}
            Magnitude or phase.
        %(mask_source)s

        Returns
        -------
        numpy.ndarray
            ``(n_voxels,)`` float32.
        """
        path = raw_image_path(self._files, session, run, echo, part, "sbref")
        return read_masked_run(path, self._space(mask_source).brain.get())[0]


__all__ = ["RawMethods", "event_runs", "events", "has_raw", "raw_hint", "raw_image_path",
           "read_masked_run"]
