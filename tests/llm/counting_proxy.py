"""A counting HTTP proxy on 127.0.0.1: model requests are counted where they arrive.

The tests put it in front of the real model server and point the agent's ``base_url`` at it,
so "zero repeated requests" is measured outside the process under test (which is SIGKILLed).
Each request is forwarded as it is; its response is read whole and sent back.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class CountingProxy:
    """Forward to ``upstream`` (an OpenAI base URL); count chat-completion requests."""

    def __init__(self, upstream: str) -> None:
        """Start serving on a free port of 127.0.0.1 (in a daemon thread)."""
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self.chat_requests = 0
        self.bodies: list[bytes] = []
        #: The ``Authorization`` header of each chat request (what the client really sent).
        self.authorizations: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:
                proxy._forward(self, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                proxy._forward(self, self.rfile.read(length))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host!s}:{port}{self._prefix}"

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if handler.command == "POST" and handler.path.endswith("/chat/completions"):
            with self._lock:
                self.chat_requests += 1
                self.bodies.append(body)
                self.authorizations.append(handler.headers.get("Authorization") or "")
        conn = http.client.HTTPConnection(self._host, self._port, timeout=120)
        try:
            headers = {
                k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")
            }
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        handler.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
