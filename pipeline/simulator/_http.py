"""The local CWS server's HTTP layer: keep-alive connections, each answer sent whole in one write.

A keep-alive `BaseHTTPRequestHandler` that writes headers and body in separate sends stalls ~40 ms
per request on Linux (Nagle's algorithm waiting for a delayed ACK), so every answer here is built
as one byte string and Nagle is off. What to answer is decided by an `Application`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from ..protocol import Algorithm

__all__ = ["MAX_BODY_BYTES", "Answer", "Application", "HTTPServer", "error_payload"]

MAX_BODY_BYTES = 1 << 20


def error_payload(message: str, fields: Mapping[str, str] | None = None) -> dict[str, object]:
    """The JSON error shape every refusal uses: `{"error": ..., "fields": {...}}`."""
    return {"error": message, "fields": dict(fields or {})}


@dataclass(frozen=True)
class Answer:
    """A JSON answer to send, the algorithm to sign it with (None: the server's default), and any signature fault."""

    status: int
    payload: object
    headers: tuple[tuple[str, str], ...] = ()
    signature_fault: str | None = None
    algorithm: Algorithm | None = None


class Application(Protocol):
    """What the HTTP layer asks of the server behind it."""

    access_log: bool

    def respond(self, method: str, path: str, body: bytes, authorization: str | None) -> Answer | None:
        """The answer to a request, or None to close the connection without answering."""
        ...

    def authorization_for(self, body: bytes, answer: Answer) -> str | None:
        """The Authorization header value for these exact response bytes of ANSWER (None: send none)."""
        ...


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection."""

    server: HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "cws-simulator"
    sys_version = ""
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        """Silence the stdlib log: it would print every request line to stderr."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer errors the stdlib detects (bad request line, unknown method) as signed JSON, then close."""
        status = HTTPStatus.METHOD_NOT_ALLOWED if code == HTTPStatus.NOT_IMPLEMENTED else HTTPStatus(code)
        self.close_connection = True
        self._send(Answer(status, error_payload(message or status.phrase)))

    def _handle(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = self.path.split("?", 1)[0]
        answer = self.server.app.respond(self.command, path, body, self.headers.get("Authorization"))
        if answer is None:
            self.close_connection = True
            return
        self._send(answer)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length; chunked bodies are not accepted")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if length < 0:
                raise ValueError
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
            return None
        if length > MAX_BODY_BYTES:
            self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
            return None
        return body

    def _send(self, answer: Answer) -> None:
        app = self.server.app
        status = HTTPStatus(answer.status)
        body = json.dumps(answer.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = [
            ("Server", self.server_version),
            ("Date", self.date_time_string()),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ]
        authorization = app.authorization_for(body, answer)
        if authorization is not None:
            headers.append(("Authorization", authorization))
        headers.extend(answer.headers)
        if self.close_connection:
            headers.append(("Connection", "close"))
        head = f"HTTP/1.1 {status.value} {status.phrase}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        try:
            self.wfile.write(head.encode("latin-1") + b"\r\n" + body)
        except OSError:
            self.close_connection = True
        if app.access_log:  # method, path and status only: bodies hold names and birth dates
            print(f"{getattr(self, 'command', '-')} {self.path.split('?', 1)[0]} {status.value}", file=sys.stderr)


class HTTPServer(ThreadingHTTPServer):
    """A thread per connection; can wake its idle keep-alive connections so stopping does not hang."""

    daemon_threads = True
    block_on_close = True  # server_close() joins the handler threads (daemon or not, on 3.11+)

    def __init__(self, address: tuple[str, int], app: Application, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection, so each handler thread reads end-of-stream and finishes."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away mid-answer
            return
        print(f"cws simulator: {type(exc).__name__} while answering a request: {exc}", file=sys.stderr)
