"""A loopback S3 endpoint that serves a large synthetic listing (ListObjectsV2).

moto re-scans every key for each 1000-key page, so listing 100,000 keys from
it takes minutes; this server answers the same S3 XML protocol from a sorted
in-memory key list in milliseconds per page. Every other request gets the
S3 ``NoSuchKey`` 404. Requests are counted per kind.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


class ListingServer:
    """Serve ``keys`` (each of ``size`` bytes) of ``bucket`` on ``127.0.0.1:<port>``.

    Examples
    --------
    >>> with ListingServer("b", ["a/1", "a/2"]) as srv:  # doctest: +SKIP
    ...     srv.url
    """

    def __init__(self, bucket: str, keys: Sequence[str], size: int = 1) -> None:
        self.bucket = bucket
        self.keys = sorted(keys)
        self.size = size
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        handler = type("_H", (_Handler,), {"server_state": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ListingServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def page(self, prefix: str, token: str | None, max_keys: int, delimiter: str | None,
             url_encoded: bool = False) -> bytes:
        """One ListObjectsV2 result page as XML (keys percent-encoded with ``encoding-type=url``).

        Keys are written as they are otherwise, so a key with a control character
        makes a page that XML parsers reject (as some servers do).
        """
        start = bisect.bisect_left(self.keys, token if token else prefix)
        if token:
            start = bisect.bisect_right(self.keys, token)
        contents: list[str] = []
        prefixes: list[str] = []
        i = start
        while i < len(self.keys) and len(contents) + len(prefixes) < max_keys:
            key = self.keys[i]
            if not key.startswith(prefix):
                break
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest.split(delimiter, 1)[0] + delimiter
                prefixes.append(common)
                # Skip every key under this common prefix.
                i = bisect.bisect_left(self.keys, common[:-1] + chr(ord(delimiter) + 1))
                continue
            contents.append(key)
            i += 1
        truncated = i < len(self.keys) and self.keys[i].startswith(prefix)
        last = contents[-1] if contents and (not prefixes or contents[-1] > prefixes[-1]) else None
        next_token = last or (prefixes[-1] if prefixes else "")
        parts = [
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{_NS}">',
            f"<Name>{escape(self.bucket)}</Name><Prefix>{escape(prefix)}</Prefix>",
            f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        ]
        if truncated:
            parts.append(f"<NextContinuationToken>{escape(next_token)}</NextContinuationToken>")
        for key in contents:
            shown = quote(key, safe="/") if url_encoded else escape(key)
            parts.append(
                f"<Contents><Key>{shown}</Key><LastModified>2025-01-01T00:00:00.000Z"
                f'</LastModified><ETag>"0cc175b9c0f1b6a831c399e269772661"</ETag>'
                f"<Size>{self.size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            )
        for common in prefixes:
            parts.append(f"<CommonPrefixes><Prefix>{escape(common)}</Prefix></CommonPrefixes>")
        parts.append("</ListBucketResult>")
        return "".join(parts).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: ListingServer

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.server_state
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path.strip("/") == state.bucket and query.get("list-type") == "2":
            state.count("list")
            body = state.page(
                query.get("prefix", ""), query.get("continuation-token") or query.get("start-after"),
                min(int(query.get("max-keys", "1000")), 1000), query.get("delimiter"),
                query.get("encoding-type") == "url",
            )
            self._send(200, body)
            return
        state.count(self.command.lower())
        self._send(404, b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code>'
                        b"<Message>not here</Message></Error>")

    do_HEAD = do_GET
