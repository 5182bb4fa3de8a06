"""Image-name lookups shared by the namespaces, and the namespace base classes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from laion_fmri.errors import StimulusNotFoundError
from laion_fmri.stimuli._files import LazyH5, read_csv
from laion_fmri.vocab import suggest

__all__ = ["GroupedTable", "HubLike", "Namespace", "as_name_list", "indexer", "unknown"]


class HubLike(Protocol):
    """What a namespace needs from the hub (:class:`laion_fmri.stimuli.Stimuli`)."""

    data_dir: Path

    @property
    def metadata(self) -> pd.DataFrame: ...

    def _path(self, key: str) -> Path: ...

    def _name_index(self) -> pd.Index: ...

    def _check_known(self, name: object) -> None: ...


def unknown(kind: str, value: object, valid: Sequence[str], list_all: bool = False) -> StimulusNotFoundError:
    """The error for a name not in ``valid``: what was asked, what exists, close matches."""
    listing = f"Valid: {', '.join(map(str, valid))}." if list_all else f"({len(valid)} known.)"
    return StimulusNotFoundError(f"Unknown {kind} {value!r}. {listing}{suggest(value, valid)}")


def as_name_list(names: str | Iterable[str]) -> tuple[list[str], bool]:
    """Return ``(names, single)``; ``single`` when one string was given."""
    if isinstance(names, str):
        return [names], True
    if isinstance(names, bytes):
        raise TypeError("Image names must be str, not bytes.")
    out = list(names)
    for n in out:
        if not isinstance(n, str):
            raise TypeError(f"Image names must be str, got {type(n).__name__} ({n!r}).")
    return out, False


def indexer(index: pd.Index, names: list[str], kind: str = "image name") -> np.ndarray:
    """Vectorised name -> row lookup; unknown names raise with close matches."""
    pos = index.get_indexer(names)
    bad = np.flatnonzero(pos < 0)
    if bad.size:
        first = names[int(bad[0])]
        err = unknown(kind, first, index.tolist())
        if bad.size > 1:
            err = StimulusNotFoundError(
                f"{err} ({bad.size} of the {len(names)} requested names are unknown.)"
            )
        raise err
    return pos.astype(np.intp, copy=False)


class Namespace:
    """Base of the hub namespaces: state is rebuilt lazily, never pickled."""

    def __init__(self, hub: HubLike) -> None:
        self._hub = hub
        self._reset()

    def _reset(self) -> None:  # pragma: no cover - overridden
        pass

    def close(self) -> None:
        """Close open HDF5 handles (they reopen on next use)."""
        for value in vars(self).values():
            if isinstance(value, LazyH5):
                value.close()
            elif isinstance(value, dict):
                for item in value.values():
                    if isinstance(item, LazyH5):
                        item.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"_hub": self._hub}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._hub = state["_hub"]
        self._reset()


class GroupedTable(Namespace):
    """A namespace over one CSV table whose rows are grouped by ``image_name``."""

    _key: str
    _columns: tuple[str, ...]
    _what: str

    def _reset(self) -> None:
        self._frame: pd.DataFrame | None = None
        self._groups: dict[str, np.ndarray] | None = None

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - overridden
        return frame

    @property
    def metadata(self) -> pd.DataFrame:
        """The whole table, read on first use."""
        if self._frame is None:
            frame = self._prepare(read_csv(self._hub._path(self._key), self._columns, self._what))
            self._groups = frame.groupby("image_name", sort=False).indices
            self._frame = frame
        return self._frame

    def __len__(self) -> int:
        return len(self.metadata)

    def _name_groups(self) -> dict[str, np.ndarray]:
        self.metadata  # noqa: B018 - loads the table and its groups
        return self._groups  # type: ignore[return-value]

    def images(self) -> list[str]:
        """Names of the images that have at least one row.

        Returns
        -------
        list of str
        """
        return list(self._name_groups())

    def _rows(self, name: str) -> pd.DataFrame:
        """Rows of one image (empty frame for a known image without rows)."""
        frame = self.metadata
        rows = self._groups.get(name)  # type: ignore[union-attr]
        if rows is None:
            self._hub._check_known(name)
            return frame.iloc[0:0]
        return frame.iloc[rows].reset_index(drop=True)
