"""Small pieces every download entry point shares: the target folder, JSON sidecars."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from laion_fmri import layout
from laion_fmri.config import get_data_dir
from laion_fmri.errors import (
    DataNotFoundError,
)


def _data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    root = Path(get_data_dir(data_dir)).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(
            f"The data directory {root} does not exist. Create it (mkdir -p {root}) and run "
            "`laion-fmri config --data-dir DIR` again."
        )
    return root



def _with_sidecars(keys: Iterable[str]) -> set[str]:
    keys = set(keys)
    return keys | {layout.sidecar_key(k) for k in keys}



__all__: list[str] = []  # private helpers of the download entry points
