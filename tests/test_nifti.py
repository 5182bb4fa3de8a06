"""Streaming NIfTI reader against plain nibabel, on files crafted here."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from laion_fmri import _nifti as nifti
from laion_fmri.errors import CorruptFileError

SHAPE = (7, 6, 5, 9)


def _data(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(SHAPE).astype(np.float32)


def _mask(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random(SHAPE[:3]) > 0.4


def _save(path: Path, data: np.ndarray, endian: str = "<", dtype=np.float32,
          slope: float | None = None, inter: float = 0.0) -> Path:
    hdr = nib.Nifti1Header(endianness=endian)
    hdr.set_data_dtype(dtype)
    affine = np.diag([1.5, 2.0, 2.5, 1.0])
    affine[:3, 3] = [-3, 4, 5]
    img = nib.Nifti1Image(data, affine, header=hdr)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return path


def _truth(path: Path, mask: np.ndarray) -> np.ndarray:
    full = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float64))
    return full[mask].T  # boolean indexing = C order of (x, y, z)


@pytest.mark.parametrize(
    ("name", "endian", "dtype"),
    [
        ("le.nii.gz", "<", np.float32),
        ("be.nii.gz", ">", np.float32),
        ("le.nii", "<", np.float32),
        ("f64.nii.gz", "<", np.float64),
        ("be64.nii", ">", np.float64),
    ],
)
def test_read_masked_matches_nibabel(tmp_path: Path, name: str, endian: str, dtype) -> None:
    data = _data()
    path = _save(tmp_path / name, data, endian=endian, dtype=dtype)
    hdr = nifti.read_header(path)
    assert hdr.dtype.byteorder in ("<", ">", "=", "|")
    assert (hdr.dtype.byteorder == ">") == (endian == ">")
    mask = _mask()
    for chunk in (1, 4, 100):
        out = nifti.read_masked(path, nifti.gather_offsets(mask), chunk=chunk)
        assert out.dtype == np.float32 and out.flags.c_contiguous
        assert out.shape == (SHAPE[3], int(mask.sum()))
        np.testing.assert_allclose(out, _truth(path, mask), rtol=1e-6)


def test_int16_scaling_and_uint8(tmp_path: Path) -> None:
    raw = (np.random.default_rng(3).integers(-3000, 3000, SHAPE)).astype(np.int16)
    path = _save(tmp_path / "s.nii.gz", raw, dtype=np.int16, slope=0.01, inter=-2.5)
    hdr = nifti.read_header(path)
    assert hdr.scaled and hdr.slope == pytest.approx(0.01) and hdr.inter == -2.5
    mask = _mask()
    out = nifti.read_masked(path, nifti.gather_offsets(mask))
    np.testing.assert_allclose(out, _truth(path, mask), rtol=1e-5, atol=1e-5)

    u8 = (np.arange(np.prod(SHAPE)) % 251).reshape(SHAPE).astype(np.uint8)
    path8 = _save(tmp_path / "u8.nii", u8, dtype=np.uint8)
    np.testing.assert_array_equal(nifti.read_masked(path8, nifti.gather_offsets(mask)),
                                  _truth(path8, mask))


@pytest.mark.parametrize("slope", [0.0, np.nan])
def test_slope_zero_or_nan_means_unscaled(tmp_path: Path, slope: float) -> None:
    data = _data(5)
    path = _save(tmp_path / "z.nii", data)
    # Patch scl_slope/scl_inter in place (nibabel refuses to write these).
    raw = bytearray(path.read_bytes())
    raw[112:120] = struct.pack("<ff", slope, 7.0)
    path.write_bytes(bytes(raw))
    hdr = nifti.read_header(path)
    assert not hdr.scaled
    out = nifti.read_masked(path)
    np.testing.assert_array_equal(out, data.reshape(-1, SHAPE[3], order="F").T)


def test_nan_values_are_kept(tmp_path: Path) -> None:
    data = _data(6)
    data[2, 3, 1, :] = np.nan
    data[0, 0, 0, 4] = np.nan
    path = _save(tmp_path / "n.nii.gz", data)
    mask = np.ones(SHAPE[:3], bool)
    out = nifti.read_masked(path, nifti.gather_offsets(mask))
    truth = _truth(path, mask)
    assert np.isnan(out).sum() == np.isnan(truth).sum() == SHAPE[3] + 1
    np.testing.assert_array_equal(out, truth.astype(np.float32))


def test_extension_shifts_vox_offset(tmp_path: Path) -> None:
    data = _data(7)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"x" * 200))
    path = tmp_path / "ext.nii.gz"
    nib.save(img, str(path))
    hdr = nifti.read_header(path)
    assert hdr.vox_offset > 352
    mask = _mask()
    np.testing.assert_array_equal(
        nifti.read_masked(path, nifti.gather_offsets(mask)), _truth(path, mask).astype(np.float32)
    )


def test_gather_offsets_flat_and_indices_agree() -> None:
    mask = _mask()
    by3d = nifti.gather_offsets(mask)
    byflat = nifti.gather_offsets(mask.ravel(), mask.shape)
    byidx = nifti.gather_offsets(np.flatnonzero(mask.ravel()), mask.shape)
    np.testing.assert_array_equal(by3d, byflat)
    np.testing.assert_array_equal(by3d, byidx)
    # Fortran offsets of C-ordered voxels: check one by hand.
    i, j, k = np.argwhere(mask)[0]
    assert by3d[0] == i + j * SHAPE[0] + k * SHAPE[0] * SHAPE[1]
    with pytest.raises(ValueError, match="grid_shape"):
        nifti.gather_offsets(mask.ravel())


def test_read_volume_3d(tmp_path: Path) -> None:
    vol = _data()[..., 0]
    path = _save(tmp_path / "v.nii.gz", vol)
    data, affine = nifti.read_volume(path)
    np.testing.assert_array_equal(data, vol)
    np.testing.assert_array_equal(affine, nib.load(str(path)).affine)
    with pytest.raises(CorruptFileError, match="3-D map"):
        nifti.read_volume(_save(tmp_path / "4d.nii.gz", _data()))


def test_out_argument_checked(tmp_path: Path) -> None:
    path = _save(tmp_path / "o.nii", _data())
    with pytest.raises(ValueError, match="C-contiguous float32"):
        nifti.read_masked(path, np.arange(3), out=np.empty((SHAPE[3], 2), np.float32))
    with pytest.raises(ValueError, match="outside"):
        nifti.read_masked(path, np.array([10**6]))


# ----------------------------------------------------------------------------- corrupt files
def _patch(path: Path, offset: int, fmt: str, *values: object) -> Path:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    path.write_bytes(bytes(raw))
    return path


def _patch_gz(src: Path, dest: Path, offset: int, fmt: str, *values: object) -> Path:
    raw = bytearray(gzip.decompress(src.read_bytes()))
    raw[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    dest.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    return dest


def test_huge_dims_rejected_before_allocation(tmp_path: Path) -> None:
    path = _save(tmp_path / "h.nii.gz", _data())
    bad = _patch_gz(path, tmp_path / "bad.nii.gz", 40, "<8h", 4, 32000, 32000, 32000, 32000, 1, 1, 1)
    with pytest.raises(CorruptFileError, match=r"bad\.nii\.gz.*implausibly large"):
        nifti.read_header(bad)


def test_dims_not_matching_size(tmp_path: Path) -> None:
    path = _save(tmp_path / "d.nii", _data())
    _patch(path, 48, "<h", 50)  # claim 50 volumes, the file holds 9
    with pytest.raises(CorruptFileError, match=r"d\.nii.*describes"):
        nifti.read_header(path)
    gz = _save(tmp_path / "d.nii.gz", _data())
    bad = _patch_gz(gz, tmp_path / "d2.nii.gz", 48, "<h", 50)
    # gzip has no reliable up-front size (multi-member files are valid): the
    # stream reports the truncation.
    hdr = nifti.read_header(bad)
    with pytest.raises(CorruptFileError, match=r"d2\.nii\.gz.*ends early"):
        nifti.read_masked(bad, header=hdr)


@pytest.mark.parametrize("value", [-10.0, float("nan"), 1e12])
def test_bad_vox_offset(tmp_path: Path, value: float) -> None:
    path = _save(tmp_path / "v.nii", _data())
    _patch(path, 108, "<f", value)
    with pytest.raises(CorruptFileError, match="vox_offset"):
        nifti.read_header(path)


def test_bad_magic_dims_and_datatype(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.nii", _data())
    with pytest.raises(CorruptFileError, match="magic"):
        nifti.read_header(_patch(path, 344, "4s", b"xx1\0"))
    path = _save(tmp_path / "n.nii", _data())
    with pytest.raises(CorruptFileError, match="absurd dimensions"):
        nifti.read_header(_patch(path, 40, "<h", 0))
    path = _save(tmp_path / "t.nii", _data())
    with pytest.raises(CorruptFileError, match="datatype code 1536"):
        nifti.read_header(_patch(path, 70, "<h", 1536))
    path = tmp_path / "short.nii"
    path.write_bytes(b"\x5c\x01\x00\x00" + b"\0" * 20)
    with pytest.raises(CorruptFileError, match="header bytes"):
        nifti.read_header(path)
    path = tmp_path / "not.nii"
    path.write_bytes(b"\0" * 400)
    with pytest.raises(CorruptFileError, match="sizeof_hdr"):
        nifti.read_header(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = _save(tmp_path / "tr.nii.gz", _data())
    raw = path.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.nii\.gz"):
        hdr = nifti.read_header(cut, check_size=False)
        nifti.read_masked(cut, header=hdr)
    with pytest.raises(CorruptFileError, match=r"cut\.nii\.gz"):
        nifti.read_masked(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nifti.read_header(tmp_path / "nope.nii.gz")
