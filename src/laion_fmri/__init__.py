"""laion_fmri: the data layer for the LAION-fMRI 7T dataset.

Configure once (:func:`laion_fmri.config.dataset_initialize`), discover
(:mod:`laion_fmri.discovery`), download (:mod:`laion_fmri.download`), load a
subject (:func:`load_subject`), align stimuli (:func:`load_stimuli`) and apply
the published splits (:mod:`laion_fmri.splits`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from laion_fmri import _compat

__version__ = "0.2.0"

# Heavy modules load on first use so `import laion_fmri` and the CLI stay fast.
_LAZY = {
    "load_subject": ("laion_fmri.subject", "load_subject"),
    "Subject": ("laion_fmri.subject", "Subject"),
    "load_subjects": ("laion_fmri.group", "load_subjects"),
    "load_stimuli": ("laion_fmri.stimuli", "load_stimuli"),
    "Stimuli": ("laion_fmri.stimuli", "Stimuli"),
    "load_embeddings": ("laion_fmri.stimuli", "load_embeddings"),
    "Embeddings": ("laion_fmri.stimuli", "Embeddings"),
    "Captions": ("laion_fmri.stimuli", "Captions"),
    "Segmentations": ("laion_fmri.stimuli", "Segmentations"),
    "download_stimuli": ("laion_fmri.download", "download_stimuli"),
    "download_embeddings": ("laion_fmri.download", "download_embeddings"),
    "download_segmentations": ("laion_fmri.download", "download_segmentations"),
    "download_captions": ("laion_fmri.download", "download_captions"),
    "make_sample_dataset": ("laion_fmri.sample", "make_sample_dataset"),
    "request_stimulus_access": ("laion_fmri.access", "request_stimulus_access"),
}

if TYPE_CHECKING:  # pragma: no cover - so IDEs and type checkers see every lazy name
    from laion_fmri.access import request_stimulus_access
    from laion_fmri.download import (
        download_captions,
        download_embeddings,
        download_segmentations,
        download_stimuli,
    )
    from laion_fmri.group import load_subjects
    from laion_fmri.sample import make_sample_dataset
    from laion_fmri.stimuli import Captions, Embeddings, Segmentations, Stimuli, load_embeddings, load_stimuli
    from laion_fmri.subject import Subject, load_subject

# Old public names of modules that became private still import (with a warning).
_compat.install()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'laion_fmri' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [  # noqa: RUF022 - the version first, then the lazy names in _LAZY's order
    "__version__",
    "load_subject",
    "Subject",
    "load_subjects",
    "load_stimuli",
    "Stimuli",
    "load_embeddings",
    "Embeddings",
    "Captions",
    "Segmentations",
    "download_stimuli",
    "download_embeddings",
    "download_segmentations",
    "download_captions",
    "make_sample_dataset",
    "request_stimulus_access",
]
