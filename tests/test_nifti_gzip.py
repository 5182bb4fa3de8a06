"""Multi-member gzip (pigz, bgzip, concatenated streams) and the streaming length checks.

Every valid file is compared with nibabel; every damaged one must raise
``CorruptFileError`` while streaming, whatever the gzip header flags say.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from laion_fmri import _nifti as nifti
from laion_fmri.errors import CorruptFileError
from laion_fmri.sample._writers import GZIP_STYLES, nifti_header, write_nifti_stream

SHAPE = (23, 19, 17, 6)  # one volume is 29.7 kB: several BGZF blocks per volume
AFFINE = np.diag([1.7778, 1.7778, 1.7778, 1.0])


def _data(n_volumes: int = SHAPE[3]) -> np.ndarray:
    return np.random.default_rng(11).standard_normal((*SHAPE[:3], n_volumes)).astype(np.float32)


def _write(path: Path, style: str, data: np.ndarray | None = None,
           declared: int | None = None) -> Path:
    data = _data() if data is None else data
    shape = (*data.shape[:3], data.shape[3] if declared is None else declared)
    write_nifti_stream(path, nifti_header(shape, AFFINE, np.float32),
                       (data[..., t] for t in range(data.shape[3])), gzip_style=style)
    return path


def _members(path: Path) -> int:
    """Number of gzip members, counted by decoding member by member."""
    raw, count = path.read_bytes(), 0
    while raw:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(raw)
        raw, count = d.unused_data, count + 1
    return count


def _nibabel(path: Path, mask: np.ndarray) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)[mask].T


@pytest.mark.parametrize("style", GZIP_STYLES)
def test_multi_member_files_read_like_nibabel(tmp_path: Path, style: str) -> None:
    path = _write(tmp_path / f"{style}.nii.gz", style)
    if style == "single":
        assert _members(path) == 1
    else:
        # concatenated: header member + one per volume; bgzf: 65,280-byte blocks + EOF block
        expected = SHAPE[3] + 1 if style == "concatenated" else -(-(352 + np.prod(SHAPE) * 4) // 0xFF00) + 1
        assert _members(path) == expected
    with gzip.open(path, "rb") as fh:  # the standard library agrees the file is valid
        assert len(fh.read()) == 352 + int(np.prod(SHAPE)) * 4
    mask = np.random.default_rng(2).random(SHAPE[:3]) > 0.5
    hdr = nifti.read_header(path)
    assert hdr.shape == SHAPE
    for chunk in (1, 4):
        out = nifti.read_masked(path, nifti.gather_offsets(mask), chunk=chunk)
        np.testing.assert_array_equal(out, _nibabel(path, mask))


def test_bgzf_members_carry_fextra(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.nii.gz", "bgzf")
    raw = path.read_bytes()
    assert raw[3] & 0x04 and raw[12:14] == b"BC"  # FEXTRA with the BGZF subfield
    assert raw.endswith(bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000"))


@pytest.mark.parametrize("style", GZIP_STYLES)
def test_fewer_volumes_declared_than_written_is_caught(tmp_path: Path, style: str) -> None:
    # The header says 5 volumes, the stream holds 6: with FEXTRA (bgzf) too.
    path = _write(tmp_path / f"few_{style}.nii.gz", style, declared=SHAPE[3] - 1)
    with pytest.raises(CorruptFileError, match=r"few_.*decompressed bytes follow"):
        nifti.read_masked(path)


@pytest.mark.parametrize("style", GZIP_STYLES)
def test_more_volumes_declared_than_written_is_caught(tmp_path: Path, style: str) -> None:
    path = _write(tmp_path / f"many_{style}.nii.gz", style, declared=SHAPE[3] + 2)
    nifti.read_header(path)  # no early verdict on gzip sizes: they are not knowable cheaply
    with pytest.raises(CorruptFileError, match=r"many_.*ends early"):
        nifti.read_masked(path)


@pytest.mark.parametrize("style", GZIP_STYLES)
@pytest.mark.parametrize(
    "junk", [b"junk after the stream", gzip.compress(b"x" * 100, mtime=0)], ids=["bytes", "member"]
)
def test_trailing_junk_is_caught(tmp_path: Path, style: str, junk: bytes) -> None:
    path = _write(tmp_path / f"junk_{style}.nii.gz", style)
    path.write_bytes(path.read_bytes() + junk)
    with pytest.raises(CorruptFileError, match=r"junk_"):
        nifti.read_masked(path)


@pytest.mark.parametrize("style", GZIP_STYLES)
def test_damaged_member_trailer_is_caught(tmp_path: Path, style: str) -> None:
    path = _write(tmp_path / f"crc_{style}.nii.gz", style)
    raw = bytearray(path.read_bytes())
    # Flip the CRC32 of the first member (the header member or first BGZF block).
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    d.decompress(bytes(raw))
    end = len(raw) - len(d.unused_data)
    raw[end - 8] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=r"crc_"):
        nifti.read_masked(path)


def test_bgzf_length_field_mismatch_is_not_trusted(tmp_path: Path) -> None:
    """A wrong ISIZE in one BGZF block (FEXTRA set) is caught by the stream, not skipped."""
    path = _write(tmp_path / "isize.nii.gz", "bgzf")
    raw = bytearray(path.read_bytes())
    block_size = struct.unpack("<H", raw[16:18])[0] + 1
    isize_at = block_size - 4
    raw[isize_at:isize_at + 4] = struct.pack("<I", struct.unpack("<I", raw[isize_at:isize_at + 4])[0] + 1)
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=r"isize\.nii\.gz.*(damaged|checksum)"):
        nifti.read_masked(path)


@pytest.mark.parametrize("style", GZIP_STYLES)
def test_buffered_reader_is_used_when_the_native_one_does_not_fit(
    tmp_path: Path, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zlib-ng's native reader is a private class: if its signature changes, reads still work."""
    from zlib_ng import zlib_ng

    class OtherSignature:
        def __init__(self, fp: object) -> None:  # one argument fewer than expected
            raise AssertionError("never constructed with one argument")

    path = _write(tmp_path / f"{style}.nii.gz", style)
    mask = np.random.default_rng(3).random(SHAPE[:3]) > 0.5
    monkeypatch.setattr(zlib_ng, "_GzipReader", OtherSignature)
    out = nifti.read_masked(path, nifti.gather_offsets(mask))
    np.testing.assert_array_equal(out, _nibabel(path, mask))
    damaged = bytearray(path.read_bytes())
    damaged[-6] ^= 0xFF  # the last member's CRC32/length trailer
    (tmp_path / "bad.nii.gz").write_bytes(bytes(damaged))
    with pytest.raises(CorruptFileError):
        nifti.read_masked(tmp_path / "bad.nii.gz", nifti.gather_offsets(mask))
