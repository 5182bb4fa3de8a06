"""The crafted hostile files: how each is built, what call reads it, what it must raise.

Every builder gets the data directory (a copy of the tiny sample) and the path
it will overwrite, and returns the crafted bytes (all under 10 MB). The
``expected`` exception class is exact; ``None`` means a rebuildable state file
that must be ignored and rebuilt (the call succeeds with correct data).
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from laion_fmri import layout
from laion_fmri.sample import spec_for

SPEC = spec_for("tiny")
SUB = "sub-03"
SES = "ses-01"
BETAS_KEY = layout.betas_key(SUB, SES)
MAX_CRAFTED_BYTES = 10 * 1000 * 1000
CONFIG_TARGET = "<config>"
SIDECAR_TARGET = "<sidecar>"
ROI_TARGET = "<roi FFA1>"


@dataclass(frozen=True)
class Case:
    """One crafted file.

    Attributes
    ----------
    name : str
        Stable id.
    kind : str
        ``nifti``, ``hdf5``, ``tsv``, ``csv`` or ``json``.
    target : str
        Key under the data directory it replaces (or a ``<...>`` placeholder).
    action : str
        Name of the public call in :data:`hostile.probe.ACTIONS` that reads it.
    expected : str or None
        Exact exception class name, or ``None`` (ignored and rebuilt).
    build : callable
        ``(data_dir, target_path) -> bytes``.
    legit : int
        Bytes the call may legitimately allocate for what the file really holds.
    """

    name: str
    kind: str
    target: str
    action: str
    expected: str | None
    build: Callable[[Path, Path], bytes]
    legit: int = 0
    # A mismatch between two files (mask grid vs betas grid) may name the other one.
    names_other: bool = False


# --------------------------------------------------------------------------- NIfTI
def nifti_header_and_data(sample_root: Path, key: str = BETAS_KEY) -> tuple[bytearray, bytes]:
    """Header (348 bytes, mutable) and the rest of the sample's beta file."""
    raw = gzip.decompress((sample_root / key).read_bytes())
    return bytearray(raw[:348]), raw[348:]


def set_field(hdr: bytearray, fmt: str, offset: int, *values: object) -> None:
    """Overwrite a little-endian header field."""
    struct.pack_into("<" + fmt, hdr, offset, *values)


def dims_of(hdr: bytearray) -> list[int]:
    """The ``dim`` array of a header."""
    return list(struct.unpack_from("<8h", hdr, 40))


def craft_betas(sample_root: Path, key: str = BETAS_KEY) -> dict[str, bytes]:
    """Name -> bytes of crafted beta files (mutations of the sample's file ``key``)."""
    base_hdr, rest = nifti_header_and_data(sample_root, key)
    dims = dims_of(base_hdr)
    cases: dict[str, bytes] = {}

    def gz(hdr: bytearray, body: bytes = rest) -> bytes:
        return gzip.compress(bytes(hdr) + body, compresslevel=1)

    def mutate(name: str, fn: Callable[[bytearray], None], body: bytes = rest) -> None:
        hdr = bytearray(base_hdr)
        fn(hdr)
        cases[name] = gz(hdr, body)

    mutate("dims_absurd", lambda h: set_field(h, "8h", 40, 4, 32767, 32767, 32767, 32767, 1, 1, 1))
    mutate("dims_12GB_claim", lambda h: set_field(h, "8h", 40, 4, 143, 143, 143, 1050, 1, 1, 1))
    mutate("dim0_zero", lambda h: set_field(h, "h", 40, 0))
    mutate("dim0_eight", lambda h: set_field(h, "h", 40, 8))
    mutate("dim_negative", lambda h: set_field(h, "h", 42, -5))
    mutate("dim_zero", lambda h: set_field(h, "h", 44, 0))
    mutate("five_d", lambda h: set_field(h, "8h", 40, 5, *dims[1:5], 2, 1, 1))
    mutate("more_volumes_than_data", lambda h: set_field(h, "h", 48, dims[4] * 10))
    mutate("fewer_volumes_than_data", lambda h: set_field(h, "h", 48, dims[4] - 1))
    mutate("grid_mismatch", lambda h: set_field(h, "3h", 42, dims[2], dims[1], dims[3] + 1))
    mutate("vox_offset_negative", lambda h: set_field(h, "f", 108, -1000.0))
    mutate("vox_offset_huge", lambda h: set_field(h, "f", 108, 1e12))
    mutate("vox_offset_nan", lambda h: set_field(h, "f", 108, float("nan")))
    mutate("vox_offset_past_data", lambda h: set_field(h, "f", 108, float(len(rest) + 10_000)))
    mutate("datatype_rgb", lambda h: set_field(h, "2h", 70, 128, 24))
    mutate("datatype_unknown", lambda h: set_field(h, "2h", 70, 12345, 32))
    mutate("bitpix_mismatch", lambda h: set_field(h, "h", 72, 8))
    mutate("bad_magic", lambda h: h.__setitem__(slice(344, 348), b"xxxx"))
    mutate("nifti2_sizeof_hdr", lambda h: set_field(h, "i", 0, 540))
    mutate("sizeof_hdr_garbage", lambda h: set_field(h, "i", 0, 7))
    mutate("data_truncated", lambda h: None, body=rest[: len(rest) // 2])
    whole = (sample_root / key).read_bytes()
    cases["gzip_truncated"] = whole[: len(whole) // 2]
    cases["gzip_trailer_cut"] = whole[:-8]
    cases["gzip_corrupt_middle"] = whole[:200] + bytes(500) + whole[700:]
    cases["garbage"] = os.urandom(4096)
    cases["empty"] = b""
    cases["header_only"] = gzip.compress(bytes(base_hdr))
    cases["html_error_page"] = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>"
    return cases


BETAS_CASE_NAMES = [
    "dims_absurd", "dims_12GB_claim", "dim0_zero", "dim0_eight", "dim_negative", "dim_zero",
    "five_d", "more_volumes_than_data", "fewer_volumes_than_data", "grid_mismatch",
    "vox_offset_negative", "vox_offset_huge", "vox_offset_nan", "vox_offset_past_data",
    "datatype_rgb", "datatype_unknown", "bitpix_mismatch", "bad_magic", "nifti2_sizeof_hdr",
    "sizeof_hdr_garbage", "data_truncated", "gzip_truncated", "gzip_trailer_cut",
    "gzip_corrupt_middle", "garbage", "empty", "header_only", "html_error_page",
]


def _zeros_gzip(prefix: bytes, n_zero: int, fill: int = 0) -> bytes:
    """``gzip(prefix + n_zero bytes of value fill)``, streamed (never holds the raw data)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = io.BytesIO()
    out.write(comp.compress(prefix))
    block = bytes([fill]) * (1 << 22)
    left = n_zero
    while left:
        step = min(left, len(block))
        out.write(comp.compress(block[:step]))
        left -= step
    out.write(comp.flush())
    return out.getvalue()


def synthetic_nifti(shape: tuple[int, ...], code: int, bitpix: int, *, fill: int = 0,
                    slope: float = 1.0, inter: float = 0.0, n_data: int | None = None) -> bytes:
    """A valid gzip NIfTI-1 of ``shape`` whose data bytes are all ``fill``.

    ``n_data`` overrides how many data bytes really follow the header.
    """
    hdr = bytearray(348)
    set_field(hdr, "i", 0, 348)
    dims = [len(shape), *shape, *([1] * (7 - len(shape)))]
    set_field(hdr, "8h", 40, *dims)
    set_field(hdr, "2h", 70, code, bitpix)
    set_field(hdr, "8f", 76, 1.0, 1.8, 1.8, 1.8, 1.0, 1.0, 1.0, 1.0)
    set_field(hdr, "f", 108, 352.0)
    set_field(hdr, "2f", 112, slope, inter)
    set_field(hdr, "2h", 252, 0, 1)  # qform 0, sform 1
    set_field(hdr, "4f", 280, 1.8, 0, 0, 0)
    set_field(hdr, "4f", 296, 0, 1.8, 0, 0)
    set_field(hdr, "4f", 312, 0, 0, 1.8, 0)
    hdr[344:348] = b"n+1\x00"
    n_vox = int(np.prod(shape, dtype=np.int64))
    nbytes = n_vox * bitpix // 8 if n_data is None else n_data
    return _zeros_gzip(bytes(hdr) + b"\x00" * 4, nbytes, fill)


@functools.lru_cache(maxsize=2)
def _crafted_betas(data_dir: str) -> dict[str, bytes]:
    return craft_betas(Path(data_dir))


def _nifti_cases() -> list[Case]:
    cases = [
        Case(f"betas_{name}", "nifti", BETAS_KEY, "betas", "CorruptFileError",
             lambda d, t, n=name: _crafted_betas(str(d))[n])
        for name in BETAS_CASE_NAMES
    ]
    r2 = layout.r2mean_key(SUB)
    roi = ROI_TARGET
    nc = layout.session_nc_key(SUB, SES)
    bound = 161  # the largest cube within nifti.MAX_GRID_VOXELS
    side = bound ** 3
    grid = SPEC.grid_shape
    n_t = SPEC.n_trials_in(SUB, SES)
    cases += [
        # The review's example: a 1.5 MB valid .nii.gz declaring a 700^3 mask.
        Case("mask_700_cubed", "nifti", r2, "betas", "CorruptFileError",
             lambda d, t: synthetic_nifti((700, 700, 700), 2, 8)),
        Case("mask_700_cubed_float64", "nifti", r2, "n_voxels", "CorruptFileError",
             lambda d, t: synthetic_nifti((700, 700, 700), 64, 64, n_data=1 << 24)),
        Case("mask_axis_too_long", "nifti", r2, "n_voxels", "CorruptFileError",
             lambda d, t: synthetic_nifti((4000, 2, 2), 2, 8)),
        # Within the bounds, all voxels "in": read, then refused against the beta grid.
        Case("mask_at_bound_all_ones", "nifti", r2, "betas", "CorruptFileError",
             lambda d, t: synthetic_nifti((bound,) * 3, 2, 8, fill=1), legit=side * 8, names_other=True),
        Case("mask_at_bound_int16_scaled", "nifti", r2, "betas", "CorruptFileError",
             lambda d, t: synthetic_nifti((bound,) * 3, 4, 16, fill=1, slope=0.5, inter=1.0),
             legit=side * 8, names_other=True),
        Case("mask_at_bound_float64", "nifti", r2, "betas", "CorruptFileError",
             lambda d, t: synthetic_nifti((bound,) * 3, 64, 64), legit=side * 8, names_other=True),
        Case("mask_4d_many_volumes", "nifti", r2, "n_voxels", "CorruptFileError",
             lambda d, t: synthetic_nifti((*grid, 4000), 2, 8)),
        Case("roi_700_cubed", "nifti", roi, "roi", "CorruptFileError",
             lambda d, t: synthetic_nifti((700, 700, 700), 2, 8)),
        Case("roi_wrong_grid_at_bound", "nifti", roi, "roi", "CorruptFileError",
             lambda d, t: synthetic_nifti((bound,) * 3, 16, 32, fill=0)),
        Case("nc_map_700_cubed", "nifti", nc, "nc", "CorruptFileError",
             lambda d, t: synthetic_nifti((700, 700, 700), 16, 32, n_data=1 << 24)),
        Case("betas_declares_9999_volumes", "nifti", BETAS_KEY, "betas", "CorruptFileError",
             lambda d, t: synthetic_nifti((*grid, 9999), 16, 32)),
        # Self-consistent: 4000 real (zero) volumes on the right grid, but the trial
        # table has far fewer rows. Decoding them is legitimate; then it is refused.
        Case("betas_4000_real_volumes", "nifti", BETAS_KEY, "betas_and_metadata", "CorruptFileError",
             lambda d, t: synthetic_nifti((*grid, 4000), 16, 32),
             legit=4000 * SPEC.n_brain_voxels * 4 * 2),
        Case("betas_volumes_of_other_trials", "nifti", BETAS_KEY, "betas_and_metadata", "CorruptFileError",
             lambda d, t: synthetic_nifti((*grid, n_t + 1), 16, 32),
             legit=(n_t + 1) * SPEC.n_brain_voxels * 4 * 2),
    ]
    return cases


# --------------------------------------------------------------------------- HDF5
def _h5_bytes(fill: Callable[[h5py.File], None]) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as fh:
        fill(fh)
    return buf.getvalue()


def _embedding_file(n: int, dim: int, *, dtype: str = "f2", ids_dtype: object = None,
                    chunks: tuple[int, int] | None = None) -> bytes:
    """An embedding file whose big dataset is declared but never written (no storage).

    A few image ids are written (in small chunks, so the file stays small).
    """

    def fill(fh: h5py.File) -> None:
        fh.create_dataset(layout.H5_EMBEDDING, shape=(n, dim), dtype=dtype, chunks=chunks)
        kind = np.dtype(ids_dtype) if ids_dtype is not None else h5py.string_dtype()
        ds = fh.create_dataset(layout.H5_IMAGE_IDS, shape=(n,), dtype=kind, chunks=(1,))
        if kind.kind in "SO":
            ds[0] = "img_0.jpg"
        fh.create_dataset(layout.H5_VALID, shape=(n,), dtype=bool, chunks=(min(n, 1 << 16),))

    return _h5_bytes(fill)


def _hdf5_cases() -> list[Case]:
    emb = layout.embeddings_key("CLIP")
    seg = layout.SEGMENTATIONS_KEY
    img = layout.STIMULI_IMAGES_KEY

    def masks(shape: tuple[int, ...], chunks: tuple[int, ...] | None = None) -> Callable[[Path, Path], bytes]:
        return lambda d, t: _h5_bytes(
            lambda fh: fh.create_dataset(layout.H5_MASKS, shape=shape, dtype="u1", chunks=chunks)
        )

    def images(n: int) -> Callable[[Path, Path], bytes]:
        return lambda d, t: _h5_bytes(
            lambda fh: fh.create_dataset(layout.H5_IMAGES, shape=(n,), dtype=h5py.vlen_dtype(np.uint8))
        )

    return [
        # The review's example: a 7 KB file declaring 48 x 2^28 float16.
        Case("embedding_48_x_2e28_float16", "hdf5", emb, "embedding", "CorruptFileError",
             lambda d, t: _embedding_file(48, 1 << 28)),
        Case("embedding_rows_beyond_bound", "hdf5", emb, "embedding", "CorruptFileError",
             lambda d, t: _embedding_file(1 << 24, 16)),
        Case("embedding_unallocated_at_bound", "hdf5", emb, "embedding", "CorruptFileError",
             lambda d, t: _embedding_file(1 << 17, 8192)),
        Case("embedding_float64_unallocated", "hdf5", emb, "embedding", "CorruptFileError",
             lambda d, t: _embedding_file(100_000, 4096, dtype="f8")),
        Case("embedding_one_huge_chunk", "hdf5", emb, "embedding", "CorruptFileError",
             lambda d, t: _embedding_file(4096, 8192, dtype="f4", chunks=(4096, 8192))),
        Case("embedding_ids_1MB_strings", "hdf5", emb, "embedding", "CorruptFileError",
             lambda d, t: _embedding_file(48, 16, ids_dtype="S1000000")),
        Case("embedding_ids_numeric", "hdf5", emb, "embedding", "CorruptFileError",
             lambda d, t: _embedding_file(48, 16, ids_dtype="f8")),
        Case("masks_declared_65536_square", "hdf5", seg, "segmentation", "CorruptFileError",
             masks((24011, 1 << 16, 1 << 16), chunks=(1, 1024, 1024))),
        Case("masks_unallocated_at_bound", "hdf5", seg, "segmentation", "CorruptFileError",
             masks((4096, 4096, 4096), chunks=(1, 1024, 1024))),
        Case("masks_one_huge_chunk", "hdf5", seg, "segmentation", "CorruptFileError",
             masks((64, 4096, 4096), chunks=(16, 4096, 4096))),
        Case("images_rows_beyond_bound", "hdf5", img, "image", "CorruptFileError", images(1 << 24)),
        Case("embedding_not_hdf5", "hdf5", emb, "embedding", "CorruptFileError",
             lambda d, t: b"\x89HDF\r\n\x1a\n" + os.urandom(4000)),
    ]


# --------------------------------------------------------------------------- TSV / CSV
def _trials_text(data_dir: Path) -> str:
    return (data_dir / layout.trials_key(SUB, SES)).read_text(encoding="utf-8")


def _table_cases() -> list[Case]:
    trials = layout.trials_key(SUB, SES)
    meta = layout.STIMULI_METADATA_KEY
    caps = layout.CAPTIONS_KEY

    def wide_header(d: Path, t: Path) -> bytes:
        header = _trials_text(d).splitlines()[0]
        extra = "\t".join(f"c{i}" for i in range(1_000_000))
        return (header + "\t" + extra + "\n").encode()[: MAX_CRAFTED_BYTES - 1000]

    def huge_cell(d: Path, t: Path) -> bytes:
        lines = _trials_text(d).splitlines()
        cells = lines[1].split("\t")
        cells[-1] = "x" * 9_000_000
        return ("\n".join([lines[0], "\t".join(cells), *lines[2:]]) + "\n").encode()

    def many_rows(d: Path, t: Path) -> bytes:
        lines = _trials_text(d).splitlines()
        body = "\n".join(lines[1:]) + "\n"
        reps = max(1, (9_000_000 - len(lines[0])) // len(body))
        return (lines[0] + "\n" + body * reps).encode()

    def short_columns(d: Path, t: Path) -> bytes:
        header = _trials_text(d).splitlines()[0]
        return (header + "\ta" * 400_000 + "\n").encode()

    def csv_wide(d: Path, t: Path) -> bytes:
        text = t.read_text(encoding="utf-8").splitlines()
        return (text[0] + ",a" * 400_000 + "\n" + text[1] + "\n").encode()

    def csv_huge_cell(d: Path, t: Path) -> bytes:
        text = t.read_text(encoding="utf-8").splitlines()
        header = text[0].split(",")
        row = ["y.jpg" if c == "image_name" else "" for c in header]
        row[1 if header[0] == "image_name" else 0] = "x" * 9_000_000
        return (text[0] + "\n" + ",".join(row) + "\n").encode()

    def csv_quote_bomb(d: Path, t: Path) -> bytes:
        header = t.read_text(encoding="utf-8").splitlines()[0]
        return (header + '\n"' + "a" * 9_000_000 + "\n").encode()

    return [
        Case("trials_million_columns", "tsv", trials, "metadata", "CorruptFileError", wide_header),
        Case("trials_9MB_cell", "tsv", trials, "metadata", "CorruptFileError", huge_cell),
        Case("trials_400k_short_columns", "tsv", trials, "metadata", "CorruptFileError",
             short_columns),
        Case("trials_many_rows", "tsv", trials, "metadata", "CorruptFileError", many_rows,
             legit=200_000_000),
        Case("trials_nul_bytes", "tsv", trials, "metadata", "CorruptFileError",
             lambda d, t: b"\x00" * 5_000_000),
        Case("metadata_400k_columns", "csv", meta, "stim_metadata", "CorruptFileError", csv_wide),
        Case("metadata_9MB_cell", "csv", meta, "stim_metadata", "CorruptFileError", csv_huge_cell),
        Case("captions_unclosed_quote", "csv", caps, "captions", "CorruptFileError", csv_quote_bomb),
        Case("metadata_binary", "csv", meta, "stim_metadata", "CorruptFileError",
             lambda d, t: os.urandom(1 << 20)),
    ]


# --------------------------------------------------------------------------- JSON
def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


def _json_cases() -> list[Case]:
    config_bad = {
        "config_deep_nesting": _deep(200_000),
        "config_deep_object": b'{"data_dir": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
        "config_is_a_list": b'["data_dir", "/tmp"]',
        "config_is_null": b"null",
        "config_data_dir_list": b'{"data_dir": ["a", "b"]}',
        "config_source_number": b'{"source": 7}',
        "config_endpoint_object": b'{"endpoint_url": {"host": "x"}}',
        "config_9MB": b'{"data_dir": "' + b"a" * 9_000_000 + b'"}',
        "config_nan": b'{"data_dir": NaN}',
        "config_not_utf8": b'{"data_dir": "\xff\xfe"}',
        "config_truncated": b'{"data_dir": "/tm',
    }
    cases = [
        Case(name, "json", CONFIG_TARGET, "config", "ConfigError", lambda d, t, b=b: b)
        for name, b in config_bad.items()
    ]
    sidecar_bad = {
        "sidecar_deep_nesting": _deep(200_000),
        "sidecar_is_a_list": b"[1, 2, 3]",
        "sidecar_is_null": b"null",
        "sidecar_wrong_types": json.dumps({"version": 1, "shape": "everything", "cache_size": "x",
                                           "source": [1]}).encode(),
        "sidecar_bool_version": b'{"version": true}',
        "sidecar_9MB": b'{"version": 1, "pad": "' + b"p" * 9_000_000 + b'"}',
        "sidecar_binary": bytes(range(256)) * 64,
    }
    cases += [
        Case(name, "json", SIDECAR_TARGET, "betas_rebuilt", None, lambda d, t, b=b: b,
             legit=SPEC.n_trials_in(SUB, SES) * SPEC.n_brain_voxels * 4 * 4)
        for name, b in sidecar_bad.items()
    ]
    return cases


def all_cases() -> list[Case]:
    """Every crafted case, in a stable order (nothing is built until a builder is called)."""
    return [*_nifti_cases(), *_hdf5_cases(), *_table_cases(), *_json_cases()]
