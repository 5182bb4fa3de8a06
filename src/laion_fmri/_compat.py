"""Deprecated module names that still import: ``laion_fmri.nifti`` is ``laion_fmri._nifti``.

Internals became private modules; code that imported them by their old
public name keeps working (the very same module object, so monkeypatching it
still reaches the real code) and gets a :class:`DeprecationWarning` once.
No file stands at an old path, so the API reference lists only the modules
meant for users.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

#: Old public module name -> its private home.
MOVED: dict[str, str] = {
    "laion_fmri.nifti": "laion_fmri._nifti",
    "laion_fmri.cache": "laion_fmri._cache",
    "laion_fmri.rois": "laion_fmri._rois",
    "laion_fmri.demo": "laion_fmri._demo",
    "laion_fmri.splits.api": "laion_fmri.splits._api",
    "laion_fmri.splits.model": "laion_fmri.splits._model",
    "laion_fmri.splits.subject": "laion_fmri.splits._subject",
}


class _MovedModuleFinder:
    """Imports an old module name as the module it moved to.

    A meta path finder and loader by protocol (``find_spec``,
    ``create_module``, ``exec_module``); not derived from ``importlib.abc``,
    whose import pulls in ``importlib.resources`` at every start.
    """

    def __init__(self) -> None:
        self._real_specs: dict[int, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} is internal and moved to {new}; import the public API instead "
            "(see the API reference). The old name will be removed.",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        self._real_specs[id(module)] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the alias spec on the real module; give its own back.
        real = self._real_specs.pop(id(module), None)
        if real is not None:
            module.__spec__ = real


def install() -> None:
    """Register the finder (once)."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())


__all__ = ["MOVED", "install"]
