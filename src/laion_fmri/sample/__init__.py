"""Deterministic synthetic sample dataset in the exact bucket key layout.

Used by the tests (``tiny``), the demo (``small``) and the benchmarks
(``full-grid``). See :class:`SampleSpec` for what each scale contains.

Examples
--------
>>> from laion_fmri.sample import spec_for
>>> spec_for("tiny").held_out_sessions
('ses-31',)
"""

from laion_fmri.sample.generator import ensure_sample_dataset, make_sample_dataset, sample_info
from laion_fmri.sample.spec import SCALES, SPEC_VERSION, SampleSpec, real_image_names, spec_for

__all__ = [
    "SCALES",
    "SPEC_VERSION",
    "SampleSpec",
    "ensure_sample_dataset",
    "make_sample_dataset",
    "real_image_names",
    "sample_info",
    "spec_for",
]
