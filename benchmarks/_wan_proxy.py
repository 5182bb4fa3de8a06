#!/usr/bin/env python3
"""WAN-like TCP proxy with the semantics of ``/work/shared/tools/wan_proxy.py``, zero-copy.

Same model and command line as the shared proxy: every response waits
``--ttfb-ms`` before its first byte (once per request on a keep-alive
connection), each TCP connection is paced to ``--conn-mbps`` and all
connections together to ``--link-mbps``. Byte-transparent: it only delays.

The difference is the cost per byte. The shared proxy copies every 64 KiB
through Python (``recv`` + ``sendall``) and takes a lock per chunk, which on a
2-core machine competes with the server and the client being measured and
caps what any client can reach below the link. Here response bytes move
socket -> pipe -> socket with ``os.splice`` (the kernel moves pages; Python
only does the pacing arithmetic per 256 KiB), so the proxy stays out of the
measurement. Pacing is the same reserve-then-sleep token bucket.

  python _wan_proxy.py --upstream 9100 --port 9200 --conn-mbps 60 --link-mbps 300 --ttfb-ms 30
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import socket
import threading
import time

CHUNK = 256 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class Pacer:
    """Reserve-then-sleep token bucket: ``take(n)`` returns once ``n`` bytes may pass."""

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second
        self.next_free = 0.0
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + n / self.rate
            delay = self.next_free - now
        if delay > 0:
            time.sleep(delay)


def _shutdown(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    with contextlib.suppress(OSError):  # a smaller pipe only means more, smaller splices
        fcntl.fcntl(w, F_SETPIPE_SZ, CHUNK)
    return r, w


def handle(client: socket.socket, args: argparse.Namespace, link: Pacer) -> None:
    """Relay one client connection to the upstream server until either side closes."""
    upstream = socket.create_connection(("127.0.0.1", args.upstream))
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Pacer(args.conn_mbps * 1e6)
    pending = threading.Event()  # a request went up; its response pays the first-byte delay

    def upstream_to_client() -> None:
        r, w = _pipe()
        try:
            while True:
                n = os.splice(upstream.fileno(), w, CHUNK)
                if n == 0:
                    break
                if pending.is_set():
                    pending.clear()
                    time.sleep(args.ttfb_ms / 1000)
                conn.take(n)
                link.take(n)
                while n:
                    n -= os.splice(r, client.fileno(), n)
        except OSError:
            pass
        finally:
            os.close(r)
            os.close(w)
            _shutdown(client, upstream)

    def client_to_upstream() -> None:
        try:
            while True:
                data = client.recv(1 << 16)
                if not data:
                    break
                pending.set()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream_to_client, daemon=True).start()
    client_to_upstream()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--port", type=int, default=9200)
    ap.add_argument("--conn-mbps", type=float, default=60.0, help="MB/s per TCP connection")
    ap.add_argument("--link-mbps", type=float, default=300.0, help="MB/s over all connections")
    ap.add_argument("--ttfb-ms", type=float, default=30.0)
    args = ap.parse_args()
    link = Pacer(args.link_mbps * 1e6)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(256)
    print(f"READY http://127.0.0.1:{args.port} conn={args.conn_mbps}MB/s "
          f"link={args.link_mbps}MB/s ttfb={args.ttfb_ms}ms splice", flush=True)
    while True:
        client, _ = srv.accept()
        threading.Thread(target=handle, args=(client, args, link), daemon=True).start()


if __name__ == "__main__":
    main()
