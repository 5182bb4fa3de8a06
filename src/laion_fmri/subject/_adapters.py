"""Subject methods that hand the subject to an adapter: splits, torch, xarray, templates.

A mixin of :class:`laion_fmri.subject.Subject`; each method imports its
adapter inside, so the adapters never import the subject package.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from laion_fmri._docs import fill_doc

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import xarray

    from laion_fmri.alignment import (
        SubjectCaptions,
        SubjectEmbeddings,
        SubjectImages,
        SubjectSegmentations,
    )
    from laion_fmri.torch import SubjectDataset


def _namespace(cls_name: str, doc: str) -> Any:
    """A property building ``laion_fmri.alignment.<cls_name>(subject)`` on access."""

    def get(sub: Any) -> Any:
        import laion_fmri.alignment

        return getattr(laion_fmri.alignment, cls_name)(sub)

    get.__doc__ = f"{doc} (:class:`laion_fmri.alignment.{cls_name}`)."
    return property(get)


@fill_doc
class AdapterMethods:
    """Namespaces and adapter wrappers of :class:`laion_fmri.subject.Subject`."""

    images: SubjectImages = _namespace("SubjectImages", "Stimulus images by global trial index")
    embeddings: SubjectEmbeddings = _namespace("SubjectEmbeddings", "Embeddings by global trial index")
    captions: SubjectCaptions = _namespace("SubjectCaptions", "Captions by global trial index")
    segmentations: SubjectSegmentations = _namespace("SubjectSegmentations", "Object masks by trial")

    def get_split(self, name: str, *args: Any, **kwargs: Any
                  ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.DataFrame]:
        """Published train/test split ``(X_train, X_test, trials_train, trials_test)``.

        Parameters
        ----------
        name : str
            Split name, e.g. ``"tau"``.
        *args, **kwargs
            ``pool``, ``session``, ``roi``, ... as for :func:`laion_fmri.splits.subject_split`.

        Returns
        -------
        tuple
            What :func:`laion_fmri.splits.subject_split` returns.
        """
        from laion_fmri.splits._subject import subject_split

        return subject_split(self, name, *args, **kwargs)

    def to_torch_dataset(self, **kwargs: Any) -> SubjectDataset:
        """A PyTorch dataset over this subject (:class:`laion_fmri.torch.SubjectDataset`).

        Parameters
        ----------
        **kwargs
            ``session``, ``roi``, ``features``, ... as for the dataset.

        Returns
        -------
        laion_fmri.torch.SubjectDataset
        """
        from laion_fmri.torch import SubjectDataset

        return SubjectDataset(self, **kwargs)

    def to_xarray(self, **kwargs: Any) -> xarray.DataArray:
        """Betas as a ``(trial, voxel)`` ``xarray.DataArray`` (:func:`laion_fmri.xr.to_xarray`).

        Parameters
        ----------
        **kwargs
            ``session``, ``roi``, ``lazy``, ... as for :func:`laion_fmri.xr.to_xarray`.

        Returns
        -------
        xarray.DataArray
        """
        from laion_fmri.xr import to_xarray

        return to_xarray(self, **kwargs)

    def to_template(self, values: Any, target: str, *, hemi: str | None = None,
                    route: str = "auto", surface: str = "white",
                    fsaverage_density: str = "fsaverage5", interpolation: str = "linear",
                    output_dir: str | os.PathLike[str] | None = None, desc: str | None = None,
                    session: str | None = None, mask_source: str = "anatomical") -> Any:
        """Values over the brain mask in a template space (:func:`laion_fmri.templates.to_template`).

        Parameters
        ----------
        values : numpy.ndarray or str or os.PathLike
            ``(n_voxels,)``, ``(n_samples, n_voxels)`` over the brain mask, or a NIfTI path.
        target : {"fsaverage", "fsaverage5", "fsaverage6", "fsaverage7", "MNI305"}
            Template space.
        hemi : {"L", "R"}, optional
            One hemisphere of a surface target (default both).
        route, surface, fsaverage_density, interpolation, output_dir, desc, session
            As for :func:`laion_fmri.templates.to_template`.
        %(mask_source)s

        Returns
        -------
        dict or nibabel.Nifti1Image
            ``{"L": ..., "R": ...}`` for surfaces, an image for ``MNI305``.
        """
        from laion_fmri.templates import to_template

        return to_template(self, values, target, hemi=hemi, route=route, surface=surface,
                           fsaverage_density=fsaverage_density, interpolation=interpolation,
                           output_dir=output_dir, desc=desc, session=session,
                           mask_source=mask_source)


__all__ = ["AdapterMethods"]
