"""A small, fast S3-protocol server over a local folder, for the download benchmarks.

It speaks what the clients under test use (ListObjectsV2 with prefix,
delimiter and continuation, HEAD, GET with ``Range`` and ``If-Match``),
keeps connections alive and sends bodies with ``sendfile``, so on 2 cores the
server is not what limits the measured clients (moto re-reads every body in
Python and closes every connection).

ETags are computed as S3 computes them after an upload by the usual tools:
files up to ``--part-mb`` MiB get the MD5 of the body, larger ones the
multipart form ``md5(part md5s)-N`` for parts of ``--part-mb`` MiB. With
``--checksums`` a HEAD or GET carrying ``x-amz-checksum-mode: ENABLED`` also
gets the full-object ``x-amz-checksum-crc64nvme`` (S3's default since 2025).

    python benchmarks/_s3_server.py ROOT --bucket laion-fmri --port 9100 [--checksums]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

MiB = 1024 * 1024


def _etag_and_crc(path: Path, part: int) -> tuple[str, str]:
    from awscrt import checksums

    size = path.stat().st_size
    parts, crc = [], 0
    with open(path, "rb") as fh:
        while block := fh.read(part):
            parts.append(hashlib.md5(block).digest())
            crc = checksums.crc64nvme(block, crc)
    if size <= part:
        etag = parts[0].hex() if parts else hashlib.md5(b"").hexdigest()
    else:
        etag = f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"
    return etag, base64.b64encode(crc.to_bytes(8, "big")).decode()


class Catalog:
    """Every file under ``root`` with its key, size, ETag and CRC64NVME."""

    def __init__(self, root: Path, part: int) -> None:
        self.root = root
        files = sorted(p for p in root.rglob("*") if p.is_file() and ".laion_fmri" not in p.parts)
        with ThreadPoolExecutor(2) as pool:
            sums = list(pool.map(lambda p: _etag_and_crc(p, part), files))
        self.objects = {
            p.relative_to(root).as_posix(): (p, p.stat().st_size, etag, crc)
            for p, (etag, crc) in zip(files, sums, strict=True)
        }
        self.keys = sorted(self.objects)
        self.mtime = formatdate(0, usegmt=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, *args: object) -> None:
        return

    def _split(self) -> tuple[str, str, dict[str, list[str]]]:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.lstrip("/").split("/", 1)
        key = urllib.parse.unquote(parts[1]) if len(parts) == 2 else ""
        return parts[0], key, urllib.parse.parse_qs(url.query, keep_blank_values=True)

    def _error(self, status: int, code: str) -> None:
        body = f"<Error><Code>{code}</Code></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        bucket, key, query = self._split()
        if bucket != self.server.bucket:
            self._error(404, "NoSuchBucket")
        elif not key:
            self._list(query)
        else:
            self._object(key)

    def _list(self, query: dict[str, list[str]]) -> None:
        prefix = query.get("prefix", [""])[0]
        delimiter = query.get("delimiter", [""])[0]
        start = query.get("continuation-token", query.get("start-after", [""]))[0]
        max_keys = int(query.get("max-keys", ["1000"])[0])
        url_encode = query.get("encoding-type", [""])[0] == "url"
        cat = self.server.catalog
        contents, prefixes, last, truncated = [], [], "", False
        for key in cat.keys:
            if not key.startswith(prefix) or (start and key <= start):
                continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest.split(delimiter, 1)[0] + delimiter
                if common not in prefixes:
                    prefixes.append(common)
                last = key
                continue
            contents.append(key)
            last = key

        def enc(text: str) -> str:
            return escape(urllib.parse.quote(text, safe="/") if url_encode else text)

        xml = ['<?xml version="1.0" encoding="UTF-8"?>',
               '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
               f"<Name>{self.server.bucket}</Name><Prefix>{enc(prefix)}</Prefix>",
               f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
               f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
        if url_encode:
            xml.append("<EncodingType>url</EncodingType>")
        if delimiter:
            xml.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if truncated:
            xml.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
        for key in contents:
            _, size, etag, _ = cat.objects[key]
            xml.append(f"<Contents><Key>{enc(key)}</Key><LastModified>1970-01-01T00:00:00.000Z"
                       f"</LastModified><ETag>&quot;{etag}&quot;</ETag><Size>{size}</Size>"
                       "<StorageClass>STANDARD</StorageClass></Contents>")
        for p in prefixes:
            xml.append(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>")
        xml.append("</ListBucketResult>")
        body = "".join(xml).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _object(self, key: str) -> None:
        entry = self.server.catalog.objects.get(key)
        if entry is None:
            self._error(404, "NoSuchKey")
            return
        path, size, etag, crc = entry
        match = self.headers.get("If-Match")
        if match and match.strip('"') != etag:
            self._error(412, "PreconditionFailed")
            return
        start, end, status = 0, size, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first)
            end = min(size, int(last) + 1) if last else size
            status = 206
        self.send_response(status)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Last-Modified", self.server.catalog.mtime)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        elif self.server.checksums and self.headers.get("x-amz-checksum-mode") == "ENABLED":
            self.send_header("x-amz-checksum-crc64nvme", crc)
            self.send_header("x-amz-checksum-type", "FULL_OBJECT")
        self.end_headers()
        if self.command == "HEAD":
            return
        self.wfile.flush()
        with open(path, "rb") as fh:
            offset, left = start, end - start
            while left > 0:
                sent = os.sendfile(self.connection.fileno(), fh.fileno(), offset, left)
                if sent == 0:
                    break
                offset += sent
                left -= sent


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int, catalog: Catalog, bucket: str, checksums: bool) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.catalog = catalog
        self.bucket = bucket
        self.checksums = checksums


def serve(root: Path, bucket: str, port: int = 0, part_mb: int = 8,
          checksums: bool = True) -> tuple[Server, threading.Thread]:
    """Start the server on a thread; returns it (``server.server_address[1]`` is the port)."""
    srv = Server(port, Catalog(root, part_mb * MiB), bucket, checksums)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    return srv, thread


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--bucket", default="laion-fmri")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--part-mb", type=int, default=8)
    ap.add_argument("--checksums", action="store_true")
    a = ap.parse_args()
    srv = Server(a.port, Catalog(a.root, a.part_mb * MiB), a.bucket, a.checksums)
    print(f"READY http://127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
