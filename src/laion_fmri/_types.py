"""Type aliases and the protocol the adapters program against.

The torch, xarray and splits adapters take "a subject" typed as
:class:`SubjectLike`, so they never import :mod:`laion_fmri.subject` and
``Subject`` can offer thin typed wrappers over them without an import cycle.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from laion_fmri.betas import SessionBetas
    from laion_fmri.subject._selection import Selection

#: One session: ``"ses-01"``, ``"01"`` or ``1``.
OneSession: TypeAlias = "str | int | np.integer"
#: A ``session=`` argument: one session, a list of them, or ``"all"``.
SessionArg: TypeAlias = "str | int | Sequence[str | int]"
#: A ``roi=`` argument: a name, category, ``"all"`` or a list of them.
RoiArg: TypeAlias = "str | Sequence[str] | None"
PathArg: TypeAlias = "str | os.PathLike[str]"


class SubjectLike(Protocol):
    """What the adapters use of a subject (:class:`laion_fmri.subject.Subject` has it all)."""

    @property
    def subject_id(self) -> str: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def metadata(self) -> pd.DataFrame: ...

    def get_betas_reader(self, mask_source: str | None = None) -> SessionBetas: ...

    @property
    def affine(self) -> np.ndarray: ...

    def select(
        self,
        session: object = "all",
        roi: Any = None,
        mask: Any = None,
        nc_threshold: float | None = None,
        one_voxel_set: bool = False,
        mask_source: str | None = None,
    ) -> Selection: ...

    def get_betas(self, session: Any, *args: Any, **kwargs: Any) -> Any: ...

    @property
    def grid_shape(self) -> tuple[int, int, int]: ...

    def get_brain_mask(self, source: str | None = None) -> np.ndarray: ...


__all__ = ["OneSession", "PathArg", "RoiArg", "SessionArg", "SubjectLike"]
