"""Small helpers shared by the benchmark scripts (ports, child servers, peak memory, sizes)."""

from __future__ import annotations

import resource
import socket
import subprocess
import time
from pathlib import Path


def peak_mb() -> float:
    """Peak RSS of this process in MiB.

    ``VmHWM`` of this process's own memory; ``ru_maxrss`` would carry the
    peak of the parent that forked it across ``exec``.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str = "the server",
              timeout: float = 60.0) -> None:
    """Return once something listens on ``port``; exit if ``proc`` died or time ran out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start listening on port {port}")


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files below ``path`` (links not followed)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
