"""Keep-alive HTTP/1.1 connections to one CWS origin, for the delivery engine's workers.

The engine's hot path: a request written as one `sendall` and read with `http.client.HTTPResponse`
costs a fraction of httpx's CPU per request, and every row pays it. What it keeps from the httpx
client it replaces: TLS verified against the same CA bundle (httpx's default context, or the
configured `ca_bundle`) with the host name checked, no redirects (a 3xx is an answer like any
other), the exact body bytes sent, no transparent decompression, one timeout per socket operation,
and a stale keep-alive connection replaced before it is used. `CWSAuth` stays the httpx
integration; this module does no signing of its own.
"""

from __future__ import annotations

import http.client
import re
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import httpx

__all__ = ["CWSConnections", "NotSent", "RawResponse", "SentButLost"]

_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_RECV_BYTES = 65536
_MAX_HEAD_BYTES = 65536
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR, LF and other controls; a tab is allowed


class NotSent(Exception):
    """No byte of the request left: the connection could not be made (safe to send again)."""


class SentButLost(Exception):
    """The request may have left, but no complete answer came back (it may have landed)."""


@dataclass(frozen=True)
class RawResponse:
    """A complete answer: status, the two headers CWS delivery reads, and the exact body bytes."""

    status: int
    authorization: str | None
    retry_after: str | None
    body: bytes


class CWSConnections:
    """A pool of keep-alive connections to BASE_URL's origin; `request` is safe to call from many threads."""

    def __init__(self, base_url: str, *, timeout: float, ca_bundle: Path | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        default_port = 443 if parts.scheme == "https" else 80
        self.port = parts.port or default_port
        self._origin = (self.scheme, self.host, self.port)
        name = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = name if self.port == default_port else f"{name}:{self.port}"
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        if self.scheme == "https":
            # The same trust as the httpx client: its default context (certifi, SSL_CERT_FILE), or the bundle.
            self._context = (
                ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else httpx.create_ssl_context()
            )
        self._idle: list[socket.socket] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False

    def request(self, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        """Send one request and read the whole answer; raise NotSent or SentButLost on network trouble."""
        message = self._message(method, url, body, headers)
        sock = self._checkout()
        try:
            try:
                sock.sendall(message)  # request line, headers and body in one write
            except OSError as exc:
                raise SentButLost(_describe(exc, "Write")) from exc
            try:
                answer, keep_alive = _read_response(sock, method)
            except (OSError, http.client.HTTPException) as exc:
                raise SentButLost(_describe(exc, "Read")) from exc
        except BaseException:
            self._discard(sock)
            raise
        if keep_alive:
            self._checkin(sock)
        else:  # the server said Connection: close, spoke HTTP/1.0, or ended the body by closing
            self._discard(sock)
        return answer

    def close(self) -> None:
        """Close every connection; later requests are refused."""
        with self._lock:
            self._closed = True
            connections, self._open, self._idle = list(self._open), set(), []
        for sock in connections:
            sock.close()

    def __enter__(self) -> CWSConnections:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _message(self, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        if origin != self._origin:  # signed requests go to the configured CorEMR only
            raise ValueError(f"{url!r} is not on {self.scheme}://{self.host}:{self.port}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        if any(_UNSAFE.search(line) for line in lines):
            raise ValueError("a request line or header holds a control character")  # header injection
        return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body

    def _checkout(self) -> socket.socket:
        """An idle connection still open at the other end, or a newly made one (NotSent if that fails)."""
        with self._lock:
            if self._closed:
                raise NotSent("ConnectError: the connection pool is closed")
            while self._idle:
                sock = self._idle.pop()
                if not _readable(sock):
                    return sock
                sock.close()  # the server closed it (or sent something unasked): do not send on it
                self._open.discard(sock)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise NotSent(_describe(exc, "Connect")) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except OSError as exc:  # includes ssl.SSLError: a certificate that does not verify
            sock.close()
            raise NotSent(_describe(exc, "Connect")) from exc
        with self._lock:
            self._open.add(sock)
        return sock

    def _checkin(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(sock)
                return
            self._open.discard(sock)
        sock.close()

    def _discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        sock.close()


class _Reader:
    """Reads one answer from a socket through a buffer: a head up to its blank line, then body bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.buffer = bytearray()

    def _fill(self) -> bool:
        data = self._sock.recv(_RECV_BYTES)
        self.buffer += data
        return bool(data)

    def until(self, separator: bytes, limit: int) -> bytes:
        """Bytes up to and including SEPARATOR; raise if the peer closes first or sends more than LIMIT."""
        start = 0
        while (end := self.buffer.find(separator, start)) < 0:
            if len(self.buffer) > limit:
                raise http.client.LineTooLong(f"more than {limit} bytes before {separator!r}")
            start = max(0, len(self.buffer) - len(separator) + 1)
            if not self._fill():
                if not self.buffer:
                    raise http.client.RemoteDisconnected("Server disconnected without sending a response.")
                raise http.client.IncompleteRead(bytes(self.buffer))
        end += len(separator)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    def exactly(self, n: int) -> bytes:
        """Exactly N bytes; raise IncompleteRead if the peer closes first."""
        while len(self.buffer) < n:
            if not self._fill():
                raise http.client.IncompleteRead(bytes(self.buffer), n - len(self.buffer))
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def rest(self) -> bytes:
        """Everything until the peer closes the connection."""
        while self._fill():
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _read_response(sock: socket.socket, method: str) -> tuple[RawResponse, bool]:
    """Read one HTTP/1.x answer (Content-Length, chunked or close-delimited); also say if the socket can be reused."""
    reader = _Reader(sock)
    while True:
        lines = reader.until(b"\r\n\r\n", _MAX_HEAD_BYTES)[:-4].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise http.client.BadStatusLine(lines[0])
        status = int(code)
        if not 100 <= status < 200 or status == 101:
            break  # a final answer; 1xx ones (100 Continue, 103 Early Hints) come before it
    headers: dict[str, list[str]] = {}
    last: list[str] | None = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last is not None:  # obsolete line folding: part of the previous value
            last[-1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise http.client.HTTPException(f"malformed header line {line[:80]!r}")
        last = headers.setdefault(name.lower(), [])
        last.append(value.strip())
    connection = ",".join(headers.get("connection", ())).lower()
    keep_alive = version == "HTTP/1.1" and "close" not in connection
    transfer = ",".join(headers.get("transfer-encoding", ())).lower()
    lengths = set(headers.get("content-length", ()))
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif transfer:
        if transfer.rsplit(",", 1)[-1].strip() != "chunked":
            raise http.client.HTTPException(f"unsupported Transfer-Encoding {transfer!r}")
        body = _read_chunked(reader)
    elif lengths:
        if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
            raise http.client.HTTPException(f"invalid Content-Length {sorted(lengths)!r}")
        body = reader.exactly(int(length))
    else:
        body = reader.rest()
        keep_alive = False
    if reader.buffer:  # bytes after the answer: the connection is out of step, do not reuse it
        keep_alive = False

    def one(name: str) -> str | None:
        values = headers.get(name)
        return ", ".join(values) if values else None

    return RawResponse(status, one("authorization"), one("retry-after"), body), keep_alive


def _read_chunked(reader: _Reader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = reader.until(b"\r\n", _MAX_HEAD_BYTES)
        size_text = line.split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            raise http.client.HTTPException(f"invalid chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            while reader.until(b"\r\n", _MAX_HEAD_BYTES) != b"\r\n":  # trailer fields, then a blank line
                pass
            return b"".join(parts)
        parts.append(reader.exactly(size))
        if reader.exactly(2) != b"\r\n":
            raise http.client.HTTPException("chunk not followed by CRLF")


def _readable(sock: socket.socket) -> bool:
    """True when an idle keep-alive socket has something to read: the server closed it (or misbehaves)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


def _describe(exc: BaseException, phase: str) -> str:
    """An httpx-style error name for the ledger: ConnectError, ReadTimeout, RemoteProtocolError, ..."""
    if isinstance(exc, TimeoutError):
        kind = f"{phase}Timeout"
    elif isinstance(exc, http.client.HTTPException):  # RemoteDisconnected, BadStatusLine, IncompleteRead
        kind = "RemoteProtocolError"
    else:
        kind = f"{phase}Error"
    text = str(exc)
    return f"{kind}: {text}" if text else kind
