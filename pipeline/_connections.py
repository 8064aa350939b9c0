"""Keep-alive HTTP/1.1 connections to one CWS origin, for the delivery engine's workers.

The engine's hot path: `http.client` costs a fraction of httpx's CPU per request, and every row
pays it. What it keeps from the httpx client it replaces: TLS verified against the same CA bundle
(httpx's default context, or the configured `ca_bundle`), no redirects (http.client never follows
one), the exact body bytes sent as one write, no transparent decompression, one timeout per socket
operation, and a stale keep-alive connection replaced before it is used. `CWSAuth` stays the httpx
integration; this module does no signing of its own.
"""

from __future__ import annotations

import http.client
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
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._origin = (self.scheme, self.host, self.port)
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        if self.scheme == "https":
            # The same trust as the httpx client: its default context (certifi, SSL_CERT_FILE), or the bundle.
            self._context = (
                ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else httpx.create_ssl_context()
            )
        self._idle: list[http.client.HTTPConnection] = []
        self._open: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()
        self._closed = False

    def request(self, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        """Send one request and read the whole answer; raise NotSent or SentButLost on network trouble."""
        target = self._target(url)
        conn = self._checkout()
        try:
            try:
                conn.request(method, target, body if body else None, dict(headers))
            except (OSError, http.client.HTTPException) as exc:
                raise SentButLost(_describe(exc, "Write")) from exc
            try:
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise SentButLost(_describe(exc, "Read")) from exc
        except BaseException:
            self._discard(conn)
            raise
        answer = RawResponse(
            response.status, response.getheader("Authorization"), response.getheader("Retry-After"), data
        )
        self._checkin(conn)  # http.client has already dropped the socket if the server said Connection: close
        return answer

    def close(self) -> None:
        """Close every connection; later requests are refused."""
        with self._lock:
            self._closed = True
            connections, self._open, self._idle = list(self._open), set(), []
        for conn in connections:
            conn.close()

    def __enter__(self) -> CWSConnections:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _target(self, url: str) -> str:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        if origin != self._origin:  # signed requests go to the configured CorEMR only
            raise ValueError(f"{url!r} is not on {self.scheme}://{self.host}:{self.port}")
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def _checkout(self) -> http.client.HTTPConnection:
        """An idle connection still open at the other end, or a newly made one (NotSent if that fails)."""
        with self._lock:
            if self._closed:
                raise NotSent("ConnectError: the connection pool is closed")
            while self._idle:
                conn = self._idle.pop()
                if conn.sock is not None and not _readable(conn.sock):
                    return conn
                conn.close()  # the server closed it (or sent something unasked): do not send on it
                self._open.discard(conn)
            conn = self._new_connection()
            self._open.add(conn)
        try:
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, http.client.HTTPException) as exc:
            self._discard(conn)
            raise NotSent(_describe(exc, "Connect")) from exc
        return conn

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._context)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if conn.sock is not None and not self._closed:
                self._idle.append(conn)
                return
            self._open.discard(conn)
        conn.close()

    def _discard(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(conn)
        conn.close()


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
