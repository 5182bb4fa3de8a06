"""Template and surface space: betas on fsaverage (5/6/7) or MNI305.

Needs the optional extra ``pip install 'laion-fmri[templates]'`` (scipy for the
matrices; nilearn and nitransforms for the reference route; templateflow to
fetch fsaverage spheres). See ``docs/templates.md``.

The fsaverage route is the reference chain (``nilearn.surface.vol_to_surf``
then ``nitransforms`` ``SurfaceResampler``) collapsed into one sparse matrix
per subject, hemisphere and setting, cached on disk; MNI305 is a precomputed
nearest-neighbour index map through ``talairach.lta``.
"""

from laion_fmri.templates._mni import MNI305_AFFINE, MNI305_SHAPE
from laion_fmri.templates.api import (
    project_betas,
    projection_matrices,
    surface_to_template,
    to_template,
    volume_to_surface,
    volume_to_template,
)

__all__ = [
    "MNI305_AFFINE",
    "MNI305_SHAPE",
    "project_betas",
    "projection_matrices",
    "surface_to_template",
    "to_template",
    "volume_to_surface",
    "volume_to_template",
]
