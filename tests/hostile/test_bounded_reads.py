"""Legitimate files within the bounds: reads stay proportional to what is asked for."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from laion_fmri import _nifti as nifti
from laion_fmri import layout
from laion_fmri.errors import CorruptFileError
from laion_fmri.stimuli import _embeddings as stimuli_mod
from laion_fmri.stimuli import load_stimuli

N_ROWS, DIM = 20_000, 512


@pytest.fixture(scope="module")
def big_embeddings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("emb")
    path = root / layout.embeddings_key("CLIP")
    path.parent.mkdir(parents=True)
    values = np.random.default_rng(0).standard_normal((N_ROWS, DIM)).astype(np.float16)
    with h5py.File(path, "w") as fh:
        fh.create_dataset(layout.H5_EMBEDDING, data=values, chunks=(256, DIM))
        fh.create_dataset(layout.H5_IMAGE_IDS, data=[f"im{i}.jpg" for i in range(N_ROWS)],
                          dtype=h5py.string_dtype())
        fh.create_dataset(layout.H5_VALID, data=np.ones(N_ROWS, bool))
    return root, values


def _peak(fn) -> tuple[object, int]:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_embedding_reads_are_bounded_by_the_rows_asked(big_embeddings) -> None:  # type: ignore[no-untyped-def]
    root, values = big_embeddings
    rng = np.random.default_rng(1)
    with load_stimuli(root) as stim:
        emb = stim.embeddings
        emb.image_ids("CLIP")  # id index built outside the measurement
        few = [f"im{i}.jpg" for i in rng.choice(N_ROWS, 10, replace=False)]
        got, peak = _peak(lambda: emb.get("CLIP", few))
        np.testing.assert_array_equal(got, values[[int(n[2:-4]) for n in few]])
        assert peak < 2 << 20
        # 600 scattered rows (< half): contiguous slabs, never the whole 20 MB matrix.
        rows = np.sort(rng.choice(N_ROWS, 600, replace=False))[::-1]
        names = [f"im{i}.jpg" for i in rows]
        got, peak = _peak(lambda: emb.get("CLIP", names))
        np.testing.assert_array_equal(got, values[rows])
        assert emb._file("CLIP").matrix is None
        assert peak < values.nbytes // 2
        # Most rows: one full read, kept for the next call.
        got = emb.get("CLIP", [f"im{i}.jpg" for i in range(0, N_ROWS, 1)][::-1])
        np.testing.assert_array_equal(got, values[::-1])
        assert emb._file("CLIP").matrix is not None


def test_embedding_slab_reads_match_point_reads(big_embeddings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root, values = big_embeddings
    monkeypatch.setattr(stimuli_mod, "_FULL_READ_ROWS", 2)
    monkeypatch.setattr(stimuli_mod, "_BLOCK_ROWS", 7)
    rows = np.array([5, 5, 0, 6, 7, 13, 14, 100, 19_999, 1, 7])
    with load_stimuli(root) as stim:
        got = stim.embeddings.get("CLIP", [f"im{i}.jpg" for i in rows])
    np.testing.assert_array_equal(got, values[rows])


def test_map_at_the_grid_bound_is_read_without_widening(tmp_path: Path) -> None:
    from hostile.crafted import synthetic_nifti

    side = round(nifti.MAX_GRID_VOXELS ** (1 / 3)) - 1
    path = tmp_path / "map.nii.gz"
    path.write_bytes(synthetic_nifti((side, side, side), 2, 8, fill=1))
    (data, _), peak = _peak(lambda: nifti.read_volume(path))
    assert data.dtype == np.uint8 and int(data.sum()) == side**3
    assert peak < side**3 + (16 << 20)  # the uint8 grid plus a few slab buffers
    (mask, _), peak = _peak(lambda: nifti.read_mask(path))
    assert mask.dtype == bool and mask.all()
    assert peak < side**3 + (16 << 20)
    scaled = tmp_path / "scaled.nii.gz"
    scaled.write_bytes(synthetic_nifti((side, side, side), 4, 16, fill=1, slope=0.5, inter=-1.0))
    (data, _), peak = _peak(lambda: nifti.read_volume(scaled))
    assert data.dtype == np.float32 and peak < side**3 * 4 + (16 << 20)
    (mask, _), _ = nifti.read_mask(scaled), None
    # 0x0101 * 0.5 - 1 != 0 everywhere
    assert mask[0].all()
    too_big = tmp_path / "big.nii.gz"
    too_big.write_bytes(synthetic_nifti((side + 2,) * 3, 2, 8))
    with pytest.raises(CorruptFileError, match="implausibly large"):
        nifti.read_mask(too_big)
