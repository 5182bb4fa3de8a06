"""The stimulus hub: images, metadata, embeddings, captions and segmentations by name.

:func:`load_stimuli` returns a :class:`Stimuli` object whose namespaces read
the files under ``<data_dir>/stimuli/`` (names from :mod:`laion_fmri.layout`):

``metadata``
    ``task-images_metadata.csv``, one row per image; row ``i`` is element ``i``
    of the image HDF5.
``images``
    ``task-images_stimuli.h5`` (dataset ``images``: JPEG bytes per row).
``embeddings``
    ``task-images_desc-<MODEL>_embeddings.h5`` (``embedding``, ``image_ids``,
    ``valid``), joined to image names by name, never by position.
``captions``
    ``task-images_desc-captions.csv`` (long format).
``segmentations``
    ``task-images_desc-segmentations.h5`` (``masks``) and its metadata CSV.

Nothing is opened until first use. HDF5 handles are opened once per process
(the process id is stored with the handle, so a forked or spawned PyTorch
``DataLoader`` worker opens its own) and are never pickled.

The package's rooms: ``_files`` (download hints, CSV tables, bounded HDF5
handles), ``_names`` (name lookups, namespace bases), ``_images``,
``_embeddings``, ``_captions``, ``_segmentations`` (one namespace each),
``_hub`` (:class:`Stimuli`) and ``_standalone`` (the hub-less classes).
"""

from __future__ import annotations

from laion_fmri.stimuli._captions import StimulusCaptions
from laion_fmri.stimuli._embeddings import StimulusEmbeddings
from laion_fmri.stimuli._hub import Stimuli, load_stimuli
from laion_fmri.stimuli._images import StimulusImages, decode_image
from laion_fmri.stimuli._segmentations import StimulusSegmentations
from laion_fmri.stimuli._standalone import Captions, Embeddings, Segmentations, load_embeddings

__all__ = [
    "Captions",
    "Embeddings",
    "Segmentations",
    "Stimuli",
    "StimulusCaptions",
    "StimulusEmbeddings",
    "StimulusImages",
    "StimulusSegmentations",
    "decode_image",
    "load_embeddings",
    "load_stimuli",
]
