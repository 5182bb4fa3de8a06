"""Benchmark: time to betas, download-then-load vs streaming from the source.

Usage::

    python benchmarks/bench_time_to_betas.py [--workdir DIR] [--n-trials 256] [--sessions 4]

Builds ``--sessions`` full-grid sample sessions (143^3, gzip level 1, one
seed each, so no two sessions are alike), serves them from a moto S3 server
in its own process, directly on loopback and behind the WAN proxy
(``/work/shared/tools/wan_proxy.py``: 60 MB/s per connection, 30 ms to first
byte, 300 MB/s link), and measures, each in a fresh process, for 1 and for
all sessions:

* ``fetch_alone``        the ranged reads of :mod:`laion_fmri._remote_betas`,
  bytes discarded (the network floor at the streamer's concurrency);
* ``download_alone``     ``laion_fmri.download.download`` of the session(s);
* ``decode_alone``       ``nifti.read_masked`` of the local ``.nii.gz`` (page cache);
* ``download_then_load`` ``download`` then ``Subject.get_betas`` (today's path);
* ``stream``             ``_remote_betas.stream_betas`` / ``stream_sessions``
  (ranged reads in flight, decode and MD5 while the bytes arrive);
* ``get_betas_fetch``    the public path: ``Subject.get_betas(session, fetch=True)``
  into an empty data directory (small files through the download engine, then
  the betas streamed into the masked cache; extra disk reported);
* loopback, all sessions: ``serial_stream`` (one session after the other) vs
  ``cluster_stream`` (``lazy_remote_betas`` computed on a 2-worker dask
  ``LocalCluster``, workers streaming from the source).

The pickled task-graph size of 5 subjects x 30 sessions is reported too.

Reported per variant: wall time, peak RSS (VmHWM), output size and extra
disk; the target is ``stream <= 1.15 x max(fetch_alone, decode_alone)`` for
one session. Results go to ``benchmarks/results/time_to_betas.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_export import SUB, _distinct_sessions, _peak_mb  # noqa: E402

WAN_PROXY = Path(os.environ.get("LAION_FMRI_WAN_PROXY", "/work/shared/tools/wan_proxy.py"))
BUCKET = "laion-fmri"
TARGET_RATIO = 1.15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# ----------------------------------------------------------------------------- variants
def variant(
    name: str, sessions: list[str], data: Path, in_flight: int, range_bytes: int
) -> dict[str, object]:
    """Run one measurement in this (fresh) process; the source comes from the environment."""
    from laion_fmri import _remote_betas as rb
    from laion_fmri import layout, nifti
    from laion_fmri._distributed_betas import lazy_remote_betas
    from laion_fmri._mask_index import derive_mask_index
    from laion_fmri.remote import open_store

    store = open_store()
    keys = [layout.betas_key(SUB, s) for s in sessions]
    mask = derive_mask_index(data / layout.local_relpath(layout.r2mean_key(SUB)))
    extra: dict[str, object] = {}
    out_bytes = 0
    t0 = time.perf_counter()
    if name == "fetch_alone":
        from concurrent.futures import ThreadPoolExecutor

        # Same concurrency as `stream`: sessions two at a time, requests split between them.
        n = min(rb.DEFAULT_SESSIONS_IN_FLIGHT, len(keys))
        per_session = max(1, -(-in_flight // n))

        def fetch(key: str) -> int:
            info = store.head(key)
            return sum(len(b) for b in rb.RangeReader(store, info, range_bytes, per_session))

        with ThreadPoolExecutor(n) as pool:
            out_bytes = sum(pool.map(fetch, keys))
    elif name == "decode_alone":
        for key in keys:
            out_bytes += nifti.read_masked(data / layout.local_relpath(key), mask.offsets).nbytes
    elif name in ("download_alone", "download_then_load"):
        from laion_fmri.download import download
        from laion_fmri.subject import load_subject

        target = Path(tempfile.mkdtemp(prefix="ttb-dl-", dir=os.environ["TTB_SCRATCH"]))
        try:
            download(subject=SUB, ses=sessions, n_jobs=4, progress=False, data_dir=target)
            extra["gzip_bytes_on_disk"] = sum(
                (target / layout.local_relpath(k)).stat().st_size for k in keys)
            if name == "download_then_load":
                sub = load_subject(SUB, data_dir=target)
                for s in sessions:
                    out_bytes += sub.get_betas(session=s, mask_source="rsquare").nbytes
                extra["cache_bytes_on_disk"] = _dir_bytes(target / ".laion_fmri" / "cache")
        finally:
            shutil.rmtree(target, ignore_errors=True)
    elif name == "stream":
        jobs = [(key, mask.offsets) for key in keys]
        methods = []
        for res in rb.stream_sessions(store, jobs, in_flight=in_flight, range_bytes=range_bytes):
            out_bytes += res.betas.nbytes
            methods.append(res.verified)
        extra["verified"] = methods
    elif name == "get_betas_fetch":
        from laion_fmri.subject import Subject

        target = Path(tempfile.mkdtemp(prefix="ttb-fetch-", dir=os.environ["TTB_SCRATCH"]))
        try:
            sub = Subject(SUB, target)
            # One call for all sessions: they stream two at a time.
            res = sub.get_betas(session=list(sessions), fetch=True, mask_source="rsquare")
            out_bytes = sum(a.nbytes for a in res.values())
            extra["gzip_bytes_on_disk"] = sum(
                p.stat().st_size for p in target.rglob("*SingletrialBetas_statmap.nii.gz"))
            extra["cache_bytes_on_disk"] = _dir_bytes(target / ".laion_fmri" / "cache")
            extra["data_dir_bytes"] = _dir_bytes(target)
        finally:
            shutil.rmtree(target, ignore_errors=True)
    elif name == "serial_stream":
        for key in keys:
            out_bytes += rb.stream_betas(store, key, mask.offsets, in_flight=in_flight,
                                         range_bytes=range_bytes).betas.nbytes
    elif name == "cluster_stream":
        from distributed import Client, LocalCluster

        from laion_fmri.config import get_source

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            t0 = time.perf_counter()  # cluster start-up is not part of the load
            arr = lazy_remote_betas(get_source(), [(SUB, s) for s in sessions], None,
                                       int(mask.c_index.size), in_flight=in_flight,
                                       range_bytes=range_bytes, mask_source="rsquare")
            out_bytes = arr.compute().nbytes
            seconds = time.perf_counter() - t0
            client.shutdown()
        return {"variant": name, "seconds": seconds, "peak_rss_mb": _peak_mb(),
                "output_mb": out_bytes / 2**20, "note": "client process only; 2 worker processes"}
    else:
        raise SystemExit(f"unknown variant {name}")
    seconds = time.perf_counter() - t0
    return {"variant": name, "seconds": seconds, "peak_rss_mb": _peak_mb(),
            "output_mb": out_bytes / 2**20, **extra}


def _run(name: str, sessions: list[str], data: Path, env: dict[str, str], repeats: int,
         in_flight: int, range_mb: int) -> dict[str, object]:
    runs = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, __file__, "--variant", name, "--data", str(data),
             "--in-flight", str(in_flight), "--range-mb", str(range_mb),
             "--session-list", ",".join(sessions)],
            capture_output=True, text=True, check=False, env=env,
        )
        if proc.returncode != 0:
            raise SystemExit(f"variant {name} failed:\n{proc.stderr[-3000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    res = dict(min(runs, key=lambda r: r["seconds"]))
    res["all_seconds"] = [r["seconds"] for r in runs]
    res["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    print(f"    {name:20s} {res['seconds']:7.2f} s  peak {res['peak_rss_mb']:6.0f} MB  "
          f"output {res['output_mb']:6.0f} MB", flush=True)
    return res


def _upload(data: Path, endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-west-2",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    for path in sorted(data.rglob("*")):
        rel = path.relative_to(data).as_posix()
        if rel.startswith(".laion_fmri") or not path.is_file():
            continue
        with open(path, "rb") as fh:
            client.put_object(Bucket=BUCKET, Key=rel, Body=fh, ACL="public-read")


def _graph_sizes() -> dict[str, int]:
    """Pickled task-graph size of lazy streamed betas for 5 subjects x 30 sessions."""
    import pickle

    import numpy as np

    from laion_fmri._distributed_betas import lazy_remote_betas
    from laion_fmri.config import parse_source

    source = parse_source(f"s3://{BUCKET}")
    out = {}
    for label, cols in (("whole_brain", None), ("roi_5000_voxels_each_subject", "roi")):
        graph: dict[object, object] = {}
        for i in (1, 3, 5, 6, 7):
            sel = None if cols is None else np.sort(np.random.default_rng(i).choice(65000, 5000, False))
            arr = lazy_remote_betas(source, [(f"sub-{i:02d}", f"ses-{j:02d}") for j in range(1, 31)],
                                       sel, 65000 if sel is None else 5000, rows=[1050] * 30)
            graph.update(dict(arr.__dask_graph__()))
        out[label] = len(pickle.dumps(graph))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.environ.get("LAION_FMRI_BENCH_DIR",
                                                            "/tmp/laion_fmri_bench"))
    parser.add_argument("--n-trials", type=int, default=256)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=4,
                        help="ranged requests in flight per session behind the WAN proxy")
    parser.add_argument("--in-flight-loopback", type=int, default=2,
                        help="the same on loopback (moto copies the whole object for every "
                             "ranged GET, so fewer requests at once are faster there)")
    parser.add_argument("--range-mb", type=int, default=16, help="MiB per ranged request")
    parser.add_argument("--skip-wan", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true",
                        help="skip the 2-worker dask LocalCluster vs serial comparison")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "time_to_betas.json")
    parser.add_argument("--variant")
    parser.add_argument("--data")
    parser.add_argument("--session-list")
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(variant(args.variant, args.session_list.split(","), Path(args.data),
                                 args.in_flight, args.range_mb << 20)))
        return 0

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = _distinct_sessions(work, args.n_trials, args.sessions)
    sessions = [f"ses-{i:02d}" for i in range(1, args.sessions + 1)]
    procs = []
    moto_port = _free_port()
    scratch = work / "scratch"
    scratch.mkdir(exist_ok=True)
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_port(moto_port)
        endpoint = f"http://127.0.0.1:{moto_port}"
        _upload(data, endpoint)
        links = {"loopback": endpoint}
        if not args.skip_wan and WAN_PROXY.is_file():
            proxy_port = _free_port()
            procs.append(subprocess.Popen(
                [sys.executable, str(WAN_PROXY), "--upstream", str(moto_port), "--port",
                 str(proxy_port), "--conn-mbps", "60", "--link-mbps", "300", "--ttfb-ms", "30"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            _wait_port(proxy_port)
            links["wan"] = f"http://127.0.0.1:{proxy_port}"
        results: dict[str, dict[str, object]] = {}
        for link, url in links.items():
            in_flight = args.in_flight_loopback if link == "loopback" else args.in_flight
            env = {**os.environ, "LAION_FMRI_SOURCE": f"s3://{BUCKET}", "LAION_FMRI_ENDPOINT_URL": url,
                   "LAION_FMRI_ACCEPT_LICENSE": "1", "TTB_SCRATCH": str(scratch),
                   "XDG_CONFIG_HOME": str(scratch / "xdg")}
            for subset in ([sessions[0]], sessions) if len(sessions) > 1 else ([sessions[0]],):
                label = f"{link}_{len(subset)}ses"
                print(f"  {label}", flush=True)
                block = {}
                for name in ("fetch_alone", "download_alone", "decode_alone", "download_then_load",
                             "stream", "get_betas_fetch"):
                    block[name] = _run(name, subset, data, env, args.repeats, in_flight, args.range_mb)
                floor = max(block["fetch_alone"]["seconds"], block["decode_alone"]["seconds"])
                block["summary"] = {
                    "stream_over_max_fetch_decode": block["stream"]["seconds"] / floor,
                    "stream_over_max_download_decode": block["stream"]["seconds"] / max(
                        block["download_alone"]["seconds"], block["decode_alone"]["seconds"]),
                    "download_then_load_over_stream":
                        block["download_then_load"]["seconds"] / block["stream"]["seconds"],
                    "get_betas_fetch_over_max_download_decode": block["get_betas_fetch"]["seconds"]
                    / max(block["download_alone"]["seconds"], block["decode_alone"]["seconds"]),
                    "download_then_load_over_get_betas_fetch":
                        block["download_then_load"]["seconds"] / block["get_betas_fetch"]["seconds"],
                    "extra_disk_get_betas_fetch_bytes": block["get_betas_fetch"]["data_dir_bytes"],
                    "target": TARGET_RATIO,
                    "in_flight": in_flight,
                    "range_mib": args.range_mb,
                    "extra_disk_stream_bytes": 0,
                    "masked_output_bytes": int(block["stream"]["output_mb"] * 2**20),
                }
                print(f"    -> stream / max(fetch, decode) = "
                      f"{block['summary']['stream_over_max_fetch_decode']:.2f}", flush=True)
                results[label] = block
            if link == "loopback" and len(sessions) > 1 and not args.skip_cluster:
                print(f"  {link}_cluster_{len(sessions)}ses", flush=True)
                block = {name: _run(name, sessions, data, env, 1, in_flight, args.range_mb)
                         for name in ("serial_stream", "cluster_stream")}
                block["summary"] = {"serial_over_cluster":
                                    block["serial_stream"]["seconds"] / block["cluster_stream"]["seconds"]}
                results[f"{link}_cluster_{len(sessions)}ses"] = block
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
    from laion_fmri import layout

    gz = [(data / layout.local_relpath(layout.betas_key(SUB, s))).stat().st_size for s in sessions]
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_avg_at_end": list(os.getloadavg())},
        "method": "each variant in a fresh process (fastest of --repeats; peak RSS = max VmHWM); "
                  "moto S3 server in its own process; WAN = wan_proxy.py 60 MB/s per connection, "
                  "30 ms first byte, 300 MB/s link; stream = ranged reads "
                  f"(--range-mb {args.range_mb} MiB after a ramp from 1/8 of it; "
                  f"{args.in_flight_loopback} in flight on loopback, {args.in_flight} on the WAN) "
                  "into the zlib-ng decoder with MD5 on a second thread, 2 sessions at once; "
                  "the mask index is derived before timing in every variant. moto copies the "
                  "whole object for every ranged GET (CPU on this machine), which fetch_alone "
                  "pays too",
        "dataset": {"sessions": args.sessions, "n_trials": args.n_trials, "grid": [143, 143, 143],
                    "gzip_bytes_per_session": gz},
        "results": results,
        "pickled_graph_bytes_5_subjects_x_30_sessions": _graph_sizes(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
