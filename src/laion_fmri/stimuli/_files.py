"""Finding and opening the stimulus files: download hints, CSV tables, bounded HDF5 handles.

Every HDF5 dataset is checked against what the stimulus files can hold before
anything is read from it; a handle is opened once per process and never pickled.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from laion_fmri import layout
from laion_fmri._tables import check_table
from laion_fmri.errors import CorruptFileError, StimuliNotDownloadedError

__all__ = [
    "MAX_EMBEDDING_DIM",
    "MAX_MASK_SIDE",
    "MAX_STIMULUS_ROWS",
    "LazyH5",
    "check_embedding_h5",
    "check_images_h5",
    "check_masks_h5",
    "read_csv",
    "require",
]

# What the stimulus files can hold, with a margin (25,052 images, 24,011 masks of
# 1000x1000, embeddings of at most 1152 dimensions). A dataset declared beyond
# these bounds, or larger than its stored bytes can expand to, is refused before
# anything is read from it.
MAX_STIMULUS_ROWS = 1 << 17
MAX_EMBEDDING_DIM = 8192
MAX_MASK_SIDE = 4096
_MAX_ITEMSIZE = 1024  # fixed-length image-id strings
_MAX_CHUNK_BYTES = 64 << 20
_MAX_EXPANSION = 1032  # deflate's largest ratio


def _download_hint(what: str) -> str:
    if what in layout.EMBEDDING_MODELS:
        return f"laion_fmri.download.download_embeddings(models=[{what!r}])"
    return {
        "images": "laion_fmri.download.download_stimuli()",
        "metadata": "laion_fmri.download.download_stimuli()",
        "captions": "laion_fmri.download.download_captions()",
        "segmentations": "laion_fmri.download.download_segmentations()",
    }[what]


def require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise StimuliNotDownloadedError(
            f"The stimulus {what} file {path} is not downloaded. Fetch it with "
            f"`{_download_hint(what)}`."
        )
    return path


def read_csv(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    require(path, what)
    check_table(path, ",")
    try:
        frame = pd.read_csv(path, dtype={"image_name": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CorruptFileError(f"Cannot parse {path} as CSV ({exc}). Delete it and download again.") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CorruptFileError(
            f"{path} lacks the column(s) {', '.join(missing)} (has {', '.join(map(str, frame.columns))}). "
            "Delete it and download it again."
        )
    if frame["image_name"].isna().any():
        raise CorruptFileError(f"{path} has rows without an image_name. Delete it and download again.")
    return frame



class LazyH5:
    """An HDF5 file opened read-only on first use, once per process, never pickled."""

    def __init__(self, path: Path, what: str, check: Callable[[h5py.File, Path], None]) -> None:
        self.path = path
        self.what = what
        self.check = check
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def get(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = None  # a handle inherited through fork belongs to the parent
            require(self.path, self.what)
            try:
                handle = h5py.File(self.path, "r")
            except OSError as exc:
                raise CorruptFileError(
                    f"{self.path} is not a readable HDF5 file ({exc}). Delete it and run "
                    f"`{_download_hint(self.what)}` again."
                ) from exc
            try:
                self.check(handle, self.path)
            except BaseException:
                handle.close()
                raise
            self._file, self._pid = handle, os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "what": self.what, "check": self.check, "_file": None, "_pid": None}


def _dataset(handle: h5py.File, name: str, path: Path) -> h5py.Dataset:
    obj = handle.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise CorruptFileError(f"{path} has no HDF5 dataset {name!r}. Delete it and download it again.")
    return obj


def _check_bounds(ds: h5py.Dataset, path: Path, limits: Sequence[int]) -> None:
    """Refuse a dataset whose declared size is beyond the dataset's bounds or its stored bytes."""
    problem = None
    name = ds.name.lstrip("/")
    if ds.ndim != len(limits):
        return  # the shape checks below report it
    if any(n > limit for n, limit in zip(ds.shape, limits, strict=True)):
        problem = f"declares shape {ds.shape}, beyond what this dataset can hold ({tuple(limits)})"
    elif ds.dtype.itemsize > _MAX_ITEMSIZE:
        problem = f"declares {ds.dtype.itemsize}-byte elements"
    elif ds.chunks is not None and int(np.prod(ds.chunks)) * ds.dtype.itemsize > _MAX_CHUNK_BYTES:
        problem = f"uses chunks of {ds.chunks} elements, over {_MAX_CHUNK_BYTES >> 20} MB each"
    elif h5py.check_vlen_dtype(ds.dtype) is None:
        declared = int(np.prod(ds.shape, dtype=np.int64)) * ds.dtype.itemsize
        stored = ds.id.get_storage_size()
        if declared > stored * _MAX_EXPANSION + (1 << 20):
            problem = (
                f"declares {declared:,} bytes of data but stores only {stored:,} bytes, "
                "which cannot expand to that"
            )
    if problem:
        raise CorruptFileError(
            f"{path}: dataset {name!r} {problem}. Delete it and download it again."
        )


def check_images_h5(handle: h5py.File, path: Path) -> None:
    ds = _dataset(handle, layout.H5_IMAGES, path)
    _check_bounds(ds, path, (MAX_STIMULUS_ROWS,))
    base = h5py.check_vlen_dtype(ds.dtype)
    if ds.ndim != 1 or base is None or np.dtype(base) != np.uint8:
        raise CorruptFileError(
            f"{path}: dataset {layout.H5_IMAGES!r} must be 1-D variable-length uint8 (JPEG bytes), "
            f"found shape {ds.shape} dtype {ds.dtype}. Delete it and download it again."
        )


def check_embedding_h5(handle: h5py.File, path: Path) -> None:
    emb = _dataset(handle, layout.H5_EMBEDDING, path)
    ids = _dataset(handle, layout.H5_IMAGE_IDS, path)
    valid = _dataset(handle, layout.H5_VALID, path)
    problem = None
    if emb.ndim != 2 or emb.dtype.kind != "f":
        problem = f"{layout.H5_EMBEDDING!r} must be a 2-D float array, found {emb.shape} {emb.dtype}"
    elif ids.shape != (emb.shape[0],) or valid.shape != (emb.shape[0],):
        problem = (
            f"{layout.H5_IMAGE_IDS!r} {ids.shape} and {layout.H5_VALID!r} {valid.shape} must both "
            f"have one entry per embedding row ({emb.shape[0]})"
        )
    elif valid.dtype.kind not in "bu":
        problem = f"{layout.H5_VALID!r} must be boolean, found {valid.dtype}"
    if problem:
        raise CorruptFileError(f"{path}: {problem}. Delete it and download it again.")
    _check_bounds(emb, path, (MAX_STIMULUS_ROWS, MAX_EMBEDDING_DIM))
    _check_bounds(ids, path, (MAX_STIMULUS_ROWS,))
    _check_bounds(valid, path, (MAX_STIMULUS_ROWS,))
    if ids.dtype.kind not in "SUO":
        raise CorruptFileError(
            f"{path}: {layout.H5_IMAGE_IDS!r} must hold strings, found {ids.dtype}. "
            "Delete it and download it again."
        )


def check_masks_h5(handle: h5py.File, path: Path) -> None:
    ds = _dataset(handle, layout.H5_MASKS, path)
    _check_bounds(ds, path, (MAX_STIMULUS_ROWS, MAX_MASK_SIDE, MAX_MASK_SIDE))
    if ds.ndim != 3 or ds.dtype.kind not in "bu":
        raise CorruptFileError(
            f"{path}: dataset {layout.H5_MASKS!r} must be (n_masks, H, W) uint8/bool, "
            f"found {ds.shape} {ds.dtype}. Delete it and download it again."
        )
