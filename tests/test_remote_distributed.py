"""Workers that share nothing with the client stream their sessions from the S3 source."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("zarr")

from laion_fmri import _distributed_betas as db
from laion_fmri import layout
from laion_fmri.config import parse_source
from laion_fmri.subject import Subject

SUB = "sub-03"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _worker_setup(folder: str) -> str:
    """Give each worker its own empty working directory and no data directory."""
    import tempfile

    os.environ.pop("LAION_FMRI_DATA_DIR", None)
    os.environ["XDG_CONFIG_HOME"] = folder  # no persisted config either
    os.chdir(tempfile.mkdtemp(dir=folder))
    return os.getcwd()


def _masks_read() -> int:
    return len(db._WORKER_MASKS)


def test_local_cluster_streams_without_shared_data_dir(  # type: ignore[no-untyped-def]
    s3_server, shared_downloaded: Path, tmp_path: Path
) -> None:
    import zarr
    from distributed import Client, LocalCluster

    source = parse_source(f"s3://{s3_server.bucket}", s3_server.endpoint_url)
    sub = Subject(SUB, shared_downloaded)  # the client's reference copy, never seen by workers
    sessions = [s for s in sub.get_sessions() if s not in layout.HELD_OUT_SESSIONS]
    cols = np.flatnonzero(sub.get_roi_mask("face"))
    expected = np.concatenate([sub.get_betas(session=s, roi="face") for s in sessions])
    workers_home = tmp_path / "workers"
    workers_home.mkdir()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      local_directory=str(workers_home)) as cluster, Client(cluster) as client:
        cwds = client.run(_worker_setup, str(workers_home))
        assert len(cwds) == 2 and all(Path(c).parent == workers_home for c in cwds.values())
        assert os.getcwd() not in cwds.values()
        assert all(v is None for v in client.run(os.environ.get, "LAION_FMRI_DATA_DIR").values())

        arr = db.lazy_remote_betas(source, [(SUB, s) for s in sessions], cols, int(cols.size))
        assert arr.chunks[0] == tuple(len(sub.get_trial_info(s)) for s in sessions)
        np.testing.assert_array_equal(arr.compute(), expected)
        # The brain mask and betas were read on the workers, not in this process.
        assert sum(client.run(_masks_read).values()) >= 1 and _masks_read() == 0

        # to_zarr: the workers write the blocks; only shapes come back.
        out = str(tmp_path / "out.zarr")
        specs = [db.BlockSpec(source, SUB, s, cols) for s in sessions]
        shapes = client.gather(client.map(db.session_to_zarr, specs, url=out, chunk_voxels=64))
    assert shapes == [tuple(sub.get_betas(session=s, roi="face").shape) for s in sessions]
    group = zarr.open_group(out, mode="r")
    for s in sessions:
        np.testing.assert_array_equal(group[f"{SUB}/{s}"][:], sub.get_betas(session=s, roi="face"))
        assert group[f"{SUB}/{s}"].chunks[1] == 64


def test_graph_stays_small() -> None:
    import pickle

    source = parse_source("s3://laion-fmri")
    cols = np.arange(5000, dtype=np.int64)
    arrays = [
        db.lazy_remote_betas(source, [(f"sub-{i:02d}", f"ses-{j:02d}") for j in range(1, 31)], cols,
                             int(cols.size), rows=[1050] * 30)
        for i in (1, 3, 5, 6, 7)
    ]
    graph = {}
    for arr in arrays:
        graph.update(dict(arr.__dask_graph__()))
    size = len(pickle.dumps(graph))
    # 150 tasks and one shared 40 kB column array, not 150 copies of it.
    assert size < 400_000, size
    # No block depends on another task (a shared dependency would pull every block
    # to the one worker that computed it): the scheduler spreads them freely.
    from dask.core import get_dependencies

    dsk = dict(arrays[0].__dask_graph__())
    blocks = [k for k in dsk if str(k).startswith("laion-fmri-remote-")]
    assert len(blocks) == 30 and all(get_dependencies(dsk, k) == set() for k in blocks)
    # Two selections of the same sessions never share a key.
    other = db.lazy_remote_betas(source, [("sub-01", "ses-01")], cols[:10], 10, rows=[1050])
    assert not set(dict(other.__dask_graph__())) & set(dict(arrays[0].__dask_graph__()))


def test_group_creation_survives_racing_writers(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = str(tmp_path / "race.zarr")
    with ThreadPoolExecutor(8) as pool:
        groups = list(pool.map(lambda _: db._require_group(url, SUB), range(16)))
    assert {g.path for g in groups} == {SUB}


def test_get_betas_lazy_fetch_runs_on_workers_without_the_data_dir(  # type: ignore[no-untyped-def]
    s3_source, shared_downloaded: Path, data_dir: Path, tmp_path: Path
) -> None:
    from distributed import Client, LocalCluster

    from laion_fmri.licenses import accept_dataset_license

    accept_dataset_license(data_dir)
    reference = Subject(SUB, shared_downloaded)
    sessions = [s for s in reference.get_sessions() if s not in layout.HELD_OUT_SESSIONS][:2]
    sub = Subject(SUB, data_dir)  # the client has the small files only (fetched below)
    workers_home = tmp_path / "workers"
    workers_home.mkdir()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      local_directory=str(workers_home)) as cluster, Client(cluster) as client:
        client.run(_worker_setup, str(workers_home))
        arr = sub.get_betas(session=sessions, roi="face", lazy=True, fetch=True)
        assert arr.chunks[0] == tuple(len(reference.get_trial_info(s)) for s in sessions)
        expected = np.concatenate([reference.get_betas(session=s, roi="face") for s in sessions])
        np.testing.assert_array_equal(arr.compute(), expected)
        assert sum(client.run(_masks_read).values()) >= 1  # the workers read the mask themselves
    # The client streamed no betas and wrote no cache: the workers did the work.
    assert not list(data_dir.rglob("*SingletrialBetas_statmap.nii.gz"))
    assert not list(data_dir.rglob("*_betas.npy"))
