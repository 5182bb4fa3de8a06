"""The ``[templates]`` extra: a clear error naming it when a package is missing."""

from __future__ import annotations

import importlib.util

from laion_fmri.errors import MissingDependencyError

EXTRA = "templates"


def require(*packages: str) -> None:
    """Raise :class:`MissingDependencyError` naming the extra if a package is absent.

    Parameters
    ----------
    *packages : str
        Importable package names (``"scipy"``, ``"nilearn"``, ...).

    Raises
    ------
    MissingDependencyError
        ``pip install 'laion-fmri[templates]'`` in the message.

    Examples
    --------
    >>> require("numpy")
    """
    for name in packages:
        if importlib.util.find_spec(name) is None:
            raise MissingDependencyError(name, EXTRA)


__all__ = [
    "EXTRA",
    "require",
]
