"""A fault-injecting HTTP/1.1 proxy for the loopback S3 server.

The proxy listens on ``127.0.0.1:<ephemeral port>`` and forwards every request
to an upstream S3 endpoint (the moto server of ``tests/conftest.py``). Tests
add :class:`Rule` objects that match requests by method and a substring of the
request target (path plus query) and, for the first ``times`` matches, break
the response in a chosen way:

``reset``
    send the headers and part of the body, then abort the TCP connection (RST).
``truncate``
    send the headers with the correct ``Content-Length`` and part of the body,
    then close the connection cleanly (FIN).
``short_length``
    advertise a ``Content-Length`` smaller than the body and send only that many
    bytes: a well-formed but short response.
``long_length``
    advertise a ``Content-Length`` larger than the body, send the whole body,
    then close.
``stall``
    send the headers and part of the body, then go silent for ``delay`` seconds
    (or until the proxy stops) before closing.
``drip``
    pass the response through, but slowly: ``drip_bytes`` every ``drip_interval``
    seconds (for killing a client mid-body).
``status``
    answer ``status`` (500, 503, 403 ...) with an S3-style XML error, without
    contacting the upstream.
``ignore_range``
    drop the ``Range`` header before forwarding, so the client gets ``200`` and
    the whole object.
``flip``
    pass the response through with one byte changed (at ``fraction`` of the
    body; length and headers kept): damage that only a content check catches.
``passthrough``
    forward unchanged (useful with ``before`` to run a hook, e.g. overwriting
    the object upstream right before the request is served).

Every request is recorded (:class:`Record`: method, path, query, ``Range``,
whether an ``Authorization`` header was present, the status sent and the
fault applied) so tests can assert what the client did.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = (
    "reset",
    "truncate",
    "short_length",
    "long_length",
    "stall",
    "drip",
    "status",
    "ignore_range",
    "flip",
    "passthrough",
)

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}

_ERROR_CODES = {
    403: "AccessDenied",
    404: "NoSuchKey",
    500: "InternalError",
    503: "SlowDown",
}


@dataclass
class Rule:
    """One fault to inject.

    Parameters
    ----------
    fault : str
        One of :data:`FAULTS`.
    match : str
        Substring of the request target (``/bucket/key?query``); ``""`` matches all.
    method : str or None
        HTTP method to match (``None`` matches any).
    times : int or None
        Apply to the first ``times`` matching requests, then pass through
        (``None``: every time).
    status : int
        Status code for ``fault="status"``.
    fraction : float
        Share of the body sent before a ``reset``/``truncate``/``stall``.
    delay : float
        Seconds a ``stall`` stays silent.
    drip_bytes, drip_interval : int, float
        Pace of a ``drip``.
    before : callable, optional
        Called (with no arguments) when the rule fires, before forwarding.
    only_ranged : bool
        Match only requests that carry a ``Range`` header.
    """

    fault: str
    match: str = ""
    method: str | None = "GET"
    times: int | None = 1
    status: int = 503
    fraction: float = 0.5
    delay: float = 5.0
    drip_bytes: int = 4096
    drip_interval: float = 0.05
    before: Callable[[], None] | None = None
    only_ranged: bool = False
    fired: int = 0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {FAULTS}")


@dataclass(frozen=True)
class Record:
    """One request as the proxy saw it."""

    method: str
    path: str
    query: str
    range: str | None
    if_match: str | None
    authorization: bool
    status: int
    fault: str | None
    body_bytes: int

    @property
    def key(self) -> str:
        """Bucket-relative key (path without the leading ``/<bucket>/``)."""
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""


@dataclass
class _State:
    rules: list[Rule] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


class FaultProxy:
    """The proxy server; use as a context manager or call :meth:`start`/:meth:`stop`.

    Parameters
    ----------
    upstream : str
        ``http://host:port`` of the S3 server to forward to.

    Examples
    --------
    >>> with FaultProxy("http://127.0.0.1:9000") as proxy:  # doctest: +SKIP
    ...     proxy.add(Rule("status", match="sub-01", status=503, times=2))
    ...     url = proxy.url
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self._state = _State()
        handler = type("_BoundHandler", (_Handler,), {"state": self._state, "upstream": self.upstream})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the proxy."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release stalled responses and shut the server down."""
        self._state.stop.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ rules
    def add(self, rule: Rule) -> Rule:
        """Add a rule (rules are tried in insertion order; the first live match fires)."""
        with self._state.lock:
            self._state.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule (records are kept)."""
        with self._state.lock:
            self._state.rules.clear()

    # ------------------------------------------------------------------ records
    @property
    def records(self) -> list[Record]:
        """A snapshot of every request seen so far."""
        with self._state.lock:
            return list(self._state.records)

    def reset_records(self) -> None:
        """Forget the recorded requests."""
        with self._state.lock:
            self._state.records.clear()

    def requests(self, method: str | None = None, match: str = "") -> list[Record]:
        """Recorded requests filtered by method and a substring of the path."""
        return [
            r
            for r in self.records
            if (method is None or r.method == method) and match in r.path + "?" + r.query
        ]

    @property
    def faults_injected(self) -> int:
        """How many responses were broken on purpose."""
        return sum(1 for r in self.records if r.fault not in (None, "passthrough"))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State
    upstream: tuple[str, int]

    def log_message(self, format: str, *args: object) -> None:
        return None

    # One entry point for every method the S3 client uses.
    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _take_rule(self) -> Rule | None:
        target = self.path
        with self.state.lock:
            for rule in self.state.rules:
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.method is not None and rule.method != self.command:
                    continue
                if rule.match not in target:
                    continue
                if rule.only_ranged and not self.headers.get("Range"):
                    continue
                rule.fired += 1
                return rule
        return None

    def _record(self, status: int, fault: str | None, sent: int) -> None:
        path, _, query = self.path.partition("?")
        rec = Record(
            method=self.command,
            path=path,
            query=query,
            range=self.headers.get("Range"),
            if_match=self.headers.get("If-Match"),
            authorization="Authorization" in self.headers,
            status=status,
            fault=fault,
            body_bytes=sent,
        )
        with self.state.lock:
            self.state.records.append(rec)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request_body = self.rfile.read(length) if length else None
        rule = self._take_rule()
        if rule is not None and rule.before is not None:
            rule.before()
        if rule is not None and rule.fault == "status":
            self._send_error(rule.status)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if rule is not None and rule.fault == "ignore_range":
            headers.pop("Range", None)
            headers.pop("range", None)
        try:
            status, reason, resp_headers, body = self._forward(headers, request_body)
        except OSError:
            self._send_error(502)
            return
        fault = rule.fault if rule is not None else None
        if self.command == "HEAD":
            if fault is not None:  # injected: on record before the client sees it
                self._record(status, fault, 0)
            self._send_head(status, reason, resp_headers)
            if fault is None:  # served: on record once it was sent (not for a client gone)
                self._record(status, fault, 0)
            return
        self._send_with_fault(status, reason, resp_headers, body, rule)

    def _forward(
        self, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    # ------------------------------------------------------------------ responses
    def _start(self, status: int, reason: str, headers: list[tuple[str, str]], length: int) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() in _HOP_BY_HOP or name.lower() == "content-length":
                continue
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send_head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        length = next((v for k, v in headers if k.lower() == "content-length"), "0")
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", length)
        self.end_headers()

    def _send_error(self, status: int) -> None:
        code = _ERROR_CODES.get(status, "InternalError")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>injected by the fault proxy</Message>"
            "<RequestId>fault-proxy</RequestId></Error>"
        ).encode()
        if self.command == "HEAD":
            body = b""
        # An injected fault is recorded before the client can see the answer (a test
        # reading the records right after its request returned must find it); a
        # response served as it came is recorded once sent.
        self._record(status, "status", len(body))
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _abort(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _send_with_fault(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        rule: Rule | None,
    ) -> None:
        fault = rule.fault if rule is not None else None
        if rule is None or fault in ("ignore_range", "passthrough") or status >= 300:
            if fault is not None:
                self._record(status, fault, len(body))
            self._start(status, reason, headers, len(body))
            self.wfile.write(body)
            self.wfile.flush()
            if fault is None:
                self._record(status, fault, len(body))
            return
        cut = max(1, min(len(body) - 1, int(len(body) * rule.fraction))) if len(body) > 1 else 0
        if fault == "flip" and body:
            at = min(len(body) - 1, int(len(body) * rule.fraction))
            body = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1:]
            self._record(status, fault, len(body))
            self._start(status, reason, headers, len(body))
            self.wfile.write(body)
            self.wfile.flush()
            return
        try:
            if fault == "reset":
                self._record(status, fault, cut)
                self._start(status, reason, headers, len(body))
                self.wfile.write(body[:cut])
                self.wfile.flush()
                time.sleep(0.05)
                self._abort()
            elif fault == "truncate":
                self._record(status, fault, cut)
                self._start(status, reason, headers, len(body))
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
            elif fault == "short_length":
                self._record(status, fault, cut)
                self._start(status, reason, headers, cut)
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
            elif fault == "long_length":
                self._record(status, fault, len(body))
                self._start(status, reason, headers, len(body) + 1024)
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True
            elif fault == "stall":
                self._record(status, fault, cut)
                self._start(status, reason, headers, len(body))
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.state.stop.wait(rule.delay)
                self.close_connection = True
            elif fault == "drip":
                self._start(status, reason, headers, len(body))
                sent = 0
                self._record(status, fault, len(body))
                for piece in _pieces(body, rule.drip_bytes):
                    if self.state.stop.is_set():
                        break
                    self.wfile.write(piece)
                    self.wfile.flush()
                    sent += len(piece)
                    time.sleep(rule.drip_interval)
                if sent < len(body):
                    self.close_connection = True
        except OSError:
            # The client went away (killed, timed out): nothing left to do.
            self.close_connection = True


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), max(1, size)):
        yield body[start : start + size]
