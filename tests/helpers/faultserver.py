"""Small local servers that misbehave on purpose, for the failure cases a real registry will
not produce on demand: one that answers every request with an error status, one that
accepts connections and never answers, and a proxy in front of a real registry that records
requests and can cut or corrupt blob downloads. All listen on 127.0.0.1 only."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving `handler` in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class ErrorServer(_Server):
    """Answers every request with `status` and a distribution API error body (or `body`,
    served as `content_type`)."""

    def __init__(self, status: int = 500, code: str = "UNKNOWN", message: str = "boom", *,
                 body: bytes | None = None, content_type: str = "application/json"):
        if body is None:
            body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _answer

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)


class HangingServer:
    """Accepts connections and never answers (until stopped)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.host = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._conns: list[socket.socket] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)

    def stop(self) -> None:
        self._stopped.set()
        self._sock.close()
        for c in self._conns:
            c.close()


class Proxy(_Server):
    """Forwards everything to `upstream` (a registry's host:port), recording (method, path,
    headers) in `requests`. `cut[digest] = n`: the next GET of that blob sends its headers
    and only n bytes, then drops the connection. `corrupt`: digests whose blob or manifest
    bodies arrive with one byte changed. `ignore_range`: digests whose GETs drop the Range
    header (the whole blob comes back with 200, as from a server without range support).
    `throttle[digest] = s`: that blob's body is sent 64 KiB at a time, `s` seconds apart."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.cut: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.ignore_range: set[str] = set()
        self.throttle: dict[str, float] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                proxy._forward(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)

    def _forward(self, h: BaseHTTPRequestHandler) -> None:
        headers = {k: v for k, v in h.headers.items()}
        self.requests.append((h.command, h.path, headers))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        digest = h.path.rsplit("/", 1)[-1]
        if digest in self.ignore_range:
            headers = {k: v for k, v in headers.items() if k.lower() != "range"}
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        conn.request(h.command, h.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if data and digest in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        cut = self.cut.pop(digest, None) if h.command == "GET" else None
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(k, v)
        h.send_header("Content-Length", resp.getheader("Content-Length") or str(len(data)))
        h.end_headers()
        if h.command == "HEAD":
            return
        if cut is not None:
            h.wfile.write(data[:cut])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        pause = self.throttle.get(digest) if h.command == "GET" else None
        if pause is None:
            h.wfile.write(data)
            return
        for i in range(0, len(data), 64 << 10):
            h.wfile.write(data[i:i + (64 << 10)])
            h.wfile.flush()
            time.sleep(pause)
