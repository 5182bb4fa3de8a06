"""lazy=True: dask arrays, locally and on a dask.distributed cluster."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from laion_fmri.errors import MissingDependencyError
from laion_fmri.subject import load_session_betas, load_subject

pytest.importorskip("dask")


def test_lazy_matches_eager_and_metadata(shared_downloaded: Path) -> None:
    sub = load_subject("sub-01", data_dir=shared_downloaded)
    sessions = sub.get_sessions()
    lazy = sub.get_betas(sessions, roi="face", lazy=True)
    sizes = [sub.get_trial_info(s).shape[0] for s in sessions]
    assert lazy.chunks == (tuple(sizes), (int(sub.get_roi_mask("face").sum()),))
    assert lazy.dtype == np.float32
    eager = sub.get_betas(sessions, roi="face")
    np.testing.assert_array_equal(lazy.compute(), np.concatenate([eager[s] for s in sessions]))
    assert lazy.shape[0] == len(sub.metadata)
    shared = sub.get_betas(["ses-01", "ses-02"], stimuli="shared", lazy=True)
    expected = sub.get_betas(["ses-01", "ses-02"], stimuli="shared")
    np.testing.assert_array_equal(shared.compute(), np.concatenate(list(expected.values())))


def test_lazy_restrictions(shared_downloaded: Path) -> None:
    sub = load_subject("sub-01", data_dir=shared_downloaded)
    with pytest.raises(ValueError, match="average"):
        sub.get_betas("ses-01", average="label", lazy=True)
    with pytest.raises(ValueError, match="mask="):
        sub.get_betas(["ses-01", "ses-02"], nc_threshold=5, lazy=True)
    one = sub.get_betas("ses-01", nc_threshold=5, lazy=True)
    np.testing.assert_array_equal(one.compute(), sub.get_betas("ses-01", nc_threshold=5))


def test_task_and_subject_pickle(shared_downloaded: Path) -> None:
    sub = load_subject("sub-03", data_dir=shared_downloaded)
    clone = pickle.loads(pickle.dumps(sub))
    assert clone.subject_id == "sub-03" and clone.data_dir == sub.data_dir
    assert pickle.loads(pickle.dumps(load_session_betas)) is load_session_betas


def test_missing_dask_names_extra(shared_downloaded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = load_subject("sub-03", data_dir=shared_downloaded)
    for name in list(sys.modules):
        if name == "dask" or name.startswith("dask."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)  # makes `import dask` fail
    with pytest.raises(MissingDependencyError, match=r"laion-fmri\[dask\]"):
        sub.get_betas("ses-01", lazy=True)


@pytest.mark.slow
def test_distributed_cluster(shared_downloaded: Path) -> None:
    distributed = pytest.importorskip("distributed")
    sub = load_subject("sub-03", data_dir=shared_downloaded)
    lazy = sub.get_betas("all", roi="FFA1", lazy=True)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = client.compute(lazy).result()
    eager = sub.get_betas("all", roi="FFA1")
    np.testing.assert_array_equal(result, np.concatenate(list(eager.values())))
