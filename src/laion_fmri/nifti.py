"""Streaming NIfTI-1 reader: header checks, one volume at a time, precomputed gather.

A beta session is a ``(143, 143, 143, n_trials)`` float32 ``.nii.gz`` of about
12 GB decompressed. This module never holds the 4-D array: it parses the
348-byte header, then decompresses a few volumes at a time through zlib-ng
(``zlib_ng.gzip_ng``), picks the wanted voxels straight out of the disk-order
(Fortran) buffer with flat offsets computed once, and writes them into a
preallocated ``(n_volumes, n_selected)`` float32 C-contiguous output. Peak
memory is the output plus ``chunk`` volumes.

Conventions
-----------
* Voxel order is the C order of the ``(x, y, z)`` array nibabel returns, i.e.
  ``np.flatnonzero(mask3d.ravel())``; :func:`gather_offsets` converts those
  positions to Fortran (disk) offsets.
* ``scl_slope``/``scl_inter`` are applied when the slope is finite and
  non-zero (NIfTI rule: slope 0 or NaN means "no scaling"); a non-finite
  intercept is treated as 0.
* NaNs in the file are kept as NaN (they mark dropout voxels in this dataset);
  nothing is imputed.
* Any on-disk numeric dtype and either byte order is accepted; the output is
  always native float32.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from laion_fmri.errors import CorruptFileError

try:
    from zlib_ng.zlib_ng import error as _ZlibNgError
except ImportError:  # pragma: no cover - zlib-ng is a dependency
    _ZlibNgError = zlib.error

# What a damaged gzip stream can raise while decoding (zlib-ng raises its own
# ``zlib_ng.error`` for a corrupt deflate block, which is not an OSError).
_DECODE_ERRORS = (EOFError, OSError, gzip.BadGzipFile, zlib.error, _ZlibNgError)

HEADER_SIZE = 348
# A NIfTI-1 volume larger than this (bytes) is not a plausible beta volume.
MAX_VOLUME_BYTES = 1 << 31
MAX_VOLUMES = 100_000
# Deflate cannot expand input by more than ~1032:1.
_MAX_DEFLATE_RATIO = 1032
# One volume per step measured fastest (the buffer stays cache-friendly).
DEFAULT_CHUNK = 1

_NIFTI_DTYPES: dict[int, str] = {
    2: "u1",
    4: "i2",
    8: "i4",
    16: "f4",
    64: "f8",
    256: "i1",
    512: "u2",
    768: "u4",
    1024: "i8",
    1280: "u8",
}


@dataclass(frozen=True)
class NiftiHeader:
    """What the reader needs from a NIfTI-1 header.

    Attributes
    ----------
    path : Path
        The file the header came from (for messages).
    shape : tuple of int
        Data shape, 3-D ``(x, y, z)`` or 4-D ``(x, y, z, t)``.
    dtype : numpy.dtype
        On-disk dtype including byte order.
    vox_offset : int
        Byte offset of the data inside the (decompressed) stream.
    slope, inter : float
        Scaling to apply (``1.0, 0.0`` when the file asks for none).
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-scanner (mm) transform (sform, else qform).
    compressed : bool
        True for ``.gz`` files.

    Examples
    --------
    >>> read_header("betas.nii.gz").n_volumes  # doctest: +SKIP
    1044
    """

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    vox_offset: int
    slope: float
    inter: float
    affine: np.ndarray
    compressed: bool

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """The spatial ``(x, y, z)`` shape."""
        return (self.shape[0], self.shape[1], self.shape[2])

    @property
    def n_volumes(self) -> int:
        """Number of volumes (1 for a 3-D image)."""
        return self.shape[3] if len(self.shape) > 3 else 1

    @property
    def volume_size(self) -> int:
        """Voxels per volume."""
        x, y, z = self.grid_shape
        return x * y * z

    @property
    def data_bytes(self) -> int:
        """Bytes of voxel data after ``vox_offset``."""
        return self.volume_size * self.n_volumes * self.dtype.itemsize

    @property
    def scaled(self) -> bool:
        """True when values need ``slope``/``inter`` applied."""
        return self.slope != 1.0 or self.inter != 0.0


def _corrupt(path: Path, why: str) -> CorruptFileError:
    return CorruptFileError(
        f"{path} is not a readable NIfTI-1 file: {why}. Delete it and download it again "
        "(`laion_fmri.download.download(...)` re-fetches missing files)."
    )


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_stream(path: Path, compressed: bool):  # type: ignore[no-untyped-def]
    if compressed:
        from zlib_ng import gzip_ng

        return gzip_ng.open(path, "rb")
    return open(path, "rb", buffering=0)


def _read_block(stream, nbytes: int, path: Path) -> bytes:  # type: ignore[no-untyped-def]
    """Read exactly ``nbytes`` or raise :class:`CorruptFileError` (truncation).

    ``read(n)`` of a whole volume lets zlib-ng inflate straight into one new
    buffer, which measured faster than ``readinto`` a reused one.
    """
    try:
        data = stream.read(nbytes)
        while len(data) < nbytes:
            more = stream.read(nbytes - len(data))
            if not more:
                raise _corrupt(path, f"the data ends early ({len(data)} of {nbytes} bytes of a block)")
            data += more
    except _DECODE_ERRORS as exc:
        raise _corrupt(path, f"the compressed stream is damaged or truncated ({exc})") from exc
    return data


def _gzip_isize_check(path: Path, expected: int) -> None:
    """Compare the gzip trailer's uncompressed size (mod 2**32) with the header's claim."""
    size = path.stat().st_size
    if expected > size * _MAX_DEFLATE_RATIO + (1 << 20):
        raise _corrupt(path, f"the header claims {expected} bytes, impossible for a {size}-byte gzip")
    with open(path, "rb") as fh:
        head = fh.read(4)
        if len(head) < 4:
            raise _corrupt(path, "the gzip stream is truncated")
        if head[3] & 0x04:  # FEXTRA: possibly multi-member (BGZF); trailer covers one member
            return
        fh.seek(-4, os.SEEK_END)
        (isize,) = struct.unpack("<I", fh.read(4))
    if isize != expected % (1 << 32):
        raise _corrupt(
            path,
            f"the header implies {expected} decompressed bytes but the gzip trailer records "
            f"{isize} (mod 2**32); the file is truncated or its header is wrong",
        )


def read_header(path: str | os.PathLike[str], check_size: bool = True) -> NiftiHeader:
    """Parse and validate the NIfTI-1 header of ``path`` (``.nii`` or ``.nii.gz``).

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    check_size : bool
        Also check that the file can hold the data the header describes
        (file size for ``.nii``; gzip trailer for ``.nii.gz``).

    Returns
    -------
    NiftiHeader

    Raises
    ------
    CorruptFileError
        For a wrong magic, absurd dimensions or ``vox_offset``, an unsupported
        datatype, or a size that does not match the header. Nothing large is
        allocated before these checks pass.
    FileNotFoundError
        If ``path`` does not exist.

    Examples
    --------
    >>> hdr = read_header("sub-03_ses-01_..._statmap.nii.gz")  # doctest: +SKIP
    >>> hdr.shape  # doctest: +SKIP
    (143, 143, 143, 1044)
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIfTI file {path} does not exist.")
    compressed = _is_gzip(path)
    try:
        with _open_stream(path, compressed) as stream:
            raw = stream.read(HEADER_SIZE)
    except _DECODE_ERRORS as exc:
        raise _corrupt(path, f"cannot decompress the header ({exc})") from exc
    if len(raw) < HEADER_SIZE:
        raise _corrupt(path, f"only {len(raw)} header bytes (need {HEADER_SIZE})")
    if struct.unpack("<i", raw[:4])[0] == HEADER_SIZE:
        endian = "<"
    elif struct.unpack(">i", raw[:4])[0] == HEADER_SIZE:
        endian = ">"
    else:
        raise _corrupt(path, "sizeof_hdr is not 348 (not NIfTI-1; NIfTI-2 is not supported)")
    if raw[344:348] != b"n+1\x00":
        raise _corrupt(path, f"bad magic {raw[344:348]!r} (only single-file n+1 images are read)")
    hdr = nib.Nifti1Header(binaryblock=raw, endianness=endian, check=False)

    dim = [int(d) for d in hdr["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dim[1 : ndim + 1]):
        raise _corrupt(path, f"absurd dimensions {dim}")
    sizes = [*dim[1 : ndim + 1], 1, 1, 1][:max(ndim, 3)]
    if ndim > 4 and any(d != 1 for d in sizes[4:]):
        raise _corrupt(path, f"{ndim}-D data {sizes} is not supported (3-D or 4-D only)")
    shape = tuple(sizes[:4]) if ndim >= 4 else tuple(sizes[:3])
    code = int(hdr["datatype"])
    if code not in _NIFTI_DTYPES:
        raise _corrupt(path, f"unsupported datatype code {code}")
    dtype = np.dtype(endian + _NIFTI_DTYPES[code])
    if int(hdr["bitpix"]) not in (0, dtype.itemsize * 8):
        raise _corrupt(path, f"bitpix {int(hdr['bitpix'])} does not match datatype {dtype}")
    vox_offset_f = float(hdr["vox_offset"])
    if not np.isfinite(vox_offset_f) or vox_offset_f < 0 or vox_offset_f > 1 << 24:
        raise _corrupt(path, f"vox_offset {vox_offset_f} is out of range")
    vox_offset = max(int(vox_offset_f), 352)
    volume_bytes = shape[0] * shape[1] * shape[2] * dtype.itemsize
    n_volumes = shape[3] if len(shape) > 3 else 1
    if volume_bytes > MAX_VOLUME_BYTES or n_volumes > MAX_VOLUMES:
        raise _corrupt(path, f"dimensions {shape} are implausibly large")

    slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    if not np.isfinite(slope) or slope == 0:
        slope, inter = 1.0, 0.0
    elif not np.isfinite(inter):
        inter = 0.0
    try:
        affine = np.asarray(hdr.get_best_affine(), dtype=np.float64)
    except Exception as exc:  # nibabel raises several types for broken q/sform
        raise _corrupt(path, f"the orientation (qform/sform) is invalid ({exc})") from exc

    header = NiftiHeader(path, shape, dtype, vox_offset, slope, inter, affine, compressed)
    if check_size:
        needed = vox_offset + header.data_bytes
        if compressed:
            _gzip_isize_check(path, needed)
        elif path.stat().st_size < needed:
            raise _corrupt(
                path,
                f"the header describes {needed} bytes but the file has {path.stat().st_size}",
            )
    return header


def gather_offsets(mask: np.ndarray, grid_shape: Sequence[int] | None = None) -> np.ndarray:
    """Fortran (disk-order) flat offsets of the mask voxels, in C voxel order.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean 3-D mask, or a flat boolean mask in C order together with
        ``grid_shape``; alternatively an integer array of C-order flat indices.
    grid_shape : sequence of int, optional
        ``(x, y, z)``; required for flat input.

    Returns
    -------
    numpy.ndarray
        ``int64`` offsets into one volume as it lies on disk.

    Raises
    ------
    ValueError
        For flat input without ``grid_shape``.

    Examples
    --------
    >>> m = np.zeros((2, 3, 4), bool); m[1, 2, 3] = True
    >>> int(gather_offsets(m)[0]) == 1 + 2 * 2 + 3 * 6
    True
    """
    mask = np.asarray(mask)
    if mask.ndim == 3:
        grid_shape = mask.shape
        flat_c = np.flatnonzero(mask.ravel())
    else:
        if grid_shape is None:
            raise ValueError("grid_shape is required for a flat mask or index array.")
        flat_c = np.flatnonzero(mask) if mask.dtype == bool else mask.astype(np.int64)
    ijk = np.unravel_index(flat_c, tuple(grid_shape), order="C")
    return np.ravel_multi_index(ijk, tuple(grid_shape), order="F").astype(np.int64)


def read_masked(
    path: str | os.PathLike[str] | BinaryIO,
    offsets: np.ndarray | None = None,
    *,
    header: NiftiHeader | None = None,
    chunk: int = DEFAULT_CHUNK,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Stream a 3-D/4-D NIfTI and return the selected voxels of every volume.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        ``.nii`` or ``.nii.gz`` file, or an open binary stream of one
        positioned at its first byte (e.g. bytes arriving from the source;
        ``header`` is then required).
    offsets : numpy.ndarray, optional
        Disk-order voxel offsets from :func:`gather_offsets`; ``None`` keeps every
        voxel (in Fortran order).
    header : NiftiHeader, optional
        A header already read with :func:`read_header` (required for a stream).
    chunk : int
        Volumes decoded per step (memory = ``chunk`` volumes on top of the output).
    out : numpy.ndarray, optional
        Preallocated ``(n_volumes, n_selected)`` float32 C-contiguous output.

    Returns
    -------
    numpy.ndarray
        ``(n_volumes, n_selected)`` float32, C-contiguous, scaled; NaNs kept.

    Raises
    ------
    CorruptFileError
        Bad header, or a stream that ends early or fails to decompress.
    ValueError
        If an offset is outside the volume or ``out`` has the wrong shape/dtype.

    Examples
    --------
    >>> hdr = read_header(path)  # doctest: +SKIP
    >>> betas = read_masked(path, gather_offsets(mask3d), header=hdr)  # doctest: +SKIP
    """
    fileobj = None if isinstance(path, (str, os.PathLike)) else path
    if fileobj is not None and header is None:
        raise ValueError("read_masked needs header= when it reads from an open stream.")
    path = Path(path) if fileobj is None else Path(getattr(fileobj, "name", "<stream>"))
    hdr = header if header is not None else read_header(path)
    n_vox = hdr.volume_size
    if offsets is None:
        offsets = np.arange(n_vox, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.size and (offsets.min() < 0 or offsets.max() >= n_vox):
        raise ValueError(f"voxel offsets fall outside the {hdr.grid_shape} grid of {path}.")
    n_t, n_sel = hdr.n_volumes, offsets.size
    if out is None:
        out = np.empty((n_t, n_sel), dtype=np.float32)
    elif out.shape != (n_t, n_sel) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {(n_t, n_sel)}.")
    chunk = max(1, min(int(chunk), n_t))
    native = hdr.dtype.newbyteorder("=")
    direct = hdr.dtype == np.dtype(np.float32) and hdr.dtype.isnative
    vol_bytes = n_vox * hdr.dtype.itemsize
    if fileobj is None:
        opened = _open_stream(path, hdr.compressed)
    else:
        from zlib_ng import gzip_ng

        opened = gzip_ng.open(fileobj, "rb") if hdr.compressed else contextlib.nullcontext(fileobj)
    with opened as stream:
        skip = hdr.vox_offset
        while skip:
            step = min(skip, 1 << 24)
            _read_block(stream, step, path)
            skip -= step
        for start in range(0, n_t, chunk):
            k = min(chunk, n_t - start)
            raw = _read_block(stream, k * vol_bytes, path)
            block = np.frombuffer(raw, dtype=hdr.dtype).reshape(k, n_vox)
            target = out[start : start + k]
            if direct:
                np.take(block, offsets, axis=1, out=target)
            else:
                picked = np.take(block, offsets, axis=1)
                if not hdr.dtype.isnative:
                    picked = picked.byteswap().view(native)
                target[...] = picked
            del raw, block
            if hdr.scaled:
                if hdr.slope != 1.0:
                    target *= np.float32(hdr.slope)
                if hdr.inter != 0.0:
                    target += np.float32(hdr.inter)
        if hdr.compressed:
            # Reading on to the end makes gzip check the CRC32 and length trailer.
            try:
                while stream.read(1 << 20):
                    pass
            except _DECODE_ERRORS as exc:
                raise _corrupt(path, f"the gzip checksum does not match ({exc})") from exc
    return out


def read_volume(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a small 3-D map (mask, noise ceiling, R2) with its affine.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii``/``.nii.gz`` 3-D image (a 4-D image with one volume is accepted).

    Returns
    -------
    data : numpy.ndarray
        ``(x, y, z)`` array in nibabel's orientation, scaling applied (float64
        for scaled files, the on-disk dtype otherwise).
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-scanner transform.

    Raises
    ------
    CorruptFileError
        If the file is not a readable 3-D NIfTI.

    Examples
    --------
    >>> data, affine = read_volume("mask.nii.gz")  # doctest: +SKIP
    """
    import nibabel as nib

    path = Path(path)
    hdr = read_header(path)
    if hdr.n_volumes != 1:
        raise _corrupt(path, f"expected a 3-D map, found shape {hdr.shape}")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel/zlib raise many types for broken files
        raise _corrupt(path, f"the data cannot be read ({exc})") from exc
    if data.ndim == 4:
        data = data[..., 0]
    return np.asarray(data), hdr.affine


__all__ = [
    "NiftiHeader",
    "gather_offsets",
    "read_header",
    "read_masked",
    "read_volume",
]
