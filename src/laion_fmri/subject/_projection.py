"""``get_betas(space=...)``: betas of a :class:`Selection` moved to a template space.

A thin edge over :func:`laion_fmri.templates.project_betas` (the ``templates``
extra), imported only when a template space is asked for.
"""

from __future__ import annotations

from typing import Any

from laion_fmri.subject._selection import Selection


def project_selection(subject: Any, betas: Any, selection: Selection, space: str,
                      hemi: str | None) -> Any:
    """``betas`` (``{session: array}`` or a dask array) projected to ``space``.

    Each session is projected with its own voxel selection (a per-session
    ``nc_threshold`` keeps different voxels); voxels outside count as 0.
    """
    from laion_fmri.templates import project_betas

    def one(values: Any, session: str | None) -> Any:
        return project_betas(subject, values, space, hemi=hemi,
                             selection=selection.voxels_for(session),
                             mask_source=selection.mask_source)

    if isinstance(betas, dict):
        return {s: one(values, s) for s, values in betas.items()}
    return one(betas, None)


__all__ = ["project_selection"]
