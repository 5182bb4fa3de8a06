"""Reading the export's chunk files directly: JSON metadata, ``pread`` per chunk and block of rows.

The layouts :func:`laion_fmri.export.export_zarr` writes (raw little-endian
float32 or blosc, default ``c/0/j`` chunk keys, every chunk spanning all rows,
one-chunk raw index arrays) are read without importing zarr; anything else
goes through zarr. Each job fills its own rows of the result, so threads never
share output pages.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from laion_fmri._export_layout import ChunkCopy, place_columns, plan_chunk_copies
from laion_fmri.errors import MissingDependencyError

#: Threads reading chunk files (the CPUs, at most 4).
READ_THREADS = min(4, os.cpu_count() or 1)
#: Bytes per read of a raw chunk: rows are read in blocks of about this size,
#: each thread filling its own rows of the output (cache-friendly, no shared pages).
READ_BLOCK_BYTES = 2**20
#: Bytes of chunk rows staged per thread for a gather (scattered columns).
STAGE_BYTES = 32 * 2**20


def load_zarr() -> Any:
    """The ``zarr`` module, or :class:`~laion_fmri.errors.MissingDependencyError`."""
    try:
        import zarr
    except ImportError as exc:
        raise MissingDependencyError("zarr", "zarr") from exc
    return zarr


class ChunkFiles:
    """Direct reader of the column chunks of a 2-D float32 zarr v3 array (no zarr import).

    Serves the layouts the export writes (raw little-endian bytes, optionally
    blosc-compressed, default ``c/0/j`` chunk keys, every chunk spanning all
    rows); :meth:`from_metadata` returns ``None`` for anything else, which is
    then read through zarr.
    """

    def __init__(self, folder: Path, shape: tuple[int, int], width: int, blosc: bool, fill: float) -> None:
        self.folder, self.shape, self.width, self.blosc, self.fill = folder, shape, width, blosc, fill

    @classmethod
    def from_metadata(cls, folder: Path) -> ChunkFiles | None:
        meta = array_metadata(folder)
        shape, chunks, codecs = array_layout(meta)
        if (meta.get("data_type") != "float32" or len(shape) != 2 or len(chunks) != 2
                or chunks[0] != shape[0] or not plain_layout(meta)
                or codecs not in (["bytes"], ["bytes", "blosc"])):
            return None
        fill = meta.get("fill_value")
        return cls(folder, (int(shape[0]), int(shape[1])), int(chunks[1]), codecs == ["bytes", "blosc"],
                   float("nan") if fill in (None, "NaN") else float(fill))

    def path(self, chunk: int) -> Path:
        """File of chunk number ``chunk``."""
        return self.folder / "c" / "0" / str(chunk)

    def open(self, chunk: int) -> int | None:
        """A read-only descriptor of the chunk file; ``None`` when zarr left it unwritten (all fill)."""
        try:
            return os.open(self.path(chunk), os.O_RDONLY)
        except FileNotFoundError:
            return None

    def read_rows(self, fd: int | None, chunk: int, first: int, buf: np.ndarray) -> np.ndarray:
        """Rows ``first:first + len(buf)`` of a raw chunk read into ``buf`` (one ``pread``)."""
        if fd is None:
            buf.fill(self.fill)
            return buf
        want = buf.nbytes
        got = os.preadv(fd, [memoryview(buf).cast("B")], first * self.width * 4)
        if got != want:
            raise OSError(f"{self.path(chunk)} is shorter than its {self.shape[0]} x {self.width} "
                          "float32; the export is damaged, write it again.")
        return buf

    def decode(self, fd: int | None, chunk: int, buf: np.ndarray) -> np.ndarray:
        """A whole blosc chunk decoded into ``buf`` (``(n_rows, width)`` float32)."""
        if fd is None:
            buf.fill(self.fill)
            return buf
        from numcodecs import blosc

        with open(fd, "rb", buffering=0, closefd=False) as fh:
            fh.seek(0)
            data = fh.read()
        # Blosc header: bytes 4-7 hold the decoded size (little-endian uint32).
        if len(data) < 16 or int.from_bytes(data[4:8], "little") != buf.nbytes:
            raise OSError(f"{self.path(chunk)} does not decode to {self.shape[0]} x {self.width} "
                          "float32; the export is damaged, write it again.")
        blosc.decompress(data, buf)
        return buf


def array_metadata(folder: Path) -> dict[str, Any]:
    meta = json.loads((folder / "zarr.json").read_text())
    return meta if isinstance(meta, dict) else {}


def array_layout(meta: dict[str, Any]) -> tuple[tuple[int, ...], list[int], list[str]]:
    """Shape, chunk shape and codec names of a zarr v3 array's metadata."""
    shape = tuple(meta.get("shape", ()))
    chunks = list(meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape", []))
    return shape, chunks, [c.get("name") for c in meta.get("codecs", [])]


def plain_layout(meta: dict[str, Any]) -> bool:
    """Default ``c/...`` chunk keys, little-endian bytes, no storage transformers."""
    keys = meta.get("chunk_key_encoding", {})
    codecs = meta.get("codecs", [])
    return (keys.get("name") == "default" and keys.get("configuration", {}).get("separator", "/") == "/"
            and bool(codecs) and codecs[0].get("configuration", {}).get("endian", "little") == "little"
            and not meta.get("storage_transformers"))


def read_vector(folder: Path) -> np.ndarray:
    """A small 1-D integer array of the group: one raw chunk read directly, else through zarr."""
    meta = array_metadata(folder)
    shape, chunks, codecs = array_layout(meta)
    dtype = meta.get("data_type")
    if (len(shape) == 1 and len(chunks) == 1 and chunks[0] >= shape[0] and codecs == ["bytes"]
            and dtype in ("int64", "int32") and plain_layout(meta)):
        n = int(shape[0])
        path = folder / "c" / "0"
        if not path.is_file():
            return np.full(n, meta.get("fill_value") or 0, dtype=np.int64)
        values = np.fromfile(path, dtype="<i8" if dtype == "int64" else "<i4", count=n)
        if values.size != n:
            raise OSError(f"{path} holds {values.size} of {n} values; the export is damaged, write it again.")
        return values.astype(np.int64)
    return np.asarray(load_zarr().open_array(str(folder), mode="r")[:]).astype(np.int64)


def blosc_jobs(files: ChunkFiles, plans: list[ChunkCopy], fds: list[int | None],
                out: np.ndarray) -> list[Callable[[], None]]:
    """One job per blosc chunk: decode it whole, copy its columns into ``out``."""
    local = threading.local()

    def job(i: int) -> None:
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = np.empty((out.shape[0], files.width), dtype=np.float32)
        place_columns(out, files.decode(fds[i], plans[i].chunk, buf), plans[i])

    return [functools.partial(job, i) for i in range(len(plans))]


def raw_jobs(files: ChunkFiles, plans: list[ChunkCopy], fds: list[int | None],
              out: np.ndarray) -> list[Callable[[], None]]:
    """Jobs over blocks of rows, each filling its own rows of ``out`` from raw chunks.

    Chunks whose columns are a few runs (an ROI) are read block by block and
    copied as slices. The other chunks (scattered columns, e.g. a whole-brain
    read back in brain order) are staged side by side for a block of rows and
    gathered with one ``numpy.take`` per block instead of a gather and a
    scatter per chunk.
    """
    n_rows, width = out.shape[0], files.width
    sliced = [i for i, plan in enumerate(plans) if plan.runs]
    staged = [i for i, plan in enumerate(plans) if not plan.runs]
    local = threading.local()

    def buffer(name: str, shape: tuple[int, int]) -> np.ndarray:
        buf = getattr(local, name, None)
        if buf is None or buf.size < shape[0] * shape[1]:
            buf = np.empty(shape[0] * shape[1], dtype=np.float32)
            setattr(local, name, buf)
        return buf[: shape[0] * shape[1]].reshape(shape)

    def copy_slices(first: int, stop: int) -> None:
        buf = buffer("rows", (stop - first, width))
        for i in sliced:
            place_columns(out[first:stop], files.read_rows(fds[i], plans[i].chunk, first, buf), plans[i])

    jobs: list[Callable[[], None]] = []
    if sliced:
        rows = max(1, min(n_rows, READ_BLOCK_BYTES // (4 * width)))
        jobs += [functools.partial(copy_slices, r, min(r + rows, n_rows)) for r in range(0, n_rows, rows)]
    if staged:
        targets = np.concatenate([plans[i].out_pos for i in staged])
        sources = np.concatenate([slot * width + plans[i].chunk_pos for slot, i in enumerate(staged)])
        order = np.argsort(targets, kind="stable")
        targets, sources = targets[order], sources[order]
        every = targets.size == out.shape[1]  # all columns staged: take straight into out

        def gather(first: int, stop: int) -> None:
            stage = buffer("stage", (stop - first, len(staged) * width))
            rows = buffer("rows", (stop - first, width))
            for slot, i in enumerate(staged):
                block = files.read_rows(fds[i], plans[i].chunk, first, rows)
                stage[:, slot * width : (slot + 1) * width] = block
            if every:
                np.take(stage, sources, axis=1, out=out[first:stop])
            else:
                out[first:stop, targets] = np.take(stage, sources, axis=1)

        rows = max(1, min(n_rows, STAGE_BYTES // (4 * width * len(staged))))
        jobs += [functools.partial(gather, r, min(r + rows, n_rows)) for r in range(0, n_rows, rows)]
    return jobs


def read_columns(files: ChunkFiles, cols: np.ndarray, out: np.ndarray, threads: int | None) -> np.ndarray:
    """Fill ``out`` (``(n_rows, len(cols))``) with stored columns ``cols`` of ``files``."""
    plans = plan_chunk_copies(cols, files.width)
    fds = [files.open(plan.chunk) for plan in plans]
    try:
        jobs = blosc_jobs(files, plans, fds, out) if files.blosc else raw_jobs(files, plans, fds, out)
        n_threads = min(max(1, threads or READ_THREADS), len(jobs))
        if n_threads == 1:
            for job in jobs:
                job()
        else:
            with ThreadPoolExecutor(n_threads) as pool:
                for _ in pool.map(lambda job: job(), jobs):
                    pass
    finally:
        for fd in fds:
            if fd is not None:
                os.close(fd)
    return out


def read_columns_zarr(betas: Any, cols: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The generic path through zarr (layouts :class:`ChunkFiles` does not serve): ``out`` filled."""
    n_cols = betas.shape[1]
    width = betas.chunks[1]
    touched = np.unique(cols // width)
    runs = np.split(touched, np.flatnonzero(np.diff(touched) > 1) + 1)
    local = np.empty_like(cols)
    blocks, base = [], 0
    for run in runs:
        first, last = int(run[0]) * width, min(int(run[-1] + 1) * width, n_cols)
        blocks.append(betas[:, first:last])
        inside = (cols >= first) & (cols < last)
        local[inside] = cols[inside] - first + base
        base += last - first
    block = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
    del blocks
    np.take(block, local, axis=1, out=out)
    return out


__all__ = [
    "READ_BLOCK_BYTES",
    "READ_THREADS",
    "STAGE_BYTES",
    "ChunkFiles",
    "array_metadata",
    "blosc_jobs",
    "load_zarr",
    "plain_layout",
    "raw_jobs",
    "read_columns",
    "read_columns_zarr",
    "read_vector",
]
