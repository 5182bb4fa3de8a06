"""Several subjects at once: :func:`load_subjects` and :class:`Group`."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri import layout
from laion_fmri._docs import fill_doc
from laion_fmri.config import get_data_dir
from laion_fmri.errors import DataNotDownloadedError
from laion_fmri.subject import Subject, load_subject

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class Group:
    """An ordered set of subjects (sorted by id).

    Parameters
    ----------
    subjects : sequence of Subject
        The members.

    Notes
    -----
    ``len(group)``, ``group[0]`` (position in sorted ids), ``group["sub-03"]``
    and iteration over ``(subject_id, Subject)`` pairs are supported.

    Examples
    --------
    >>> group = load_subjects("all")  # doctest: +SKIP
    >>> [sid for sid, _ in group]  # doctest: +SKIP
    ['sub-01', 'sub-03']
    """

    def __init__(self, subjects: Sequence[Subject]) -> None:
        self._subjects = {s.subject_id: s for s in sorted(subjects, key=lambda s: s.subject_id)}

    def __len__(self) -> int:
        return len(self._subjects)

    def __iter__(self) -> Iterator[tuple[str, Subject]]:
        return iter(list(self._subjects.items()))

    def __getitem__(self, key: int | str) -> Subject:
        if isinstance(key, bool):
            raise TypeError("Index a Group with an int position or a subject id string.")
        if isinstance(key, (int, np.integer)):
            return list(self._subjects.values())[int(key)]
        if isinstance(key, str):
            sid = layout.normalize_subject(key) if key not in self._subjects else key
            if sid not in self._subjects:
                raise KeyError(f"{sid} is not in this group ({', '.join(self._subjects)}).")
            return self._subjects[sid]
        raise TypeError(f"Index a Group with an int or a subject id, not {type(key).__name__}.")

    def __repr__(self) -> str:
        return f"Group({list(self._subjects)})"

    @property
    def subject_ids(self) -> list[str]:
        """Sorted subject ids."""
        return list(self._subjects)

    def get_shared_betas(
        self,
        session: object,
        roi: str | Sequence[str] | None = None,
        mask: np.ndarray | None = None,
        nc_threshold: float | None = None,
        mask_source: str | None = None,
    ) -> dict[str, object]:
        """Betas of the shared-image trials for every subject.

        Parameters
        ----------
        session, roi, mask, nc_threshold, mask_source
            As in :meth:`laion_fmri.subject.Subject.get_betas` (``mask`` is per
            subject, so it only makes sense for a one-subject group or the same grid).

        Returns
        -------
        dict
            ``{subject_id: betas}`` (each a dict for a session list).

        Examples
        --------
        >>> load_subjects("all").get_shared_betas("ses-01", roi="face")  # doctest: +SKIP
        """
        return {
            sid: sub.get_betas(
                session, roi=roi, mask=mask, nc_threshold=nc_threshold, stimuli="shared",
                mask_source=mask_source,
            )
            for sid, sub in self
        }

    def _shared_names(self) -> list[str]:
        """Shared images every member saw, in the first member's stimulus order."""
        from laion_fmri.subject._stimulus_methods import stimulus_names

        per = [stimulus_names(sub.metadata, "shared") for _, sub in self]
        common = set.intersection(*(set(p) for p in per)) if per else set()
        return [n for n in (per[0] if per else []) if n in common]

    def get_shared_stimulus_metadata(self) -> pd.DataFrame:
        """Metadata of the shared images every member saw (the rows of :meth:`get_shared_images`).

        Returns
        -------
        pandas.DataFrame
            Stimulus table rows plus ``stimulus_id``, index ``0..n-1``.

        Raises
        ------
        StimuliNotDownloadedError
            The stimulus metadata is not downloaded.
        """
        from laion_fmri.stimuli import load_stimuli

        table = load_stimuli(next(iter(self))[1].data_dir).metadata
        rows = table.set_index("image_name", drop=False).loc[self._shared_names()]
        rows = rows.reset_index(drop=True)
        return rows.assign(stimulus_id=rows["image_name"].astype(str))

    def get_shared_images(self, format: str = "pil") -> Any:
        """The shared images every member saw, as for ``Subject.get_images``.

        Parameters
        ----------
        format : {"pil", "numpy", "torch"}
            List of PIL images, ``(N, H, W, 3)`` uint8, or ``(N, 3, H, W)`` float32 in [0, 1].

        Returns
        -------
        list or numpy.ndarray or torch.Tensor

        Raises
        ------
        StimuliNotDownloadedError
            The images are not downloaded.
        """
        from laion_fmri.stimuli import load_stimuli
        from laion_fmri.subject._stimulus_methods import IMAGE_FORMATS, images_as

        if format not in IMAGE_FORMATS:
            raise ValueError(f"format must be one of {IMAGE_FORMATS}, not {format!r}.")
        hub = load_stimuli(next(iter(self))[1].data_dir)
        return images_as([hub.images.get(n) for n in self._shared_names()], format)


def downloaded_subjects(data_dir: str | os.PathLike[str]) -> list[str]:
    """Subjects with a GLMsingle folder on disk, sorted.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Local data directory.

    Returns
    -------
    list of str

    Examples
    --------
    >>> downloaded_subjects("/data")  # doctest: +SKIP
    ['sub-01', 'sub-03']
    """
    root = Path(data_dir)
    return [s for s in layout.SUBJECTS if (root / layout.subject_glm_prefix(s)).is_dir()]


@fill_doc
def load_subjects(
    subjects: str | Sequence[object], data_dir: str | os.PathLike[str] | None = None
) -> Group:
    """Open several downloaded subjects.

    Parameters
    ----------
    subjects : "all" or list
        ``"all"`` = every subject on disk; otherwise ids as accepted by
        :func:`laion_fmri.subject.load_subject`.
    %(data_dir)s

    Returns
    -------
    Group

    Raises
    ------
    DataNotDownloadedError
        ``"all"`` with no subject on disk, or a listed subject missing.

    Examples
    --------
    >>> group = load_subjects(["sub-01", 3])  # doctest: +SKIP
    >>> len(group)  # doctest: +SKIP
    2
    """
    root = get_data_dir(data_dir)
    if isinstance(subjects, str) and subjects == "all":
        ids: Sequence[object] = downloaded_subjects(root)
        if not ids:
            raise DataNotDownloadedError(
                f"No subject is downloaded in {root}. Download one with "
                '`laion_fmri.download.download(subject="sub-03")` or all with '
                '`laion_fmri.download.download(subject="all")`.'
            )
    elif isinstance(subjects, (str, int)):
        ids = [subjects]
    else:
        ids = list(subjects)
    return Group([load_subject(s, root) for s in ids])


__all__ = ["Group", "downloaded_subjects", "load_subjects"]
