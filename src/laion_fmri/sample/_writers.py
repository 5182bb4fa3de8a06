"""Thin file writers of the sample generator (deterministic bytes for a given input).

NIfTI files are written as header bytes followed by data volumes through a
gzip stream (``zlib-ng``), so a 4-D file is never held in memory; nibabel only
builds the header.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from zlib_ng import gzip_ng

_VOX_OFFSET = 352  # 348-byte header + 4-byte extension flag


def _ensure_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def nifti_header(
    shape: tuple[int, ...],
    affine: np.ndarray,
    dtype: np.dtype | type,
    *,
    slope: float | None = None,
    inter: float | None = None,
    big_endian: bool = False,
    description: str = "",
) -> nib.Nifti1Header:
    """A NIfTI-1 single-file header for data written in Fortran order after 352 bytes."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape)
    hdr.set_qform(affine, code=1)
    hdr.set_sform(affine, code=1)
    zooms = tuple(float(z) for z in np.linalg.norm(affine[:3, :3], axis=0))
    hdr.set_zooms(zooms + (1.0,) * (len(shape) - 3))
    hdr.set_xyzt_units("mm", "sec")
    hdr["vox_offset"] = _VOX_OFFSET
    if slope is not None:
        hdr["scl_slope"] = slope
        hdr["scl_inter"] = 0.0 if inter is None else inter
    hdr["descrip"] = description[:79].encode("ascii")
    if big_endian:
        hdr = hdr.as_byteswapped(">")
    return hdr


GZIP_STYLES = ("single", "concatenated", "bgzf")
_BGZF_BLOCK = 0xFF00  # bgzip's uncompressed block size
# The 28-byte empty BGZF block bgzip appends as its end-of-file marker.
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _bgzf_block(data: bytes, level: int) -> bytes:
    """One BGZF member: gzip with an FEXTRA ``BC`` subfield holding the block size - 1."""
    import zlib

    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    deflated = compressor.compress(data) + compressor.flush()
    block_size = 18 + len(deflated) + 8  # header with extra field + data + trailer
    header = bytes([0x1F, 0x8B, 8, 4, 0, 0, 0, 0, 0, 0xFF]) + struct.pack(
        "<HBBHH", 6, ord("B"), ord("C"), 2, block_size - 1
    )
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + deflated + trailer


class _MemberWriter:
    """A writable that emits a new gzip member per ``write`` batch (multi-member gzip).

    ``concatenated`` writes one ordinary gzip member per volume (what ``cat a.gz
    b.gz`` or a parallel compressor's per-chunk output looks like); ``bgzf``
    writes 0xFF00-byte BGZF blocks with the FEXTRA ``BC`` field and the EOF
    block, like ``bgzip``.
    """

    def __init__(self, raw, style: str, level: int) -> None:  # type: ignore[no-untyped-def]
        self.raw, self.style, self.level = raw, style, level
        self.pending = bytearray()

    def write(self, data: bytes) -> None:
        self.pending += data
        if self.style == "bgzf":
            while len(self.pending) >= _BGZF_BLOCK:
                self.raw.write(_bgzf_block(bytes(self.pending[:_BGZF_BLOCK]), self.level))
                del self.pending[:_BGZF_BLOCK]

    def end_member(self) -> None:
        if self.style == "concatenated" and self.pending:
            self.raw.write(gzip_ng.compress(bytes(self.pending), self.level, mtime=0))
            self.pending.clear()

    def close(self) -> None:
        if self.style == "bgzf":
            if self.pending:
                self.raw.write(_bgzf_block(bytes(self.pending), self.level))
            self.raw.write(_BGZF_EOF)
        else:
            self.end_member()


def write_nifti_stream(
    path: Path,
    header: nib.Nifti1Header,
    volumes: Iterable[np.ndarray],
    level: int = 6,
    gzip_style: str = "single",
) -> None:
    """Write ``header`` and then each 3-D volume (cast to the header dtype) through gzip.

    The caller yields volumes in time order; each is written in Fortran order
    as NIfTI requires. Bytes are reproducible (gzip mtime 0, no stored name).
    ``gzip_style`` is ``"single"`` (one member), ``"concatenated"`` (one gzip
    member for the header and one per volume) or ``"bgzf"`` (bgzip blocks).
    """
    if gzip_style not in GZIP_STYLES:
        raise ValueError(f"gzip_style must be one of {GZIP_STYLES}, not {gzip_style!r}")
    dtype = header.get_data_dtype()
    shape = header.get_data_shape()[:3]
    head = header.binaryblock + b"\x00" * (_VOX_OFFSET - len(header.binaryblock))

    def _bodies() -> Iterable[bytes]:
        for vol in volumes:
            arr = np.asarray(vol)
            if arr.shape != shape:
                raise ValueError(f"volume shape {arr.shape} != header shape {shape}")
            yield arr.astype(dtype, copy=False).tobytes(order="F")

    with open(_ensure_parent(path), "wb") as raw:
        if gzip_style == "single":
            with gzip_ng.GzipFile(
                filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0
            ) as gz:
                gz.write(head)
                for body in _bodies():
                    gz.write(body)
            return
        members = _MemberWriter(raw, gzip_style, level)
        members.write(head)
        members.end_member()
        for body in _bodies():
            members.write(body)
            members.end_member()
        members.close()


def write_volume(path: Path, data: np.ndarray, affine: np.ndarray, level: int = 6,
                 description: str = "") -> None:
    """Write one 3-D volume in its own dtype."""
    hdr = nifti_header(data.shape, affine, data.dtype, description=description)
    write_nifti_stream(path, hdr, [data], level=level)


def write_json(path: Path, obj: object) -> None:
    """Pretty, sorted-key JSON with a trailing newline."""
    _ensure_parent(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n",
                                    encoding="utf-8")


def write_table(path: Path, frame: pd.DataFrame, sep: str = ",") -> None:
    """CSV/TSV without index, ``\\n`` line ends."""
    frame.to_csv(_ensure_parent(path), sep=sep, index=False, lineterminator="\n")


def write_gifti(path: Path, values: np.ndarray) -> None:
    """A one-array ``.func.gii`` with per-vertex float32 values."""
    arr = nib.gifti.GiftiDataArray(np.asarray(values, np.float32), intent="NIFTI_INTENT_NONE",
                                   datatype="NIFTI_TYPE_FLOAT32")
    img = nib.gifti.GiftiImage(darrays=[arr])
    nib.save(img, str(_ensure_parent(path)))


def write_fs_label(path: Path, subject: str, vertices: np.ndarray, coords: np.ndarray) -> None:
    """FreeSurfer ASCII ``.label``: header, count, then ``vno x y z value`` rows."""
    lines = [f"#!ascii label  , from subject {subject} vox2ras=TkReg", str(len(vertices))]
    lines += [f"{v:d}  {x:.3f}  {y:.3f}  {z:.3f} 1.0000000000"
              for v, (x, y, z) in zip(vertices, coords[vertices], strict=True)]
    _ensure_parent(path).write_text("\n".join(lines) + "\n", encoding="ascii")
