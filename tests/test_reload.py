"""Fresh-process reloads read only the cache: no NIfTI map is opened, arrays are identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from laion_fmri import _cache as cache
from laion_fmri import layout
from laion_fmri.subject import load_subject

SUB = "sub-03"
SES = "ses-01"

# Runs in a new interpreter: every open of a NIfTI/TSV file (Python-level open,
# which nibabel and gzip go through) fails, so the arrays can only come from the cache.
_CHILD = textwrap.dedent(
    """
    import builtins, io, json, sys
    import numpy as np
    from laion_fmri.subject import load_subject

    real_open = io.open
    opened = []

    def guarded_open(file, *args, **kwargs):
        name = str(file)
        opened.append(name)
        if name.endswith((".nii.gz", ".nii", ".tsv")):
            raise AssertionError(f"a fresh cached reload opened {name}")
        return real_open(file, *args, **kwargs)

    builtins.open = io.open = guarded_open
    data, out, roi, source = sys.argv[1:5]
    sub = load_subject("sub-03", data_dir=data)
    np.save(out + "_all.npy", sub.get_betas("ses-01", mask_source=source))
    np.save(out + "_roi.npy", sub.get_betas("ses-01", roi=roi, mask_source=source))
    builtins.open = io.open = real_open
    # Nothing of the streaming stack (awscrt, urllib3 ...): its imports cost more than the reload.
    assert "laion_fmri._remote_betas" not in sys.modules, "a cached reload imported the streamer"
    print(json.dumps(opened))
    """
)


def _child(data: Path, out: Path, roi: str, source: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(data), str(out), roi, source],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("source", ["anatomical", "rsquare"])
def test_fresh_process_reload_opens_no_nifti(downloaded: Path, tmp_path: Path, source: str) -> None:
    sub = load_subject(SUB)
    truth = sub.get_betas(SES, mask_source=source)  # first load: decode, cache, index
    roi = sub.get_available_rois()[0]
    truth_roi = sub.get_betas(SES, roi=roi, mask_source=source)
    opened = _child(downloaded, tmp_path / "out", roi, source)
    np.testing.assert_array_equal(np.load(tmp_path / "out_all.npy"), truth)
    np.testing.assert_array_equal(np.load(tmp_path / "out_roi.npy"), truth_roi)
    folder = cache.cache_root(downloaded) / SUB
    assert any(Path(p).parent.name.startswith("mask-") for p in opened)  # the stored index
    outputs = str(tmp_path / "out")
    outside = [p for p in opened if not Path(p).is_relative_to(folder) and not p.startswith(outputs)]
    assert not outside


def test_changed_mask_file_is_indexed_again(downloaded: Path, tmp_path: Path) -> None:
    sub = load_subject(SUB)
    sub.get_betas(SES)
    mask = downloaded / layout.local_relpath(layout.anatomical_brain_mask_key(SUB))
    import nibabel as nib

    img = nib.load(str(mask))
    data = np.asarray(img.dataobj).copy()
    first = tuple(np.argwhere(data != 0)[0])
    data[first] = 0  # one voxel fewer
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(mask))
    fresh = load_subject(SUB)
    assert fresh.get_n_voxels() == sub.get_n_voxels() - 1
    assert fresh.get_betas(SES).shape[1] == sub.get_n_voxels() - 1
    folder = cache.cache_root(downloaded) / SUB
    assert len(list(folder.glob("mask-*"))) == 2  # one entry per mask content


def test_cache_off_stores_no_index(downloaded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAION_FMRI_CACHE", "0")
    load_subject(SUB).get_betas(SES, roi=load_subject(SUB).get_available_rois()[0])
    assert not layout.cache_dir(downloaded).exists()


def test_linked_cache_folder_is_not_used_for_the_index(downloaded: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = cache.cache_root(downloaded)
    root.mkdir(parents=True)
    (root / SUB).symlink_to(elsewhere, target_is_directory=True)
    with pytest.warns(UserWarning, match="symbolic link"):
        out = load_subject(SUB).get_betas(SES)
    assert out.shape[0] > 0 and not list(elsewhere.iterdir())
