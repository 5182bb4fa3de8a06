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
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from PIL import Image

from laion_fmri import layout
from laion_fmri._tables import check_table
from laion_fmri.config import get_data_dir
from laion_fmri.errors import CorruptFileError, StimuliNotDownloadedError, StimulusNotFoundError
from laion_fmri.vocab import close_matches, normalize_model

__all__ = [
    "Stimuli",
    "StimulusCaptions",
    "StimulusEmbeddings",
    "StimulusImages",
    "StimulusSegmentations",
    "decode_image",
    "load_stimuli",
]

# Above this many requested rows, reading the whole embedding matrix once (and
# keeping it) beats an HDF5 point selection.
_FULL_READ_ROWS = 256
# Rows per contiguous read when many (but less than half of all) rows are asked for.
_BLOCK_ROWS = 4096

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


# --------------------------------------------------------------------------- helpers
def _download_hint(what: str) -> str:
    if what in layout.EMBEDDING_MODELS:
        return f"laion_fmri.download.download_embeddings(models=[{what!r}])"
    return {
        "images": "laion_fmri.download.download_stimuli()",
        "metadata": "laion_fmri.download.download_stimuli()",
        "captions": "laion_fmri.download.download_captions()",
        "segmentations": "laion_fmri.download.download_segmentations()",
    }[what]


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise StimuliNotDownloadedError(
            f"The stimulus {what} file {path} is not downloaded. Fetch it with "
            f"`{_download_hint(what)}`."
        )
    return path


def _unknown(kind: str, value: object, valid: Sequence[str], list_all: bool = False) -> StimulusNotFoundError:
    close = close_matches(value, valid)
    msg = f"Unknown {kind} {value!r}."
    if list_all:
        msg += f" Valid: {', '.join(map(str, valid))}."
    else:
        msg += f" ({len(valid)} known.)"
    if close:
        msg += f" Did you mean: {', '.join(repr(c) for c in close)}?"
    return StimulusNotFoundError(msg)


def _read_csv(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    _require(path, what)
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


def _as_name_list(names: str | Iterable[str]) -> tuple[list[str], bool]:
    """Return ``(names, single)``; ``single`` when one string was given."""
    if isinstance(names, str):
        return [names], True
    if isinstance(names, bytes):
        raise TypeError("Image names must be str, not bytes.")
    out = list(names)
    for n in out:
        if not isinstance(n, str):
            raise TypeError(f"Image names must be str, got {type(n).__name__} ({n!r}).")
    return out, False


def _indexer(index: pd.Index, names: list[str], kind: str = "image name") -> np.ndarray:
    """Vectorised name -> row lookup; unknown names raise with close matches."""
    pos = index.get_indexer(names)
    bad = np.flatnonzero(pos < 0)
    if bad.size:
        first = names[int(bad[0])]
        err = _unknown(kind, first, index.tolist())
        if bad.size > 1:
            err = StimulusNotFoundError(
                f"{err} ({bad.size} of the {len(names)} requested names are unknown.)"
            )
        raise err
    return pos.astype(np.intp, copy=False)


def decode_image(data: bytes | np.ndarray, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Decode encoded image bytes to an RGB ``uint8`` array, optionally downscaled.

    For JPEG input and a ``size`` smaller than the image, the decoder works at
    a reduced DCT scale (PIL ``Image.draft``) before the final resize, which
    is several times faster than decoding full resolution first.

    Parameters
    ----------
    data : bytes or numpy.ndarray
        The encoded file (JPEG or PNG).
    size : int or (int, int), optional
        Output ``size x size`` or ``(height, width)``; ``None`` keeps the native size.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(H, W, 3)``.

    Raises
    ------
    CorruptFileError
        If the bytes are not a decodable image.

    Examples
    --------
    >>> buf = io.BytesIO(); Image.new("RGB", (64, 64)).save(buf, "JPEG")
    >>> decode_image(buf.getvalue(), size=16).shape
    (16, 16, 3)
    """
    raw = data.tobytes() if isinstance(data, np.ndarray) else data
    try:
        img = Image.open(io.BytesIO(raw))
        if size is not None:
            height, width = (size, size) if isinstance(size, int) else size
            img.draft("RGB", (width, height))
            img = img.convert("RGB")
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.BILINEAR)
        else:
            img = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptFileError(f"Cannot decode stimulus image bytes ({exc}).") from exc
    return np.asarray(img, dtype=np.uint8)


class _LazyH5:
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
            _require(self.path, self.what)
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


def _check_images_h5(handle: h5py.File, path: Path) -> None:
    ds = _dataset(handle, layout.H5_IMAGES, path)
    _check_bounds(ds, path, (MAX_STIMULUS_ROWS,))
    base = h5py.check_vlen_dtype(ds.dtype)
    if ds.ndim != 1 or base is None or np.dtype(base) != np.uint8:
        raise CorruptFileError(
            f"{path}: dataset {layout.H5_IMAGES!r} must be 1-D variable-length uint8 (JPEG bytes), "
            f"found shape {ds.shape} dtype {ds.dtype}. Delete it and download it again."
        )


def _check_embedding_h5(handle: h5py.File, path: Path) -> None:
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


def _check_masks_h5(handle: h5py.File, path: Path) -> None:
    ds = _dataset(handle, layout.H5_MASKS, path)
    _check_bounds(ds, path, (MAX_STIMULUS_ROWS, MAX_MASK_SIDE, MAX_MASK_SIDE))
    if ds.ndim != 3 or ds.dtype.kind not in "bu":
        raise CorruptFileError(
            f"{path}: dataset {layout.H5_MASKS!r} must be (n_masks, H, W) uint8/bool, "
            f"found {ds.shape} {ds.dtype}. Delete it and download it again."
        )


class _Namespace:
    """Base of the hub namespaces: state is rebuilt lazily, never pickled."""

    def __init__(self, hub: Stimuli) -> None:
        self._hub = hub
        self._reset()

    def _reset(self) -> None:  # pragma: no cover - overridden
        pass

    def close(self) -> None:
        """Close open HDF5 handles (they reopen on next use)."""
        for value in vars(self).values():
            if isinstance(value, _LazyH5):
                value.close()
            elif isinstance(value, dict):
                for item in value.values():
                    if isinstance(item, _LazyH5):
                        item.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"_hub": self._hub}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._hub = state["_hub"]
        self._reset()


class _GroupedTable(_Namespace):
    """A namespace over one CSV table whose rows are grouped by ``image_name``."""

    _key: str
    _columns: tuple[str, ...]
    _what: str

    def _reset(self) -> None:
        self._frame: pd.DataFrame | None = None
        self._groups: dict[str, np.ndarray] | None = None

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - overridden
        return frame

    @property
    def metadata(self) -> pd.DataFrame:
        """The whole table, read on first use."""
        if self._frame is None:
            frame = self._prepare(_read_csv(self._hub._path(self._key), self._columns, self._what))
            self._groups = frame.groupby("image_name", sort=False).indices
            self._frame = frame
        return self._frame

    def __len__(self) -> int:
        return len(self.metadata)

    def _name_groups(self) -> dict[str, np.ndarray]:
        self.metadata  # noqa: B018 - loads the table and its groups
        return self._groups  # type: ignore[return-value]

    def images(self) -> list[str]:
        """Names of the images that have at least one row.

        Returns
        -------
        list of str
        """
        return list(self._name_groups())

    def _rows(self, name: str) -> pd.DataFrame:
        """Rows of one image (empty frame for a known image without rows)."""
        frame = self.metadata
        rows = self._groups.get(name)  # type: ignore[union-attr]
        if rows is None:
            self._hub._check_known(name)
            return frame.iloc[0:0]
        return frame.iloc[rows].reset_index(drop=True)


# --------------------------------------------------------------------------- images
class StimulusImages(_Namespace):
    """Raw stimulus images (JPEG bytes) by row index or image name.

    Parameters
    ----------
    hub : Stimuli
        The hub whose data directory is read (created by :func:`load_stimuli`).

    Examples
    --------
    >>> stim = load_stimuli()  # doctest: +SKIP
    >>> stim.images["shared_12rep_LAION_cluster_1003_i0.jpg"][:2]  # doctest: +SKIP
    b'\\xff\\xd8'
    """

    def _reset(self) -> None:
        self._h5 = _LazyH5(self._hub._path(layout.STIMULI_IMAGES_KEY), "images", _check_images_h5)

    def _dataset(self) -> h5py.Dataset:
        ds = self._h5.get()[layout.H5_IMAGES]
        n_meta = len(self._hub.metadata)
        if ds.shape[0] != n_meta:
            raise CorruptFileError(
                f"{self._h5.path} holds {ds.shape[0]} images but "
                f"{self._hub._path(layout.STIMULI_METADATA_KEY)} has {n_meta} rows; "
                "re-run `laion_fmri.download.download_stimuli()`."
            )
        return ds

    def _position(self, key: int | str) -> int:
        if isinstance(key, str):
            return int(_indexer(self._hub._name_index(), [key])[0])
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            n = len(self)
            if not -n <= int(key) < n:
                raise IndexError(f"Image index {key} is out of range for {n} images.")
            return int(key) % n
        raise TypeError(f"Images are looked up by int index or str name, not {type(key).__name__}.")

    def __len__(self) -> int:
        return len(self._hub.metadata)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._hub._name_index()

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        ds = self._dataset()
        for i, name in enumerate(self._hub._name_index()):
            yield name, ds[i].tobytes()

    def __getitem__(self, key: int | str) -> bytes:
        """Return the encoded JPEG bytes of one image (by index or name)."""
        return self._dataset()[self._position(key)].tobytes()

    def index_of(self, name: str) -> int:
        """Row of ``name`` in the metadata table and the image HDF5.

        Parameters
        ----------
        name : str
            Image name.

        Returns
        -------
        int

        Raises
        ------
        StimulusNotFoundError
            If the name is unknown (the message lists close matches).
        """
        return int(_indexer(self._hub._name_index(), [name])[0])

    def names(self) -> list[str]:
        """All image names in row order.

        Returns
        -------
        list of str
        """
        return self._hub._name_index().tolist()

    def get(self, key: int | str) -> Image.Image:
        """Return one image as a decoded PIL image.

        Parameters
        ----------
        key : int or str
            Row index or image name.

        Returns
        -------
        PIL.Image.Image

        Raises
        ------
        CorruptFileError
            If the stored bytes are not a decodable image.

        Examples
        --------
        >>> load_stimuli().images.get(0).size  # doctest: +SKIP
        (1000, 1000)
        """
        raw = self[key]
        try:
            img = Image.open(io.BytesIO(raw))
            img.load()
        except OSError as exc:
            raise CorruptFileError(f"Image {key!r} in {self._h5.path} cannot be decoded ({exc}).") from exc
        return img

    def _positions(self, keys: Iterable[int | str] | np.ndarray) -> np.ndarray:
        if isinstance(keys, (str, int, np.integer)):
            keys = [keys]  # one key, not an iterable of characters
        if isinstance(keys, np.ndarray) and keys.dtype.kind not in "iu":
            keys = keys.tolist()
        keys = list(keys) if not isinstance(keys, np.ndarray) else keys
        if isinstance(keys, np.ndarray):
            n = len(self)
            if keys.size and (keys.min() < -n or keys.max() >= n):
                raise IndexError(f"Image indices must lie in [-{n}, {n}).")
            return keys.astype(np.intp) % max(n, 1)
        if keys and all(isinstance(k, str) for k in keys):
            return _indexer(self._hub._name_index(), list(keys))
        return np.array([self._position(k) for k in keys], dtype=np.intp)

    def array(
        self,
        keys: Iterable[int | str] | np.ndarray,
        size: int | tuple[int, int] | None = None,
        n_threads: int | None = None,
    ) -> np.ndarray:
        """Decode several images into one ``uint8`` array.

        Parameters
        ----------
        keys : iterable of int or str
            Row indices or image names, in the order wanted.
        size : int or (int, int), optional
            Output size (``size x size`` or ``(height, width)``); JPEGs are
            decoded at reduced scale first (fast). ``None`` keeps the native
            size, which must then be the same for every image.
        n_threads : int, optional
            Decoder threads (default 1; PIL decodes without the GIL, so more
            can help on an idle multi-core machine).

        Returns
        -------
        numpy.ndarray
            ``(n, H, W, 3)`` ``uint8``.

        Raises
        ------
        ValueError
            If ``size`` is None and the images differ in size.

        Examples
        --------
        >>> load_stimuli().images.array([0, 1], size=224).shape  # doctest: +SKIP
        (2, 224, 224, 3)
        """
        positions = self._positions(keys)
        return _decode_rows(self._dataset(), positions, size, n_threads)


def _decode_rows(
    ds: h5py.Dataset,
    positions: np.ndarray,
    size: int | tuple[int, int] | None,
    n_threads: int | None = None,
) -> np.ndarray:
    """Read rows of the image dataset (one handle, in order) and decode them into one array.

    With ``n_threads > 1`` decoding runs in a thread pool (PIL releases the GIL).
    """
    if positions.size == 0:
        h, w = (size, size) if isinstance(size, int) else (size or (0, 0))
        return np.empty((0, h, w, 3), dtype=np.uint8)
    first = decode_image(ds[int(positions[0])], size)
    out = np.empty((positions.size, *first.shape), dtype=np.uint8)
    out[0] = first

    def work(j: int) -> None:
        img = decode_image(ds_rows[j], size)
        if img.shape != first.shape:
            raise ValueError(
                f"Image row {int(positions[j])} is {img.shape[1]}x{img.shape[0]} but the first is "
                f"{first.shape[1]}x{first.shape[0]}; pass size= to resize them to one shape."
            )
        out[j] = img

    threads = max(1, n_threads or 1)
    batch = 64  # bounded memory: encoded bytes of one batch at a time
    for lo in range(1, positions.size, batch):
        idx = range(lo, min(lo + batch, positions.size))
        ds_rows = {j: ds[int(positions[j])] for j in idx}  # h5py reads stay on this thread
        if threads > 1 and len(idx) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(work, idx))
        else:
            for j in idx:
                work(j)
    return out


# --------------------------------------------------------------------------- embeddings
class _ModelFile:
    """State of one embedding file: lazy handle, id index, valid flags, cached matrix."""

    def __init__(self, path: Path, model: str) -> None:
        self.h5 = _LazyH5(path, model, _check_embedding_h5)
        self._ids: pd.Index | None = None
        self._valid: np.ndarray | None = None
        self.matrix: np.ndarray | None = None

    def ids(self) -> pd.Index:
        if self._ids is None:
            raw = self.h5.get()[layout.H5_IMAGE_IDS][()]
            names = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw]
            index = pd.Index(names, dtype=object)
            if not index.is_unique:
                dup = index[index.duplicated()][0]
                raise CorruptFileError(
                    f"{self.h5.path}: image id {dup!r} occurs more than once. Delete it and download again."
                )
            self._ids = index
        return self._ids

    def valid(self) -> np.ndarray:
        if self._valid is None:
            self._valid = np.asarray(self.h5.get()[layout.H5_VALID][()], dtype=bool)
        return self._valid

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions``; memory stays within about twice the rows asked for."""
        ds = self.h5.get()[layout.H5_EMBEDDING]
        if positions.size == 0:
            return np.empty((0, ds.shape[1]), dtype=ds.dtype)
        uniq, inverse = np.unique(positions, return_inverse=True)
        if self.matrix is None and uniq.size > _FULL_READ_ROWS and 2 * uniq.size >= ds.shape[0]:
            self.matrix = ds[()]
        if self.matrix is not None:
            return self.matrix[positions]
        if uniq.size <= _FULL_READ_ROWS:
            block = ds[uniq] if uniq.size > 1 else ds[int(uniq[0]) : int(uniq[0]) + 1]
        else:
            block = np.empty((uniq.size, ds.shape[1]), dtype=ds.dtype)
            done = 0
            while done < uniq.size:  # contiguous slabs of at most _BLOCK_ROWS rows
                lo = int(uniq[done])
                hi = lo + _BLOCK_ROWS
                stop = done + int(np.searchsorted(uniq[done:], hi))
                slab = ds[lo : min(hi, int(uniq[stop - 1]) + 1)]
                block[done:stop] = slab[uniq[done:stop] - lo]
                done = stop
        return block[inverse.ravel()]


class StimulusEmbeddings(_Namespace):
    """Precomputed image embeddings (``CLIP``, ``DINOv2``, ``PEcore``, ``SigLIP2``) by name.

    Values come back in the stored dtype (``float16``) unless ``dtype=`` asks
    for another. Rows whose ``valid`` flag is False come back as NaN.

    Parameters
    ----------
    hub : Stimuli
        The hub whose data directory is read (created by :func:`load_stimuli`).

    Examples
    --------
    >>> emb = load_stimuli().embeddings  # doctest: +SKIP
    >>> emb.get("CLIP", "shared_12rep_LAION_cluster_1003_i0.jpg").shape  # doctest: +SKIP
    (1024,)
    """

    def _reset(self) -> None:
        self._files: dict[str, _ModelFile] = {}

    @property
    def models(self) -> tuple[str, ...]:
        """Models whose embedding file is downloaded, in canonical order."""
        return tuple(
            m for m in layout.EMBEDDING_MODELS if self._hub._path(layout.embeddings_key(m)).is_file()
        )

    def _canonical(self, model: str) -> str:
        if not isinstance(model, str):
            raise TypeError(f"The model must be a str, not {type(model).__name__}.")
        return normalize_model(model, StimulusNotFoundError)

    def _file(self, model: str) -> _ModelFile:
        model = self._canonical(model)
        state = self._files.get(model)
        if state is None:
            state = _ModelFile(self._hub._path(layout.embeddings_key(model)), model)
            self._files[model] = state
        return state

    def __contains__(self, item: object) -> bool:
        if isinstance(item, tuple) and len(item) == 2:
            model, name = item
            return model in self and name in self._file(model).ids()
        return isinstance(item, str) and item in self.models

    def image_ids(self, model: str) -> list[str]:
        """Image names in the row order of the model's file.

        Parameters
        ----------
        model : str
            Model name.

        Returns
        -------
        list of str
        """
        return self._file(model).ids().tolist()

    def dim(self, model: str) -> int:
        """Embedding dimension ``D`` of a model.

        Parameters
        ----------
        model : str
            Model name.

        Returns
        -------
        int
        """
        return int(self._file(model).h5.get()[layout.H5_EMBEDDING].shape[1])

    def _take(self, model: str, positions: np.ndarray, dtype: Any = None) -> np.ndarray:
        """Rows at file ``positions`` (vectorised); invalid rows become NaN."""
        state = self._file(model)
        out = state.rows(np.asarray(positions, dtype=np.intp))
        if dtype is not None:
            out = out.astype(dtype, copy=False)
        bad = ~state.valid()[positions]
        if bad.any():  # out is a fresh array (fancy indexing copies)
            out[bad] = np.nan
        return out

    def positions(self, model: str, names: Sequence[str]) -> np.ndarray:
        """Row of each name in the model's file (vectorised join by name).

        Parameters
        ----------
        model : str
            Model name.
        names : sequence of str
            Image names.

        Returns
        -------
        numpy.ndarray
            ``intp`` rows, one per name.
        """
        return _indexer(self._file(model).ids(), list(names))

    def get(self, model: str, names: str | Iterable[str], dtype: Any = None) -> np.ndarray:
        """Embedding(s) of one or several images, in the caller's order.

        Parameters
        ----------
        model : str
            ``"CLIP"``, ``"DINOv2"``, ``"PEcore"`` or ``"SigLIP2"`` (case-insensitive).
        names : str or iterable of str
            Image name(s).
        dtype : numpy dtype, optional
            Output dtype; default keeps the stored ``float16``.

        Returns
        -------
        numpy.ndarray
            ``(D,)`` for one name, ``(n, D)`` for several.

        Raises
        ------
        StimulusNotFoundError
            Unknown model or image name (with close matches).
        StimuliNotDownloadedError
            The model's file is not downloaded.

        Examples
        --------
        >>> load_stimuli().embeddings.get("CLIP", ["a.jpg", "b.jpg"]).shape  # doctest: +SKIP
        (2, 1024)
        """
        name_list, single = _as_name_list(names)
        out = self._take(model, self.positions(model, name_list), dtype)
        return out[0] if single else out

    def all(self, model: str, dtype: Any = None) -> np.ndarray:
        """Every image's embedding, in metadata-table row order.

        Parameters
        ----------
        model : str
            Model name (case-insensitive).
        dtype : numpy dtype, optional
            Output dtype; default keeps the stored ``float16``.

        Returns
        -------
        numpy.ndarray
            ``(N, D)``; row ``i`` belongs to ``metadata.image_name[i]``.

        Raises
        ------
        StimuliNotDownloadedError
            If the metadata table (``download_stimuli``) or the model's file is missing.

        Examples
        --------
        >>> load_stimuli().embeddings.all("CLIP").shape  # doctest: +SKIP
        (25052, 1024)
        """
        try:
            names = self._hub._name_index().tolist()
        except StimuliNotDownloadedError as exc:
            raise StimuliNotDownloadedError(
                f"{exc} (all() returns rows in metadata order; without the metadata use "
                f"get({model!r}, embeddings.image_ids({model!r})) for the file's own order.)"
            ) from exc
        try:
            rows = self.positions(model, names)
        except StimulusNotFoundError as exc:
            raise StimulusNotFoundError(
                f"Some images of the stimulus metadata table have no {model} embedding, so the "
                "two files are probably from different dataset versions; re-download both "
                f"(download_stimuli() and download_embeddings(models=[{model!r}])). Details: {exc}"
            ) from exc
        return self._take(model, rows, dtype)


# --------------------------------------------------------------------------- captions
class StimulusCaptions(_GroupedTable):
    """Human and AI captions by image name (``caption_idx`` 0 = AI, 1.. = humans ranked).

    Parameters
    ----------
    hub : Stimuli
        The hub whose data directory is read (created by :func:`load_stimuli`).

    Examples
    --------
    >>> load_stimuli().captions.human("shared_12rep_LAION_cluster_1003_i0.jpg", limit=1)  # doctest: +SKIP
    ['A hand holding ...']
    """

    _key = layout.CAPTIONS_KEY
    _columns = layout.CAPTION_COLUMNS
    _what = "captions"

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame["caption"] = frame["caption"].fillna("").astype(str)
        return frame.sort_values(["image_name", "caption_idx"], kind="stable").reset_index(drop=True)

    @property
    def metadata(self) -> pd.DataFrame:
        """The whole caption table (one row per caption)."""
        return super().metadata

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._name_groups()

    def get(self, name: str) -> pd.DataFrame:
        """All captions of one image, sorted by ``caption_idx`` (empty frame if none).

        Parameters
        ----------
        name : str
            Image name.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        StimulusNotFoundError
            If the image name is unknown.

        Examples
        --------
        >>> load_stimuli().captions.get("unique_THINGS_zebra_p04.jpg").caption_idx.tolist()  # doctest: +SKIP
        [0, 1, 2, 3]
        """
        return self._rows(name)

    def human(self, name: str, limit: int | None = None) -> list[str]:
        """Human captions, best-ranked first.

        Parameters
        ----------
        name : str
            Image name.
        limit : int, optional
            Return at most this many.

        Returns
        -------
        list of str
        """
        rows = self.get(name)
        texts = rows.loc[rows["source"] == "human", "caption"].tolist()
        return texts if limit is None else texts[:limit]

    def ai(self, name: str) -> str | None:
        """The AI caption of an image.

        Parameters
        ----------
        name : str
            Image name.

        Returns
        -------
        str or None
            ``None`` when the image has no AI caption (OOD and unique images).
        """
        rows = self.get(name)
        texts = rows.loc[rows["source"] == "ai", "caption"].tolist()
        return texts[0] if texts else None

    def list(self, name: str, source: str | None = None) -> list[str]:
        """Caption texts of one image in ``caption_idx`` order, optionally of one source.

        Parameters
        ----------
        name : str
            Image name.
        source : {"human", "ai"}, optional
            Keep only this source; ``None`` keeps all (the AI caption first).

        Returns
        -------
        list of str
            Empty when the image has no caption of that source.

        Raises
        ------
        StimulusNotFoundError
            If the image name or the source is unknown.

        Examples
        --------
        >>> load_stimuli().captions.list("unique_THINGS_zebra_p04.jpg", source="human")  # doctest: +SKIP
        ['A zebra ...', ...]
        """
        rows = self.get(name)
        if source is None:
            return rows["caption"].tolist()
        sources = sorted({"human", "ai", *map(str, self.metadata["source"].unique())})
        if source not in sources:
            raise _unknown("caption source", source, sources, list_all=True)
        return rows.loc[rows["source"] == source, "caption"].tolist()


# --------------------------------------------------------------------------- segmentations
class StimulusSegmentations(_GroupedTable):
    """Object masks of the shared images by image name and noun.

    Parameters
    ----------
    hub : Stimuli
        The hub whose data directory is read (created by :func:`load_stimuli`).

    Examples
    --------
    >>> seg = load_stimuli().segmentations  # doctest: +SKIP
    >>> seg.get("shared_12rep_LAION_cluster_1003_i0.jpg", "hand").dtype  # doctest: +SKIP
    dtype('bool')
    """

    _key = layout.SEGMENTATIONS_METADATA_KEY
    _columns = layout.SEGMENTATION_COLUMNS
    _what = "segmentations"

    def _reset(self) -> None:
        super()._reset()
        self._h5 = _LazyH5(self._hub._path(layout.SEGMENTATIONS_KEY), "segmentations", _check_masks_h5)

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame["noun"] = frame["noun"].astype(str)
        return frame

    @property
    def metadata(self) -> pd.DataFrame:
        """One row per mask (``mask_row`` indexes the ``masks`` dataset)."""
        return super().metadata

    def has_image(self, name: str) -> bool:
        """Whether the image has at least one mask.

        Parameters
        ----------
        name : str
            Image name.

        Returns
        -------
        bool
        """
        return name in self._name_groups()

    def for_image(self, name: str) -> pd.DataFrame:
        """Mask rows of one image.

        Parameters
        ----------
        name : str
            Image name.

        Returns
        -------
        pandas.DataFrame
            Empty when the image has no masks (only shared images have masks).
        """
        return self._rows(name)

    def nouns(self, name: str, localized_only: bool = True) -> list[str]:
        """Nouns with a mask in the image, first-appearance order, no repeats.

        Parameters
        ----------
        name : str
            Image name.
        localized_only : bool
            Keep only masks with ``localized == 1`` (a box, covering < 99 % of the image).

        Returns
        -------
        list of str
        """
        rows = self.for_image(name)
        if localized_only:
            rows = rows[rows["localized"].astype(int) == 1]
        return list(dict.fromkeys(rows["noun"].tolist()))

    def get(self, name: str, noun: str, instance: int = 0) -> np.ndarray:
        """Boolean ``(H, W)`` mask of one noun instance in an image.

        Parameters
        ----------
        name : str
            Image name.
        noun : str
            Noun, as listed by :meth:`nouns`.
        instance : int
            ``instance_id`` (0 = highest-scoring detection).

        Returns
        -------
        numpy.ndarray
            ``bool`` ``(H, W)``.

        Raises
        ------
        StimulusNotFoundError
            If the image has no such noun / instance (the message lists its nouns).

        Examples
        --------
        >>> seg = load_stimuli().segmentations  # doctest: +SKIP
        >>> seg.get("shared_4rep_OOD_cropped_aloe.png", "aloe").shape  # doctest: +SKIP
        (1000, 1000)
        """
        rows = self.for_image(name)
        match = rows[(rows["noun"] == noun) & (rows["instance_id"].astype(int) == int(instance))]
        if match.empty:
            nouns = list(dict.fromkeys(rows["noun"].tolist()))
            if noun in nouns:
                n_inst = int((rows["noun"] == noun).sum())
                raise StimulusNotFoundError(
                    f"Image {name!r} has {n_inst} instance(s) of {noun!r}; "
                    f"instance {instance} does not exist."
                )
            if not nouns:
                raise StimulusNotFoundError(
                    f"Image {name!r} has no segmentation masks (only shared images have masks)."
                )
            raise _unknown(f"noun for image {name!r}", noun, nouns, list_all=True)
        ds = self._h5.get()[layout.H5_MASKS]
        row = int(match["mask_row"].iloc[0])
        if not 0 <= row < ds.shape[0]:
            raise CorruptFileError(
                f"{self._hub._path(layout.SEGMENTATIONS_METADATA_KEY)} points at mask_row {row} but "
                f"{self._h5.path} has {ds.shape[0]} masks; download the segmentations again."
            )
        return np.asarray(ds[row]) > 0


# --------------------------------------------------------------------------- hub
class Stimuli:
    """The stimulus hub (use :func:`load_stimuli`).

    Attributes
    ----------
    data_dir : pathlib.Path
        The data directory whose ``stimuli/`` folder is read.
    images, embeddings, captions, segmentations
        Namespaces; each opens its files on first use.

    Examples
    --------
    >>> with load_stimuli() as stim:  # doctest: +SKIP
    ...     stim.metadata.head()
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.data_dir = Path(get_data_dir(data_dir))
        self._metadata: pd.DataFrame | None = None
        self._names: pd.Index | None = None
        self.images = StimulusImages(self)
        self.embeddings = StimulusEmbeddings(self)
        self.captions = StimulusCaptions(self)
        self.segmentations = StimulusSegmentations(self)

    def _path(self, key: str) -> Path:
        return layout.local_path(self.data_dir, key)

    @property
    def metadata(self) -> pd.DataFrame:
        """One row per image; row ``i`` is image ``i`` of the image HDF5.

        Raises
        ------
        StimuliNotDownloadedError
            If ``task-images_metadata.csv`` is missing (it comes with ``download_stimuli``).
        """
        if self._metadata is None:
            path = self._path(layout.STIMULI_METADATA_KEY)
            frame = _read_csv(path, layout.STIMULUS_METADATA_COLUMNS, "metadata")
            if frame["image_name"].duplicated().any():
                dup = frame.loc[frame["image_name"].duplicated(), "image_name"].iloc[0]
                raise CorruptFileError(f"{path}: image_name {dup!r} occurs more than once.")
            self._metadata = frame
        return self._metadata

    def _name_index(self) -> pd.Index:
        if self._names is None:
            self._names = pd.Index(self.metadata["image_name"].tolist(), dtype=object)
        return self._names

    def _known_names(self) -> pd.Index | dict[str, np.ndarray] | None:
        """Every image name, from the first table on disk (metadata, captions, embeddings)."""
        if self._path(layout.STIMULI_METADATA_KEY).is_file():
            return self._name_index()
        if self._path(layout.CAPTIONS_KEY).is_file():
            return self.captions._name_groups()
        models = self.embeddings.models
        return self.embeddings._file(models[0]).ids() if models else None

    def _check_known(self, name: object) -> None:
        """Raise for a name that no stimulus table on disk knows."""
        if not isinstance(name, str):
            raise TypeError(f"Image names must be str, not {type(name).__name__}.")
        known = self._known_names()
        if known is not None and name not in known:
            raise _unknown("image name", name, list(known))

    def close(self) -> None:
        """Close every open HDF5 handle (they reopen on next use)."""
        for ns in (self.images, self.embeddings, self.captions, self.segmentations):
            ns.close()

    def __enter__(self) -> Stimuli:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["data_dir"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Stimuli(data_dir={str(self.data_dir)!r})"


def load_stimuli(data_dir: str | os.PathLike[str] | None = None) -> Stimuli:
    """Open the stimulus hub of a data directory (nothing is read until used).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Returns
    -------
    Stimuli

    Raises
    ------
    DataDirNotSetError
        If no data directory is configured.

    Examples
    --------
    >>> import laion_fmri
    >>> stim = laion_fmri.load_stimuli()  # doctest: +SKIP
    >>> stim.embeddings.get("CLIP", "shared_12rep_LAION_cluster_1003_i0.jpg").shape  # doctest: +SKIP
    (1024,)
    """
    return Stimuli(data_dir)


# --------------------------------------------------------------------------- standalone namespaces
class Embeddings(StimulusEmbeddings):
    """Image embeddings of chosen models without the hub (``load_embeddings``).

    The same lookups as ``load_stimuli().embeddings`` (``get``, ``all``,
    ``image_ids``, ``dim``), restricted to ``models``, plus ``emb[model]``
    (the ``(N, D)`` HDF5 dataset, read lazily) and ``len(emb)`` (images).

    Parameters
    ----------
    models : str or iterable of str
        ``"all"`` (every downloaded model), one model or several
        (case-insensitive: ``CLIP``, ``DINOv2``, ``PEcore``, ``SigLIP2``).
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Raises
    ------
    StimulusNotFoundError
        For an unknown model name (also a ``KeyError`` and a ``ValueError``).
    StimuliNotDownloadedError
        If a chosen model, or with ``"all"`` every model, is not downloaded.

    Examples
    --------
    >>> emb = Embeddings("CLIP")  # doctest: +SKIP
    >>> emb["CLIP"].shape, emb.get("CLIP", emb.image_ids[0]).shape  # doctest: +SKIP
    ((25052, 1024), (1024,))
    """

    def __init__(self, models: str | Iterable[str] = "all",
                 data_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(Stimuli(data_dir))
        self._selected = self._choose(models)

    def _choose(self, models: str | Iterable[str]) -> tuple[str, ...]:
        downloaded = super().models
        if isinstance(models, str) and models.lower() == "all":
            if not downloaded:
                raise StimuliNotDownloadedError(
                    f"No embedding file is downloaded in {self._hub.data_dir}. Fetch them with "
                    "`laion_fmri.download.download_embeddings()`."
                )
            return downloaded
        wanted = [models] if isinstance(models, str) else list(models)
        if not wanted:
            raise StimulusNotFoundError("models= selects no model; pass 'all' or model names.")
        chosen = tuple(dict.fromkeys(super(Embeddings, self)._canonical(m) for m in wanted))
        for model in chosen:
            _require(self._hub._path(layout.embeddings_key(model)), model)
        return chosen

    @property
    def models(self) -> tuple[str, ...]:
        """The chosen models, in canonical order."""
        return self._selected

    def _canonical(self, model: str) -> str:
        name = super()._canonical(model)
        if name not in self._selected:
            raise _unknown("embedding model of this Embeddings object", model, self._selected,
                           list_all=True)
        return name

    @property
    def image_ids(self) -> list[str]:  # type: ignore[override]
        """Image names in the row order of the first chosen model's file."""
        return super().image_ids(self._selected[0])

    def __len__(self) -> int:
        return len(self._file(self._selected[0]).ids())

    def __getitem__(self, model: str) -> h5py.Dataset:
        return self._file(model).h5.get()[layout.H5_EMBEDDING]

    def __getstate__(self) -> dict[str, Any]:
        return {"_hub": self._hub, "_selected": self._selected}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._selected = state["_selected"]

    def __repr__(self) -> str:
        return f"Embeddings(models={list(self._selected)!r}, data_dir={str(self._hub.data_dir)!r})"


def load_embeddings(models: str | Iterable[str] = "all",
                    data_dir: str | os.PathLike[str] | None = None) -> Embeddings:
    """Open the image embeddings of some models (nothing is read until used).

    Parameters
    ----------
    models : str or iterable of str
        ``"all"`` (every downloaded model), one model or several.
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Returns
    -------
    Embeddings

    Raises
    ------
    StimulusNotFoundError
        For an unknown model name.
    StimuliNotDownloadedError
        If a chosen model is not downloaded.

    Examples
    --------
    >>> import laion_fmri
    >>> emb = laion_fmri.load_embeddings(["CLIP", "DINOv2"])  # doctest: +SKIP
    >>> emb.get("DINOv2", ["a.jpg", "b.jpg"]).shape  # doctest: +SKIP
    (2, 1024)
    """
    return Embeddings(models, data_dir)


class Captions(StimulusCaptions):
    """Human and AI captions without the hub (same methods as ``load_stimuli().captions``).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Examples
    --------
    >>> Captions().list("unique_THINGS_zebra_p04.jpg", source="ai")  # doctest: +SKIP
    []
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(Stimuli(data_dir))


class Segmentations(StimulusSegmentations):
    """Object masks without the hub (same methods as ``load_stimuli().segmentations``).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Defaults to the configured data directory.

    Examples
    --------
    >>> Segmentations().nouns("shared_12rep_LAION_cluster_1003_i0.jpg")  # doctest: +SKIP
    ['fingers', 'hand', 'pullover']
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(Stimuli(data_dir))


__all__ += ["Captions", "Embeddings", "Segmentations", "load_embeddings"]
