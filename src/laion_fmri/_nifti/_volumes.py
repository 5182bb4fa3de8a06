"""4-D streaming: the selected voxels of every volume, a few volumes at a time."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from laion_fmri._nifti._header import (
    DECODE_ERRORS,
    DEFAULT_CHUNK,
    NiftiHeader,
    apply_scaling,
    corrupt,
    open_stream,
    read_header,
    skip_to_data,
)

__all__ = ["gather_offsets", "read_masked"]

#: Compressed bytes zlib-ng's reader asks its source for at a time, at most (fewer, larger
#: reads: a stream's reads each need the GIL, which busy network threads make slow to get;
#: a stream from the source returns what has arrived, so decoding starts on the first range).
_GZIP_READ_BUFFER = 4 << 20


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
    except DECODE_ERRORS as exc:
        raise corrupt(
            path, f"the gzip stream after the image data is damaged or fails its checksum ({exc})"
        ) from exc
    if extra:
        raise corrupt(
            path,
            f"{extra} decompressed bytes follow the data the header describes; the header "
            "declares fewer volumes than the file holds, or the file has trailing data",
        )


@contextlib.contextmanager
def _open_volumes(source: Path | BinaryIO, compressed: bool) -> Iterator[Any]:
    """A reader whose ``readinto`` fills the caller's buffer directly.

    For gzip that is zlib-ng's native reader (the one ``gzip_ng.open`` wraps,
    with the same member CRC32/length checks), without the buffered wrapper
    whose ``readinto`` would allocate a new ``bytes`` and copy it.
    """
    if not compressed:
        with open_stream(source, compressed) as stream:
            yield stream
        return
    try:
        from zlib_ng.zlib_ng import _GzipReader
    except ImportError:  # pragma: no cover - another zlib-ng layout: the buffered reader
        with open_stream(source, compressed) as stream:
            yield stream
        return
    with contextlib.ExitStack() as stack:
        fh = source if not isinstance(source, Path) else stack.enter_context(open(source, "rb"))
        try:
            reader = _GzipReader(fh, _GZIP_READ_BUFFER)
        except TypeError:  # a private class: another zlib-ng may take other arguments
            reader = None
        if reader is None:
            stream = stack.enter_context(open_stream(fh, compressed))
            yield stream
            return
        stack.callback(reader.close)
        yield reader


def _read_into(stream: Any, view: memoryview, path: Path) -> None:
    """Fill ``view`` from ``stream`` or raise :class:`CorruptFileError` (truncated or damaged)."""
    filled, want = 0, len(view)
    try:
        while filled < want:
            n = stream.readinto(view[filled:])
            if not n:
                raise corrupt(path, f"the data ends early ({filled} of {want} bytes of a block)")
            filled += n
    except DECODE_ERRORS as exc:
        raise corrupt(path, f"the compressed stream is damaged or truncated ({exc})") from exc


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
        ``.nii`` or ``.nii.gz`` file, or an open binary stream of one positioned
        at its first byte (bytes arriving from the source; ``header`` is then
        required).
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
    # One buffer for every block, filled in place: no allocation per volume (a fresh
    # block per volume costs page faults, 4x the decode time where malloc returns
    # freed memory eagerly, e.g. in dask workers).
    buf = np.empty(chunk * n_vox, dtype=hdr.dtype)
    view = memoryview(buf).cast("B")
    with _open_volumes(path if fileobj is None else fileobj, hdr.compressed) as stream:
        skip_to_data(stream, hdr, path, 1 << 24)
        for start in range(0, n_t, chunk):
            k = min(chunk, n_t - start)
            _read_into(stream, view[: k * vol_bytes], path)
            block = buf[: k * n_vox].reshape(k, n_vox)
            target = out[start : start + k]
            if direct:
                np.take(block, offsets, axis=1, out=target)
            else:
                picked = np.take(block, offsets, axis=1)
                if not hdr.dtype.isnative:
                    picked = picked.byteswap().view(native)
                target[...] = picked
            del block
            if hdr.scaled:
                apply_scaling(target, hdr)
        if hdr.compressed:
            _drain_gzip(stream, path)
    return out
