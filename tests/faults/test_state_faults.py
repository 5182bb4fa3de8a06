"""Faults in our own local state: the betas cache under concurrency, symlinks, bad JSON.

* ``laion-fmri cache clear`` run again and again while other processes load
  (and re-write) the same cache entry: no reader fails or sees wrong data, no
  clear fails.
* A cache folder that is a symbolic link: nothing is written, read or deleted
  through it.
* Damaged JSON state (cache sidecars, the config file): sidecars are ignored
  and rebuilt, the config gives a one-line error naming the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from laion_fmri import _cache as cache
from laion_fmri import config
from laion_fmri.errors import ConfigError

SUB, SES = "sub-03", "ses-01"

pytestmark = pytest.mark.timeout(300)

READER = textwrap.dedent(
    """
    import sys, warnings
    import numpy as np
    warnings.simplefilter("error")  # a degraded path (cache write refused) fails too
    from laion_fmri.subject import load_subject
    data_dir, rounds, truth = sys.argv[1], int(sys.argv[2]), np.load(sys.argv[3])
    for i in range(rounds):
        got = load_subject("sub-03", data_dir=data_dir).get_betas("ses-01", cache=True)
        if not np.array_equal(got, truth, equal_nan=True):
            print("MISMATCH", i, flush=True)
            sys.exit(3)
        roi = load_subject("sub-03", data_dir=data_dir).get_betas("ses-01", cache=True)[:, :5]
        if not np.array_equal(roi, truth[:, :5], equal_nan=True):
            print("MISMATCH-SUBSET", i, flush=True)
            sys.exit(3)
    print("OK", rounds, flush=True)
    """
)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LAION_FMRI_")}


def test_cache_clear_while_other_processes_load(downloaded: Path, tmp_path: Path, fault_log) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    truth = load_subject(SUB, data_dir=downloaded).get_betas(SES, cache=False)
    truth_file = tmp_path / "truth.npy"
    np.save(truth_file, truth)
    rounds, n_readers = 150, 3
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, str(downloaded), str(rounds), str(truth_file)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        for _ in range(n_readers)
    ]
    clears = cli_clears = 0
    try:
        while any(r.poll() is None for r in readers):
            cache.clear(downloaded)  # never raises, whatever the readers are doing
            clears += 1
            if clears % 10 == 0:
                done = subprocess.run([sys.executable, "-m", "laion_fmri", "cache", "clear",
                                       "--data-dir", str(downloaded)],
                                      capture_output=True, text=True, env=_env(), timeout=60, check=False)
                assert done.returncode == 0, done.stderr
                cli_clears += 1
            time.sleep(0.001)
        outputs = [r.communicate(timeout=60) for r in readers]
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
    for r, (out, err) in zip(readers, outputs, strict=True):
        assert r.returncode == 0, f"reader failed: {out} {err[-2000:]}"
        assert out.strip() == f"OK {rounds}"
    assert clears > 5
    # The cache still works afterwards and holds exactly the truth.
    np.testing.assert_array_equal(load_subject(SUB, data_dir=downloaded).get_betas(SES), truth)
    assert cache.verify(cache.entry_for(downloaded, SUB, SES))
    fault_log("cache_clear_during_concurrent_loads", injected=clears + cli_clears,
              bytes_verified=int(truth.nbytes) * rounds * n_readers * 2)


def test_symlinked_cache_dir_is_not_written_through(downloaded: Path, tmp_path: Path, fault_log) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = cache.cache_root(downloaded)
    root.parent.mkdir(parents=True, exist_ok=True)
    root.symlink_to(elsewhere, target_is_directory=True)
    truth = load_subject(SUB, data_dir=downloaded).get_betas(SES, cache=False)
    with pytest.warns(UserWarning, match="symbolic link"):
        got = load_subject(SUB, data_dir=downloaded).get_betas(SES)
    np.testing.assert_array_equal(got, truth)
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(OSError, match="symbolic link"):
        cache.clear(downloaded)
    assert root.is_symlink()
    fault_log("cache_dir_symlinked_elsewhere", injected=1, bytes_verified=int(truth.nbytes))


BAD_JSON = {
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "list": b"[1, 2]",
    "null": b"null",
    "wrong_types": b'{"version": 1, "shape": "x", "data_dir": ["a"], "source": 7}',
    "binary": bytes(range(256)) * 8,
    "truncated": b'{"version": 1, "sha',
}


@pytest.mark.parametrize("damage", sorted(BAD_JSON))
def test_damaged_sidecar_is_rebuilt(damage: str, downloaded: Path, fault_log) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    truth = load_subject(SUB, data_dir=downloaded).get_betas(SES)
    entry = cache.entry_for(downloaded, SUB, SES)
    entry.sidecar.write_bytes(BAD_JSON[damage])
    np.testing.assert_array_equal(load_subject(SUB, data_dir=downloaded).get_betas(SES), truth)
    assert cache.verify(entry)
    fault_log(f"cache_sidecar_{damage}", injected=1, bytes_verified=int(truth.nbytes))


@pytest.mark.parametrize("damage", sorted(BAD_JSON))
def test_damaged_config_is_a_one_line_error(  # type: ignore[no-untyped-def]
    damage: str, capsys: pytest.CaptureFixture[str], fault_log
) -> None:
    from laion_fmri.cli import main

    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(BAD_JSON[damage])
    with pytest.raises(ConfigError):
        config.get_data_dir()
    for argv in (["config"], ["cache", "info"], ["info"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert str(path) in err and err.count("\n") == 1 and "Traceback" not in err
    assert path.read_bytes() == BAD_JSON[damage]  # never rewritten behind the user's back
    fault_log(f"config_json_{damage}", injected=1, bytes_verified=0)
