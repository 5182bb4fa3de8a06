"""Human and AI captions by image name."""

from __future__ import annotations

import pandas as pd

from laion_fmri import layout
from laion_fmri.stimuli._names import GroupedTable, unknown

__all__ = ["StimulusCaptions"]


class StimulusCaptions(GroupedTable):
    """Human and AI captions by image name (``caption_idx`` 0 = AI, 1.. = humans ranked).

    Parameters
    ----------
    hub : Stimuli
        The hub whose data directory is read (created by :func:`load_stimuli`).

    Examples
    --------
    >>> load_stimuli().captions.human("shared_12rep_LAION_cluster_1003_i0.jpg", limit=1)  # doctest: +SKIP
    ['A hand holding ...']
    """

    _key = layout.CAPTIONS_KEY
    _columns = layout.CAPTION_COLUMNS
    _what = "captions"

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame["caption"] = frame["caption"].fillna("").astype(str)
        return frame.sort_values(["image_name", "caption_idx"], kind="stable").reset_index(drop=True)

    @property
    def metadata(self) -> pd.DataFrame:
        """The whole caption table (one row per caption)."""
        return super().metadata

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._name_groups()

    def get(self, name: str) -> pd.DataFrame:
        """All captions of one image, sorted by ``caption_idx`` (empty frame if none).

        Parameters
        ----------
        name : str
            Image name.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        StimulusNotFoundError
            If the image name is unknown.

        Examples
        --------
        >>> load_stimuli().captions.get("unique_THINGS_zebra_p04.jpg").caption_idx.tolist()  # doctest: +SKIP
        [0, 1, 2, 3]
        """
        return self._rows(name)

    def human(self, name: str, limit: int | None = None) -> list[str]:
        """Human captions, best-ranked first.

        Parameters
        ----------
        name : str
            Image name.
        limit : int, optional
            Return at most this many.

        Returns
        -------
        list of str
        """
        rows = self.get(name)
        texts = rows.loc[rows["source"] == "human", "caption"].tolist()
        return texts if limit is None else texts[:limit]

    def ai(self, name: str) -> str | None:
        """The AI caption of an image.

        Parameters
        ----------
        name : str
            Image name.

        Returns
        -------
        str or None
            ``None`` when the image has no AI caption (OOD and unique images).
        """
        rows = self.get(name)
        texts = rows.loc[rows["source"] == "ai", "caption"].tolist()
        return texts[0] if texts else None

    def list(self, name: str, source: str | None = None) -> list[str]:
        """Caption texts of one image in ``caption_idx`` order, optionally of one source.

        Parameters
        ----------
        name : str
            Image name.
        source : {"human", "ai"}, optional
            Keep only this source; ``None`` keeps all (the AI caption first).

        Returns
        -------
        list of str
            Empty when the image has no caption of that source.

        Raises
        ------
        StimulusNotFoundError
            If the image name or the source is unknown.

        Examples
        --------
        >>> load_stimuli().captions.list("unique_THINGS_zebra_p04.jpg", source="human")  # doctest: +SKIP
        ['A zebra ...', ...]
        """
        rows = self.get(name)
        if source is None:
            return rows["caption"].tolist()
        sources = sorted({"human", "ai", *map(str, self.metadata["source"].unique())})
        if source not in sources:
            raise unknown("caption source", source, sources, list_all=True)
        return rows.loc[rows["source"] == source, "caption"].tolist()
