"""Child process: plant each crafted file, call the public API, measure what it allocated.

Usage: ``python -m hostile.probe DATA_DIR [CASE ...]`` (run with ``tests/`` on
``sys.path``); prints one JSON line per case. For each case the probe writes
the crafted bytes over the target file, resets the memory high-water marks,
calls the API, records the exception class (or none), the tracemalloc peak
(Python and NumPy allocations) and the RSS high-water growth
(``/proc/self/status`` ``VmHWM`` after a ``clear_refs`` reset), then restores
the original file. ``RLIMIT_AS`` caps the child at 3 GiB above its start so a
regression fails as ``MemoryError`` instead of hurting the machine.
"""

from __future__ import annotations

import contextlib
import gc
import json
import resource
import shutil
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hostile.crafted import CONFIG_TARGET, ROI_TARGET, SES, SIDECAR_TARGET, SUB, Case, all_cases
from laion_fmri import _cache as cache
from laion_fmri import _rois as rois
from laion_fmri import config, layout
from laion_fmri._cache._store import read_sidecar
from laion_fmri.stimuli import load_stimuli
from laion_fmri.subject import load_subject


def _betas(d: Path) -> Any:
    return load_subject(SUB, data_dir=d).get_betas(SES, cache=False)


def _betas_rebuilt(d: Path) -> Any:
    sub = load_subject(SUB, data_dir=d)
    got = sub.get_betas(SES, cache=True)
    truth = sub.get_betas(SES, cache=False)
    if not np.array_equal(got, truth, equal_nan=True):
        raise AssertionError("the cache returned data that differs from the NIfTI")
    if read_sidecar(cache.entry_for(d, SUB, SES)) is None:
        raise AssertionError("the bad sidecar was not rebuilt")
    return got


def _betas_and_metadata(d: Path) -> Any:
    """Decode the betas (legitimate output), then check them against the trial table."""
    sub = load_subject(SUB, data_dir=d)
    betas = sub.get_betas(SES, cache=False)
    sub.metadata  # noqa: B018 - raises when the rows do not match
    return betas


def _stim(d: Path, fn: Callable[[Any], Any]) -> Any:
    with load_stimuli(d) as stim:
        return fn(stim)


def _segmentation(stim: Any) -> Any:
    seg = stim.segmentations
    name = seg.images()[0]
    return seg.get(name, seg.nouns(name, localized_only=False)[0])


ACTIONS: dict[str, Callable[[Path], Any]] = {
    "betas": _betas,
    "betas_rebuilt": _betas_rebuilt,
    "betas_and_metadata": _betas_and_metadata,
    "n_voxels": lambda d: load_subject(SUB, data_dir=d).get_n_voxels(),
    "roi": lambda d: load_subject(SUB, data_dir=d).get_roi_mask("FFA1"),
    "nc": lambda d: load_subject(SUB, data_dir=d).get_noise_ceiling(session=SES),
    "metadata": lambda d: load_subject(SUB, data_dir=d).metadata,
    "embedding": lambda d: _stim(d, lambda s: s.embeddings.get("CLIP", s.metadata.image_name.iloc[0])),
    "image": lambda d: _stim(d, lambda s: s.images[0]),
    "segmentation": lambda d: _stim(d, _segmentation),
    "captions": lambda d: _stim(d, lambda s: s.captions.get(s.captions.images()[0])),
    "stim_metadata": lambda d: _stim(d, lambda s: s.metadata),
    "config": lambda d: config.get_data_dir(),
}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def target_path(case: Case, data_dir: Path) -> Path:
    """The file a case overwrites."""
    if case.target == CONFIG_TARGET:
        return config.config_path()
    if case.target == SIDECAR_TARGET:
        return cache.entry_for(data_dir, SUB, SES).sidecar
    if case.target == ROI_TARGET:
        return rois.scan_rois(data_dir, SUB).volumes["FFA1"][1]
    return layout.local_path(data_dir, case.target)


def run_case(case: Case, data_dir: Path) -> dict[str, Any]:
    """Plant, call, measure, restore."""
    target = target_path(case, data_dir)
    if case.target == SIDECAR_TARGET:
        load_subject(SUB, data_dir=data_dir).get_betas(SES, cache=True)
    original = target.read_bytes() if target.is_file() else None
    crafted = case.build(data_dir, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(crafted)
    result: dict[str, Any] = {"name": case.name, "size": len(crafted), "error": None, "message": ""}
    try:
        gc.collect()
        tracemalloc.start()
        base_traced = tracemalloc.get_traced_memory()[0]
        exact = _reset_hwm()
        base_rss = _status_kb("VmRSS")
        try:
            value = ACTIONS[case.action](data_dir)
            result["output_bytes"] = int(getattr(value, "nbytes", 0) or 0)
            del value
        except BaseException as exc:
            result["error"] = type(exc).__name__
            result["message"] = " ".join(str(exc).split())[:400]
        result["traced_peak"] = tracemalloc.get_traced_memory()[1] - base_traced
        result["rss_peak"] = max(0, _status_kb("VmHWM") - base_rss)
        result["rss_exact"] = exact
        tracemalloc.stop()
    finally:
        if original is None:
            target.unlink(missing_ok=True)
        else:
            target.write_bytes(original)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(cache.cache_root(data_dir))
    result["target"] = target.name
    return result


def main(argv: list[str]) -> int:
    """Run the named cases (all by default) against ``argv[0]``; print JSON lines."""
    data_dir = Path(argv[0])
    wanted = set(argv[1:])
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _status_kb("VmSize") + (3 << 30)
    if hard == resource.RLIM_INFINITY or cap < hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    for case in all_cases():
        if wanted and case.name not in wanted:
            continue
        print(json.dumps(run_case(case, data_dir)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
