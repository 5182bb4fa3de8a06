"""One subject's data on disk: betas, trials, ROIs, noise ceilings, brain space.

:class:`Subject` is the front door (:func:`load_subject` opens one); its
parts each do one job in a private module of this package:

* ``_sessions``: which sessions are on disk, what ``session=`` names;
* ``_brain``: the voxel axis (brain mask of a ``mask_source``), coordinates,
  NIfTI output; ``_voxels``: one set of voxel-axis parts per mask source;
* ``_trials``: trial tables, ``metadata``, the rows-match-volumes check;
* ``_selection``: the frozen :class:`Selection` a read covers;
* ``_rois``, ``_noise``: ROI masks and noise-ceiling maps;
* ``_read``: trial filters, repeat averaging and the lazy dask stack over
  the one betas reader, :class:`laion_fmri.betas.SessionBetas`;
* ``_anatomy``, ``_raw``: anatomical images, FreeSurfer, localizer maps and
  raw BIDS runs (streamed onto the same voxel axis);
* ``_roi_methods``, ``_adapters``, ``_stimulus_methods``: method groups of
  :class:`Subject` (ROIs; splits/torch/xarray/templates; the reference
  package's stimulus names), kept out of the class body.
"""

from __future__ import annotations

from laion_fmri.subject._read import AVERAGE_MODES, load_session_betas
from laion_fmri.subject._selection import Selection
from laion_fmri.subject._subject import Subject, load_subject
from laion_fmri.subject._trials import STIMULI_FILTERS

__all__ = [
    "AVERAGE_MODES",
    "STIMULI_FILTERS",
    "Selection",
    "Subject",
    "load_session_betas",
    "load_subject",
]
