"""Thin file writers of the sample generator (deterministic bytes for a given input).

NIfTI files are written as header bytes followed by data volumes through a
gzip stream (``zlib-ng``), so a 4-D file is never held in memory; nibabel only
builds the header.
"""

from __future__ import annotations

import json
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


def write_nifti_stream(
    path: Path,
    header: nib.Nifti1Header,
    volumes: Iterable[np.ndarray],
    level: int = 6,
) -> None:
    """Write ``header`` and then each 3-D volume (cast to the header dtype) through gzip.

    The caller yields volumes in time order; each is written in Fortran order
    as NIfTI requires. Bytes are reproducible (gzip mtime 0, no stored name).
    """
    dtype = header.get_data_dtype()
    shape = header.get_data_shape()[:3]
    with open(_ensure_parent(path), "wb") as raw, gzip_ng.GzipFile(
        filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0
    ) as gz:
        gz.write(header.binaryblock)
        gz.write(b"\x00" * (_VOX_OFFSET - len(header.binaryblock)))
        for vol in volumes:
            arr = np.asarray(vol)
            if arr.shape != shape:
                raise ValueError(f"volume shape {arr.shape} != header shape {shape}")
            gz.write(arr.astype(dtype, copy=False).tobytes(order="F"))


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
