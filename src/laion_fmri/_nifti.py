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

import gzip
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
# What the dataset can hold, with a margin: every map this package reads lies on
# the 143^3 beta grid (1.8 mm; no 1.5 mm localizer map is read) and a session
# has at most ~1070 trials. A header beyond these bounds is refused
# before anything is allocated from it.
MAX_GRID_AXIS = 384
MAX_GRID_VOXELS = 1 << 22  # ~161^3: 1.4x the 143^3 beta grid
MAX_VOLUMES = 4096
# A NIfTI-1 volume larger than this (bytes) is not a plausible volume.
MAX_VOLUME_BYTES = MAX_GRID_VOXELS * 8
# Bytes decoded per step when a 3-D map is read.
_SLAB_BYTES = 1 << 22
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


def _gzip_size_bound(path: Path, expected: int) -> None:
    """Reject a header whose data could not fit in the compressed file at any ratio.

    This is the only up-front check for ``.gz`` files: the gzip trailer of the
    last member says nothing about a multi-member file (pigz, bgzip,
    concatenated streams), so it could reject a valid file. Truncation,
    trailing data and checksum errors are caught while streaming
    (:func:`_drain_gzip`).
    """
    size = path.stat().st_size
    if expected > size * _MAX_DEFLATE_RATIO + (1 << 20):
        raise _corrupt(path, f"the header claims {expected} bytes, impossible for a {size}-byte gzip")


def _drain_gzip(stream, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Read a gzip stream to its end after the image data.

    Reading on makes the decoder check every member's CRC32 and length
    trailer and reject non-gzip bytes after the last member. Any decompressed
    byte left over means the header declares less data than the file holds
    (for example fewer volumes), which is reported as corrupt.
    """
    extra = 0
    try:
        while chunk := stream.read(1 << 20):
            extra += len(chunk)
    except _DECODE_ERRORS as exc:
        raise _corrupt(
            path, f"the gzip stream after the image data is damaged or fails its checksum ({exc})"
        ) from exc
    if extra:
        raise _corrupt(
            path,
            f"{extra} decompressed bytes follow the data the header describes; the header "
            "declares fewer volumes than the file holds, or the file has trailing data",
        )


def read_header(path: str | os.PathLike[str], check_size: bool = True) -> NiftiHeader:
    """Parse and validate the NIfTI-1 header of ``path`` (``.nii`` or ``.nii.gz``).

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    check_size : bool
        Also check that the file can hold the data the header describes
        (file size for ``.nii``; for ``.nii.gz`` only a bound that no valid
        file can break, since multi-member gzip is valid: truncation and
        trailing data are caught while streaming by :func:`read_masked`).

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
    n_grid = shape[0] * shape[1] * shape[2]
    n_volumes = shape[3] if len(shape) > 3 else 1
    if (
        max(shape[:3]) > MAX_GRID_AXIS
        or n_grid > MAX_GRID_VOXELS
        or n_grid * dtype.itemsize > MAX_VOLUME_BYTES
        or n_volumes > MAX_VOLUMES
    ):
        raise _corrupt(
            path,
            f"dimensions {shape} are implausibly large for this dataset (at most "
            f"{MAX_GRID_AXIS} per axis, {MAX_GRID_VOXELS:,} voxels per volume, "
            f"{MAX_VOLUMES} volumes)",
        )

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
            _gzip_size_bound(path, needed)
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
    nx, ny, nz = (int(n) for n in grid_shape)
    if flat_c.size and (flat_c.min() < 0 or flat_c.max() >= nx * ny * nz):
        raise ValueError(f"voxel indices fall outside the {tuple(grid_shape)} grid.")
    # C index -> (i, j, k) -> Fortran offset, in chunks: memory stays the output
    # plus one chunk (unravel_index would hold three full-size index arrays).
    out = np.empty(flat_c.size, dtype=np.int64)
    step = 1 << 20
    for lo in range(0, flat_c.size, step):
        c = flat_c[lo : lo + step].astype(np.int64)
        k = c % nz
        c //= nz
        j = c % ny
        c //= ny
        out[lo : lo + step] = c + nx * (j + ny * k)
    return out


def read_masked(
    path: str | os.PathLike[str],
    offsets: np.ndarray | None = None,
    *,
    header: NiftiHeader | None = None,
    chunk: int = DEFAULT_CHUNK,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Stream a 3-D/4-D NIfTI and return the selected voxels of every volume.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii`` or ``.nii.gz`` file.
    offsets : numpy.ndarray, optional
        Disk-order voxel offsets from :func:`gather_offsets`; ``None`` keeps every
        voxel (in Fortran order).
    header : NiftiHeader, optional
        A header already read with :func:`read_header`.
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
        Bad header, a stream that ends early or fails to decompress, a gzip
        member whose CRC32/length trailer does not match, or (``.gz``)
        decompressed data beyond what the header describes. Multi-member gzip
        (pigz, bgzip/BGZF, concatenated streams) is read like single-member.
    ValueError
        If an offset is outside the volume or ``out`` has the wrong shape/dtype.

    Examples
    --------
    >>> hdr = read_header(path)  # doctest: +SKIP
    >>> betas = read_masked(path, gather_offsets(mask3d), header=hdr)  # doctest: +SKIP
    """
    path = Path(path)
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
    with _open_stream(path, hdr.compressed) as stream:
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
            _drain_gzip(stream, path)
    return out


def _stream_map(path: Path, hdr: NiftiHeader, out: np.ndarray, convert) -> None:  # type: ignore[no-untyped-def]
    """Decode the one volume of ``hdr`` in slabs into the flat (disk-order) ``out``.

    Memory is ``out`` plus one slab; nothing is sized from the header before
    :func:`read_header` has checked it against the dataset and the file.
    """
    itemsize = hdr.dtype.itemsize
    per_slab = max(1, _SLAB_BYTES // itemsize)
    with _open_stream(path, hdr.compressed) as stream:
        skip = hdr.vox_offset
        while skip:
            step = min(skip, 1 << 22)
            _read_block(stream, step, path)
            skip -= step
        for start in range(0, out.size, per_slab):
            k = min(per_slab, out.size - start)
            raw = _read_block(stream, k * itemsize, path)
            out[start : start + k] = convert(np.frombuffer(raw, dtype=hdr.dtype))
        if hdr.compressed:
            try:
                while stream.read(1 << 20):
                    pass
            except _DECODE_ERRORS as exc:
                raise _corrupt(path, f"the gzip checksum does not match ({exc})") from exc


def _read_map_header(path: Path) -> NiftiHeader:
    hdr = read_header(path)
    if hdr.n_volumes != 1:
        raise _corrupt(path, f"expected a 3-D map, found shape {hdr.shape}")
    return hdr


def map_dtype(hdr: NiftiHeader) -> np.dtype:
    """The dtype :func:`read_volume` returns for a file: never wider than needed.

    Parameters
    ----------
    hdr : NiftiHeader
        The file's header.

    Returns
    -------
    numpy.dtype
        float32 for scaled files, else the on-disk dtype in native byte order.

    Examples
    --------
    >>> map_dtype(read_header("mask.nii.gz"))  # doctest: +SKIP
    dtype('uint8')
    """
    return np.dtype(np.float32) if hdr.scaled else hdr.dtype.newbyteorder("=")


def read_volume(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a small 3-D map (mask, noise ceiling, R2) with its affine.

    The header is checked against the dataset's grid bounds and the file's
    size first; the data are then decoded in slabs straight into the result,
    which keeps the on-disk dtype (float32 when the file asks for scaling), so
    nothing is widened to float64.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii``/``.nii.gz`` 3-D image (a 4-D image with one volume is accepted).

    Returns
    -------
    data : numpy.ndarray
        ``(x, y, z)`` array in nibabel's orientation (see :func:`map_dtype`
        for its dtype).
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-scanner transform.

    Raises
    ------
    CorruptFileError
        If the file is not a readable 3-D NIfTI within the dataset's bounds.

    Examples
    --------
    >>> data, affine = read_volume("mask.nii.gz")  # doctest: +SKIP
    """
    path = Path(path)
    hdr = _read_map_header(path)
    out = np.empty(hdr.volume_size, dtype=map_dtype(hdr))
    slope, inter = np.float32(hdr.slope), np.float32(hdr.inter)

    def convert(block: np.ndarray) -> np.ndarray:
        if not hdr.scaled:
            return block
        values = block.astype(np.float32)
        if hdr.slope != 1.0:
            values *= slope
        if hdr.inter != 0.0:
            values += inter
        return values

    _stream_map(path, hdr, out, convert)
    return out.reshape(hdr.grid_shape, order="F"), hdr.affine


def nonzero(values: np.ndarray) -> np.ndarray:
    """Boolean "inside" test of map values: non-zero and not NaN (no float64 copy).

    Parameters
    ----------
    values : numpy.ndarray
        Map values of any numeric dtype.

    Returns
    -------
    numpy.ndarray
        bool, same shape.

    Examples
    --------
    >>> nonzero(np.array([0.0, 1.0, np.nan], np.float32)).tolist()
    [False, True, False]
    """
    values = np.asarray(values)
    inside = values != 0
    if values.dtype.kind in "fc":
        inside &= ~np.isnan(values)
    return inside


def read_mask(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D map as a boolean mask (non-zero and not NaN) with its affine.

    Memory is the boolean grid plus one decoded slab (a few MB): the map is
    never held at its on-disk or a widened dtype.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii``/``.nii.gz`` 3-D image (brain mask, mean R2, ROI mask).

    Returns
    -------
    mask : numpy.ndarray
        ``(x, y, z)`` bool array in nibabel's orientation.
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-scanner transform.

    Raises
    ------
    CorruptFileError
        If the file is not a readable 3-D NIfTI within the dataset's bounds.

    Examples
    --------
    >>> mask, affine = read_mask("sub-03_..._desc-R2mean_statmap.nii.gz")  # doctest: +SKIP
    >>> mask.dtype
    dtype('bool')
    """
    path = Path(path)
    hdr = _read_map_header(path)
    out = np.empty(hdr.volume_size, dtype=bool)

    def convert(block: np.ndarray) -> np.ndarray:
        # slope * v + inter != 0 cannot be decided from v alone when inter != 0.
        if hdr.scaled:
            block = block.astype(np.float32) * np.float32(hdr.slope) + np.float32(hdr.inter)
        return nonzero(block)

    _stream_map(path, hdr, out, convert)
    return out.reshape(hdr.grid_shape, order="F"), hdr.affine


__all__ = [
    "NiftiHeader",
    "gather_offsets",
    "map_dtype",
    "nonzero",
    "read_header",
    "read_mask",
    "read_masked",
    "read_volume",
]
