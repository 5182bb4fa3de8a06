"""Raw stimulus images: JPEG bytes by row or name, decoded one at a time or in batches."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
from PIL import Image

from laion_fmri import layout
from laion_fmri.errors import CorruptFileError
from laion_fmri.stimuli._files import LazyH5, check_images_h5
from laion_fmri.stimuli._names import Namespace, indexer

__all__ = ["StimulusImages", "decode_image"]


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


class StimulusImages(Namespace):
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
        self._h5 = LazyH5(self._hub._path(layout.STIMULI_IMAGES_KEY), "images", check_images_h5)

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
            return int(indexer(self._hub._name_index(), [key])[0])
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
        return int(indexer(self._hub._name_index(), [name])[0])

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
            return indexer(self._hub._name_index(), list(keys))
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
