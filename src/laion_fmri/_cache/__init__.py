"""Masked float32 cache of decoded beta sessions.

The first whole-brain load of a session writes
``<data_dir>/.laion_fmri/cache/<sub>/<ses>_betas.npy`` (a plain ``.npy``, so it
can be memory-mapped) and a JSON sidecar next to it. Later loads map the file
and read only the columns they need.

Validity
--------
A cache entry is used only when its sidecar matches the current source file
(relative key, size, ``mtime_ns``), the brain mask (a BLAKE2b hash of the
mask bits and grid shape), and the cache file itself (exact byte size and the
``.npy`` header's shape/dtype). Opening therefore costs a ``stat`` and a header
read, never a pass over the data. In addition the sidecar stores a cheap
*fingerprint* (BLAKE2b over the file size and 64 evenly spaced 4 KiB blocks),
checked on every open, and a CRC32 (zlib-ng, several GB/s) of the whole file
computed from memory while writing, checked only on demand by :func:`verify`
(``laion-fmri cache info --verify``) because reading a 1 GB file on every
load would defeat the cache. CRC32 detects accidental damage, not deliberate
tampering. Truncation is caught by the size check, in-place alteration of
sampled blocks by the fingerprint, anything else by :func:`verify`.

Writes are atomic (temporary file + :func:`os.replace`, sidecar written last)
and serialised per entry with a :class:`filelock.FileLock`. :func:`clear`
takes the same per-entry lock and removes the sidecar before the data, so a
concurrent reader either maps a complete entry (an open map survives the
unlink) or finds none and decodes the NIfTI again. Cache folders that are
symbolic links are never read, written or cleared through.

An entry filled by streaming the betas from the source (``get_betas(...,
fetch=True)``, no local ``.nii.gz``) records the object's ETag and size
(:func:`remote_stamp`) instead of the local size and ``mtime_ns``; it stays
valid without a local file (and, if the file is downloaded later, while its
size matches). Next to the entries, :func:`derived_dir` holds what the loader
derived from small NIfTI maps (brain-mask voxel index, ROI columns; see
:mod:`laion_fmri._mask_index`); ``clear`` removes it too.

Rooms: ``_entries`` (paths, cache root, link checks, mask and source
identities), ``_store`` (open, write, verify one entry) and ``_admin``
(list and clear).
"""

from __future__ import annotations

from laion_fmri._cache._admin import CacheInfo, clear, list_entries
from laion_fmri._cache._entries import (
    ENV_CACHE_DIR,
    CacheEntry,
    cache_root,
    call_cache,
    derived_dir,
    entry_for,
    mask_hash,
    remote_stamp,
    source_stamp,
    symlinked_folder,
)
from laion_fmri._cache._store import CACHE_VERSION, open_cached, verify, write_cache

__all__ = [
    "CACHE_VERSION",
    "ENV_CACHE_DIR",
    "CacheEntry",
    "CacheInfo",
    "cache_root",
    "call_cache",
    "clear",
    "derived_dir",
    "entry_for",
    "list_entries",
    "mask_hash",
    "open_cached",
    "remote_stamp",
    "source_stamp",
    "symlinked_folder",
    "verify",
    "write_cache",
]
