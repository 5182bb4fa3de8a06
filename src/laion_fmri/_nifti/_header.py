"""NIfTI-1 header parsing and the bounds every header is checked against.

Also the stream primitives the readers share: open a ``.nii``/``.nii.gz``
stream, read an exact block, skip to the data.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import zlib
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
DECODE_ERRORS = (EOFError, OSError, gzip.BadGzipFile, zlib.error, _ZlibNgError)

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


def corrupt(path: Path, why: str) -> CorruptFileError:
    return CorruptFileError(
        f"{path} is not a readable NIfTI-1 file: {why}. Delete it and download it again "
        "(`laion_fmri.download.download(...)` re-fetches missing files)."
    )


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_stream(path: Path | BinaryIO, compressed: bool):  # type: ignore[no-untyped-def]
    """Decompressing reader of a path or of an already open binary stream."""
    if compressed:
        from zlib_ng import gzip_ng

        return gzip_ng.open(path, "rb")
    if not isinstance(path, Path):
        return contextlib.nullcontext(path)
    return open(path, "rb", buffering=0)


def read_block(stream, nbytes: int, path: Path) -> bytes:  # type: ignore[no-untyped-def]
    """Read exactly ``nbytes`` or raise :class:`CorruptFileError` (truncation).

    ``read(n)`` of a whole volume lets zlib-ng inflate straight into one new
    buffer, which measured faster than ``readinto`` a reused one.
    """
    try:
        data = stream.read(nbytes)
        while len(data) < nbytes:
            more = stream.read(nbytes - len(data))
            if not more:
                raise corrupt(path, f"the data ends early ({len(data)} of {nbytes} bytes of a block)")
            data += more
    except DECODE_ERRORS as exc:
        raise corrupt(path, f"the compressed stream is damaged or truncated ({exc})") from exc
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
        raise corrupt(path, f"the header claims {expected} bytes, impossible for a {size}-byte gzip")


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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIfTI file {path} does not exist.")
    compressed = _is_gzip(path)
    try:
        with open_stream(path, compressed) as stream:
            raw = stream.read(HEADER_SIZE)
    except DECODE_ERRORS as exc:
        raise corrupt(path, f"cannot decompress the header ({exc})") from exc
    header = parse_header(raw, path, compressed)
    if check_size:
        needed = header.vox_offset + header.data_bytes
        if compressed:
            _gzip_size_bound(path, needed)
        elif path.stat().st_size < needed:
            raise corrupt(
                path,
                f"the header describes {needed} bytes but the file has {path.stat().st_size}",
            )
    return header


def parse_header(raw: bytes, path: Path, compressed: bool) -> NiftiHeader:
    """Parse and validate a NIfTI-1 header from its (decompressed) first bytes.

    Parameters
    ----------
    raw : bytes
        At least the first :data:`HEADER_SIZE` bytes of the image, decompressed.
    path : pathlib.Path
        Where they come from (a file, or an object key): named in messages and
        kept as :attr:`NiftiHeader.path`.
    compressed : bool
        Whether the image is gzip-compressed.

    Returns
    -------
    NiftiHeader

    Raises
    ------
    CorruptFileError
        As :func:`read_header` (every check that needs no file size).

    Examples
    --------
    >>> hdr = parse_header(first_bytes, Path("betas.nii.gz"), True)  # doctest: +SKIP
    """
    import nibabel as nib

    raw = bytes(raw[:HEADER_SIZE])
    if len(raw) < HEADER_SIZE:
        raise corrupt(path, f"only {len(raw)} header bytes (need {HEADER_SIZE})")
    if struct.unpack("<i", raw[:4])[0] == HEADER_SIZE:
        endian = "<"
    elif struct.unpack(">i", raw[:4])[0] == HEADER_SIZE:
        endian = ">"
    else:
        raise corrupt(path, "sizeof_hdr is not 348 (not NIfTI-1; NIfTI-2 is not supported)")
    if raw[344:348] != b"n+1\x00":
        raise corrupt(path, f"bad magic {raw[344:348]!r} (only single-file n+1 images are read)")
    hdr = nib.Nifti1Header(binaryblock=raw, endianness=endian, check=False)

    dim = [int(d) for d in hdr["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dim[1 : ndim + 1]):
        raise corrupt(path, f"absurd dimensions {dim}")
    sizes = [*dim[1 : ndim + 1], 1, 1, 1][:max(ndim, 3)]
    if ndim > 4 and any(d != 1 for d in sizes[4:]):
        raise corrupt(path, f"{ndim}-D data {sizes} is not supported (3-D or 4-D only)")
    shape = tuple(sizes[:4]) if ndim >= 4 else tuple(sizes[:3])
    code = int(hdr["datatype"])
    if code not in _NIFTI_DTYPES:
        raise corrupt(path, f"unsupported datatype code {code}")
    dtype = np.dtype(endian + _NIFTI_DTYPES[code])
    if int(hdr["bitpix"]) not in (0, dtype.itemsize * 8):
        raise corrupt(path, f"bitpix {int(hdr['bitpix'])} does not match datatype {dtype}")
    vox_offset_f = float(hdr["vox_offset"])
    if not np.isfinite(vox_offset_f) or vox_offset_f < 0 or vox_offset_f > 1 << 24:
        raise corrupt(path, f"vox_offset {vox_offset_f} is out of range")
    vox_offset = max(int(vox_offset_f), 352)
    n_grid = shape[0] * shape[1] * shape[2]
    n_volumes = shape[3] if len(shape) > 3 else 1
    if (
        max(shape[:3]) > MAX_GRID_AXIS
        or n_grid > MAX_GRID_VOXELS
        or n_grid * dtype.itemsize > MAX_VOLUME_BYTES
        or n_volumes > MAX_VOLUMES
    ):
        raise corrupt(
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
        raise corrupt(path, f"the orientation (qform/sform) is invalid ({exc})") from exc

    return NiftiHeader(path, shape, dtype, vox_offset, slope, inter, affine, compressed)



def apply_scaling(values: np.ndarray, hdr: NiftiHeader) -> np.ndarray:
    """Apply the header's ``scl_slope``/``scl_inter`` to float32 ``values`` in place."""
    if hdr.slope != 1.0:
        values *= np.float32(hdr.slope)
    if hdr.inter != 0.0:
        values += np.float32(hdr.inter)
    return values


def skip_to_data(stream, hdr: NiftiHeader, path: Path, step: int) -> None:  # type: ignore[no-untyped-def]
    """Read past the header and extension bytes, ``step`` bytes at a time."""
    skip = hdr.vox_offset
    while skip:
        n = min(skip, step)
        read_block(stream, n, path)
        skip -= n


__all__ = [
    "DECODE_ERRORS",
    "DEFAULT_CHUNK",
    "HEADER_SIZE",
    "MAX_GRID_AXIS",
    "MAX_GRID_VOXELS",
    "MAX_VOLUMES",
    "MAX_VOLUME_BYTES",
    "NiftiHeader",
    "apply_scaling",
    "corrupt",
    "open_stream",
    "read_block",
    "read_header",
    "skip_to_data",
]
