"""Benchmark: time to betas, download-then-load vs streaming from the source.

Usage::

    python benchmarks/bench_time_to_betas.py [--workdir DIR] [--n-trials 256] [--sessions 4]

Builds ``--sessions`` full-grid sample sessions (143^3, gzip level 1, one
seed each, so no two sessions are alike), serves them with
``benchmarks/_s3_server.py`` in its own process (S3 protocol, ``sendfile``,
multipart ETags for objects over 8 MiB and full-object CRC64NVME checksums,
as S3 serves objects uploaded by the usual tools), directly on loopback and
behind ``benchmarks/_wan_proxy.py`` (zero-copy, the semantics of
``/work/shared/tools/wan_proxy.py``: 60 MB/s per connection, 30 ms to first
byte, 300 MB/s link), and measures, each in a fresh process, for 1 and for
all sessions:

* ``fetch_alone``        the ranged reads of :mod:`laion_fmri._remote_betas`,
  bytes discarded (the network floor at the streamer's concurrency);
* ``download_alone``     ``laion_fmri.download.download`` of the session(s)
  (defaults: the real download a user runs; the baseline of the target);
* ``decode_alone``       ``nifti.read_masked`` of the local ``.nii.gz`` (page cache);
* ``download_then_load`` ``download`` then ``Subject.get_betas`` (today's path);
* ``stream``             ``_remote_betas.stream_sessions`` (ranged reads in
  flight, decode and CRC64NVME while the bytes arrive; the arrays are kept,
  as a user keeps them);
* ``get_betas_fetch``    the public path: ``Subject.get_betas(session, fetch=True)``
  into an empty data directory (small files through the download engine, then
  the betas streamed into the masked cache; extra disk reported);
* ``aws_then_nibabel`` (1 session, with ``--aws``) what a user does without this
  package: ``aws s3 cp`` of the betas, then ``nibabel`` loads the 4-D image and
  the same voxels are taken;
* loopback and WAN, all sessions: ``serial_stream`` (one session after the
  other in one process) vs ``cluster_stream`` (``lazy_remote_betas``
  computed on a 2-worker dask ``LocalCluster``, one thread each, workers
  streaming from the source, blocks gathered straight from the workers;
  cluster start-up and worker imports are not timed, reported beside).

The pickled task-graph size of 5 subjects x 30 sessions is reported too.

Reported per variant: wall time, peak RSS (VmHWM), output size and extra
disk; the targets are ``stream <= 1.15 x max(download_alone, decode_alone)``
and peak RSS <= output + 200 MB. Results go to
``benchmarks/results/time_to_betas.json``. Behind the shared proxy instead::

    LAION_FMRI_WAN_PROXY=/work/shared/tools/wan_proxy.py python benchmarks/bench_time_to_betas.py \
        --skip-loopback --out benchmarks/results/time_to_betas_shared_proxy.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import dir_bytes, free_port, peak_mb, wait_port  # noqa: E402
from bench_export import SUB, _distinct_sessions  # noqa: E402

WAN_PROXY = Path(os.environ.get("LAION_FMRI_WAN_PROXY", str(HERE / "_wan_proxy.py")))
S3_SERVER = HERE / "_s3_server.py"
BUCKET = "laion-fmri"
TARGET_RATIO = 1.15
TARGET_RSS_OVER_OUTPUT_MB = 200


# ----------------------------------------------------------------------------- variants
def variant(
    name: str, sessions: list[str], data: Path, in_flight: int | None, range_bytes: int | None
) -> dict[str, object]:
    """Run one measurement in this (fresh) process; the source comes from the environment."""
    import awscrt.checksums  # noqa: F401 - the content checks' CRC; imports are not timed
    import urllib3  # noqa: F401 - the store's body transport (else imported on a thread in the timed span)

    from laion_fmri import _nifti as nifti
    from laion_fmri import _remote_betas as rb
    from laion_fmri import layout
    from laion_fmri._distributed_betas import lazy_remote_betas
    from laion_fmri._mask_index import derive_mask_index
    from laion_fmri.stores import open_store

    store = open_store()
    keys = [layout.betas_key(SUB, s) for s in sessions]
    mask = derive_mask_index(data / layout.local_relpath(layout.r2mean_key(SUB)))
    tuning: dict[str, int] = {}
    if in_flight:
        tuning["in_flight"] = in_flight
    if range_bytes:
        tuning["range_bytes"] = range_bytes
    extra: dict[str, object] = {}
    kept: list[object] = []  # outputs stay alive, as in a user's session (peak RSS counts them)
    cpu0 = os.times()
    t0 = time.perf_counter()
    if name == "fetch_alone":
        from concurrent.futures import ThreadPoolExecutor

        # The streamer's network side alone: same sessions at once, same ranges, bytes dropped.
        n = min(rb.DEFAULT_SESSIONS_IN_FLIGHT, len(keys))

        def fetch(key: str) -> int:
            # As stream_betas does it: the first ranges go out with the listing.
            info, start, initial = rb.start_object(store, key, **tuning)
            return sum(len(b) for b in rb.RangeReader(store, info, prefetch=start,
                                                      initial_in_flight=initial, **tuning))

        with ThreadPoolExecutor(n) as pool:
            extra["bytes_fetched"] = sum(pool.map(fetch, keys))
    elif name == "decode_alone":
        for key in keys:
            kept.append(nifti.read_masked(data / layout.local_relpath(key), mask.offsets))
    elif name in ("download_alone", "download_then_load"):
        from laion_fmri.download import download
        from laion_fmri.subject import load_subject

        target = Path(tempfile.mkdtemp(prefix="ttb-dl-", dir=os.environ["TTB_SCRATCH"]))
        try:
            download(subject=SUB, ses=sessions, progress=False, data_dir=target)
            extra["gzip_bytes_on_disk"] = sum(
                (target / layout.local_relpath(k)).stat().st_size for k in keys)
            if name == "download_then_load":
                sub = load_subject(SUB, data_dir=target)
                kept.extend(sub.get_betas(session=s, mask_source="rsquare") for s in sessions)
                extra["cache_bytes_on_disk"] = dir_bytes(target / ".laion_fmri" / "cache")
        finally:
            shutil.rmtree(target, ignore_errors=True)
    elif name == "aws_then_nibabel":
        import nibabel as nib
        import numpy as np

        # What a user does without this package: ``aws s3 cp`` the session, then nibabel.
        target = Path(tempfile.mkdtemp(prefix="ttb-aws-", dir=os.environ["TTB_SCRATCH"]))
        aws_env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-west-2",
                   "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
        try:
            for key in keys:
                dest = target / layout.local_relpath(key)
                subprocess.run([os.environ["TTB_AWS"], "s3", "cp", f"s3://{BUCKET}/{key}", str(dest),
                                "--no-sign-request", "--only-show-errors", "--endpoint-url",
                                os.environ["LAION_FMRI_ENDPOINT_URL"]], check=True, env=aws_env)
                data = np.asarray(nib.load(dest).dataobj, dtype=np.float32)  # the whole 4-D image
                flat = data.reshape(-1, data.shape[-1], order="F")  # disk order, as mask.offsets
                kept.append(np.ascontiguousarray(flat[mask.offsets].T))
                del data, flat
        finally:
            shutil.rmtree(target, ignore_errors=True)
    elif name == "stream":
        jobs = [(key, mask.offsets) for key in keys]
        methods = []
        for res in rb.stream_sessions(store, jobs, **tuning):
            kept.append(res.betas)
            methods.append(res.verified)
        extra["verified"] = methods
    elif name == "get_betas_fetch":
        from laion_fmri.subject import Subject

        target = Path(tempfile.mkdtemp(prefix="ttb-fetch-", dir=os.environ["TTB_SCRATCH"]))
        try:
            sub = Subject(SUB, target)
            # One call for all sessions: they stream two at a time.
            res = sub.get_betas(session=list(sessions), fetch=True, mask_source="rsquare")
            kept.extend(res.values() if isinstance(res, dict) else [res])
            extra["gzip_bytes_on_disk"] = sum(
                p.stat().st_size for p in target.rglob("*SingletrialBetas_statmap.nii.gz"))
            extra["cache_bytes_on_disk"] = dir_bytes(target / ".laion_fmri" / "cache")
            extra["data_dir_bytes"] = dir_bytes(target)
        finally:
            shutil.rmtree(target, ignore_errors=True)
    elif name == "serial_stream":
        for key in keys:
            kept.append(rb.stream_betas(store, key, mask.offsets, **tuning).betas)
    elif name == "cluster_stream":
        import dask.array  # noqa: F401 - imported by whoever starts a cluster; not timed
        import numpy as np
        from distributed import Client, LocalCluster, as_completed

        from laion_fmri.config import get_source

        t_start = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, \
                Client(cluster, direct_to_workers=True) as client:
            # A running cluster has its imports done: warm them, report the cost beside.
            client.run(__import__, "laion_fmri._distributed_betas")
            extra["cluster_start_and_imports_s"] = time.perf_counter() - t_start
            t0 = time.perf_counter()
            arr = lazy_remote_betas(get_source(), [(SUB, s) for s in sessions], None,
                                    int(mask.c_index.size), mask_source="rsquare", **tuning)
            # Each session's block comes to this process as soon as it is ready (as the
            # serial variant's arrays do); the dask array's one-piece result is timed beside.
            futures = client.compute(list(arr.to_delayed().ravel()))
            order = {f.key: i for i, f in enumerate(futures)}
            blocks: list[object] = [None] * len(futures)
            for fut in as_completed(futures):
                blocks[order[fut.key]] = fut.result()
            seconds = time.perf_counter() - t0
            t1 = time.perf_counter()
            kept.append(np.concatenate(blocks))  # type: ignore[arg-type]
            extra["concatenate_s"] = time.perf_counter() - t1
            del blocks, futures
            client.shutdown()
        return {"variant": name, "seconds": seconds, "peak_rss_mb": peak_mb(),
                "output_mb": sum(a.nbytes for a in kept) / 2**20,  # type: ignore[attr-defined]
                "note": "client process only; 2 worker processes, 1 thread each; seconds = all "
                        "session blocks in this process, concatenate_s = joining them after",
                **extra}
    else:
        raise SystemExit(f"unknown variant {name}")
    seconds = time.perf_counter() - t0
    cpu1 = os.times()
    # CPU of this process while timed (the server and proxy take theirs from the same 2 cores).
    extra["cpu_s"] = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {"variant": name, "seconds": seconds, "peak_rss_mb": peak_mb(),
            "output_mb": sum(a.nbytes for a in kept) / 2**20, **extra}  # type: ignore[attr-defined]


#: Idle seconds before each run, after syncing: the previous variant's files (written,
#: deleted, discarded on the disk) and freed memory settle before the next is timed.
SETTLE_S = 1.0


def _run_once(name: str, sessions: list[str], data: Path, env: dict[str, str],
              tuning: list[str]) -> dict[str, object]:
    # Dirty pages a variant left (downloads, caches; deleted or not) are written back
    # before the next one starts, not during it.
    os.sync()
    time.sleep(SETTLE_S)
    proc = subprocess.run(
        [sys.executable, __file__, "--variant", name, "--data", str(data), *tuning,
         "--session-list", ",".join(sessions)],
        capture_output=True, text=True, check=False, env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"variant {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_block(names: list[str], sessions: list[str], data: Path, env: dict[str, str],
               repeats: int, tuning: list[str]) -> dict[str, dict[str, object]]:
    """Each variant ``repeats`` times, in interleaved rounds (a slow spell of the machine
    hits every variant alike); per variant the fastest run, all run times and the peak RSS."""
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(_run_once(name, sessions, data, env, tuning))
    block = {}
    for name in names:
        res = dict(min(runs[name], key=lambda r: r["seconds"]))  # type: ignore[arg-type, return-value]
        res["all_seconds"] = [r["seconds"] for r in runs[name]]
        res["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs[name])  # type: ignore[type-var]
        print(f"    {name:20s} {res['seconds']:7.2f} s  peak {res['peak_rss_mb']:6.0f} MB  "
              f"output {res['output_mb']:6.0f} MB", flush=True)
        block[name] = res
    return block


def _start(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc


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


def _summary(block: dict[str, dict[str, object]]) -> dict[str, object]:
    def sec(name: str) -> float:
        return float(block[name]["seconds"])  # type: ignore[arg-type]

    def over_output(name: str) -> float:
        return float(block[name]["peak_rss_mb"]) - float(block[name]["output_mb"])  # type: ignore[arg-type]

    baseline = max(sec("download_alone"), sec("decode_alone"))
    out_mb = float(block["stream"]["output_mb"])  # type: ignore[arg-type]
    user = ({"aws_then_nibabel_over_stream": sec("aws_then_nibabel") / sec("stream"),
             "aws_then_nibabel_over_get_betas_fetch": sec("aws_then_nibabel") / sec("get_betas_fetch")}
            if "aws_then_nibabel" in block else {})
    return {
        **user,
        "stream_over_max_download_decode": sec("stream") / baseline,
        "get_betas_fetch_over_max_download_decode": sec("get_betas_fetch") / baseline,
        "stream_over_max_fetch_decode": sec("stream") / max(sec("fetch_alone"), sec("decode_alone")),
        "download_then_load_over_stream": sec("download_then_load") / sec("stream"),
        "download_then_load_over_get_betas_fetch": sec("download_then_load") / sec("get_betas_fetch"),
        "target_ratio": TARGET_RATIO,
        "stream_peak_rss_over_output_mb": over_output("stream"),
        "get_betas_fetch_peak_rss_over_output_mb": over_output("get_betas_fetch"),
        "decode_alone_peak_rss_over_output_mb": over_output("decode_alone"),
        "target_rss_over_output_mb": TARGET_RSS_OVER_OUTPUT_MB,
        "masked_output_bytes": int(out_mb * 2**20),
        "extra_disk_stream_bytes": 0,
        "extra_disk_get_betas_fetch_bytes": block["get_betas_fetch"]["data_dir_bytes"],
        "gzip_bytes_on_disk_download": block["download_alone"]["gzip_bytes_on_disk"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.environ.get("LAION_FMRI_BENCH_DIR",
                                                            "/tmp/laion_fmri_bench"))
    parser.add_argument("--n-trials", type=int, default=256)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=0,
                        help="ranged requests in flight per session (0: the library default)")
    parser.add_argument("--range-mb", type=int, default=0,
                        help="MiB per ranged request (0: the library default)")
    parser.add_argument("--aws", default=shutil.which("aws"),
                        help="aws cli for the aws_then_nibabel variant (1 session; skipped without it)")
    parser.add_argument("--skip-wan", action="store_true")
    parser.add_argument("--skip-loopback", action="store_true",
                        help="only the WAN blocks (e.g. a run behind another WAN proxy)")
    parser.add_argument("--skip-cluster", action="store_true",
                        help="skip the 2-worker dask LocalCluster vs serial comparison")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "time_to_betas.json")
    parser.add_argument("--variant")
    parser.add_argument("--data")
    parser.add_argument("--session-list")
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(variant(args.variant, args.session_list.split(","), Path(args.data),
                                 args.in_flight or None, (args.range_mb << 20) or None)))
        return 0

    from laion_fmri import _remote_betas as rb
    from laion_fmri import layout

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = _distinct_sessions(work, args.n_trials, args.sessions)
    sessions = [f"ses-{i:02d}" for i in range(1, args.sessions + 1)]
    tuning = ["--in-flight", str(args.in_flight), "--range-mb", str(args.range_mb)]
    scratch = work / "scratch"
    scratch.mkdir(exist_ok=True)
    load_start = list(os.getloadavg())
    procs = []
    try:
        server_port = free_port()
        procs.append(_start([sys.executable, str(S3_SERVER), str(data), "--bucket", BUCKET,
                             "--port", str(server_port), "--checksums"], server_port))
        links = {"loopback": f"http://127.0.0.1:{server_port}"}
        if not args.skip_wan:
            proxy_port = free_port()
            procs.append(_start([sys.executable, str(WAN_PROXY), "--upstream", str(server_port),
                                 "--port", str(proxy_port), "--conn-mbps", "60", "--link-mbps",
                                 "300", "--ttfb-ms", "30"], proxy_port))
            links["wan"] = f"http://127.0.0.1:{proxy_port}"
        if args.skip_loopback and not args.skip_wan:
            del links["loopback"]
        results: dict[str, dict[str, object]] = {}
        for link, url in links.items():
            env = {**os.environ, "LAION_FMRI_SOURCE": f"s3://{BUCKET}", "LAION_FMRI_ENDPOINT_URL": url,
                   "LAION_FMRI_ACCEPT_LICENSE": "1", "TTB_SCRATCH": str(scratch),
                   "XDG_CONFIG_HOME": str(scratch / "xdg")}
            for subset in ([sessions[0]], sessions) if len(sessions) > 1 else ([sessions[0]],):
                label = f"{link}_{len(subset)}ses"
                print(f"  {label}", flush=True)
                block: dict[str, dict[str, object]] = {}
                names = ["fetch_alone", "download_alone", "decode_alone", "download_then_load",
                         "stream", "get_betas_fetch"]
                if args.aws and len(subset) == 1:  # the user's alternative (nibabel holds the 4-D image)
                    names.append("aws_then_nibabel")
                block.update(_run_block(names, subset, data, {**env, "TTB_AWS": args.aws or ""},
                                        args.repeats, tuning))
                block["summary"] = _summary(block)
                print(f"    -> stream / max(download, decode) = "
                      f"{block['summary']['stream_over_max_download_decode']:.2f}; peak RSS - output "
                      f"= {block['summary']['stream_peak_rss_over_output_mb']:.0f} MB", flush=True)
                results[label] = block
            if len(sessions) > 1 and not args.skip_cluster:
                label = f"{link}_cluster_{len(sessions)}ses"
                print(f"  {label}", flush=True)
                block = _run_block(["serial_stream", "cluster_stream"], sessions, data, env,
                                   args.repeats, tuning)
                block["summary"] = {"serial_over_cluster": float(block["serial_stream"]["seconds"])  # type: ignore[arg-type]
                                    / float(block["cluster_stream"]["seconds"])}  # type: ignore[arg-type]
                results[label] = block
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
    gz = [(data / layout.local_relpath(layout.betas_key(SUB, s))).stat().st_size for s in sessions]
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_avg_at_start": load_start, "load_avg_at_end": list(os.getloadavg())},
        "method": "each variant in a fresh process (fastest of --repeats, run in interleaved "
                  f"rounds, dirty pages synced and {SETTLE_S:g} s idle before each run; peak RSS = "
                  "max VmHWM, outputs kept alive); source = benchmarks/_s3_server.py in its own process "
                  f"(sendfile, multipart ETags, full-object CRC64NVME); WAN = {WAN_PROXY} "
                  "60 MB/s per connection, 30 ms first byte, 300 MB/s link; stream = ranged reads "
                  f"({(args.range_mb << 20 or rb.DEFAULT_RANGE_BYTES) >> 20} MiB after a ramp, "
                  f"{args.in_flight or rb.DEFAULT_IN_FLIGHT} in flight per session, "
                  f"{rb.DEFAULT_READ_AHEAD_BYTES >> 20} MiB read-ahead per process) into the "
                  "zlib-ng decoder, verified by the server's CRC64NVME (as the download engine "
                  f"does), {rb.DEFAULT_SESSIONS_IN_FLIGHT} sessions at once; download_alone = "
                  "laion_fmri.download.download with its defaults; the mask index is derived "
                  "and imports (awscrt, dask.array) are done before timing in every variant; "
                  "serial_stream = stream_betas of one session after the other in one process",
        "dataset": {"sessions": args.sessions, "n_trials": args.n_trials, "grid": [143, 143, 143],
                    "gzip_bytes_per_session": gz},
        "results": results,
        "pickled_graph_bytes_5_subjects_x_30_sessions": _graph_sizes(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
