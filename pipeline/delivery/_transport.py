"""The transport: the one HTTP path to CorEMR (a deadline, a size limit) and a signed request's verified answer."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import math
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpcore
import httpx

from .._errors import ConfigError
from .._logging import logger
from .._masking import reason_text
from .._version import __version__
from ..protocol import RAW_BODY, CWSAuth, Verification

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "Answer",
    "CWSNetworkBackend",
    "CWSTransport",
    "Exchange",
    "Landed",
    "NoAnswer",
    "Transport",
    "parse_retry_after",
    "send_signed",
    "tls_context",
    "within",
]


# -- transport ------------------------------------------------------------------------------------

Landed = Literal["no", "maybe", "yes"]

_log = logger(__name__)

DEFAULT_MAX_ANSWER_BYTES = 1 << 20  # a patient or an error is a few kB; a 100 MB answer is not CorEMR's
_KEEPALIVE_SECONDS = 5.0  # httpx's default: close idle connections before a server's idle timeout does
_MAX_TARGETS = 256
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR, LF and other controls in a header; a tab is allowed
# Failures before any byte of the request could have been read by the server.
_NOT_SENT = (
    httpcore.ConnectError,
    httpcore.ConnectTimeout,
    httpcore.PoolTimeout,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    httpcore.LocalProtocolError,
)
_FAILURES = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError, httpcore.UnsupportedProtocol)
_OWNED = frozenset({b"accept-encoding", b"user-agent"})  # set by the transport, whatever the client says


class NoAnswer(httpx.TransportError):
    """No usable answer came back; `landed` says whether the request may have reached the server.

    "no": nothing left (connection refused, TLS refused, pool closed): safe to send again.
    "maybe": the request may have been processed (lost connection, deadline, unreadable or
    oversized answer): a create must be settled by a lookup before it is sent again.
    """

    def __init__(self, message: str, *, landed: Landed, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)
        self.landed: Landed = landed


@dataclass(frozen=True)
class Answer:
    """A complete answer: its status, its header fields and its body bytes exactly as received."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        """One header's value (repeated fields joined with ', '), or None when absent."""
        wanted = name.lower().encode("ascii")
        values = [v.decode("latin-1") for k, v in self.headers if k.lower() == wanted]
        return ", ".join(values) if values else None

    @cached_property
    def retry_after(self) -> float | None:
        """Seconds the answer's Retry-After asks to wait (delta-seconds or HTTP date); None when absent or unusable."""
        return parse_retry_after(self.header("Retry-After"))


class Transport(Protocol):
    """What the engine needs of a transport: one request out, one whole answer back, or NoAnswer.

    CWSTransport is the one used for real; engine tests hand in a fake one (no sockets).
    """

    def send(self, method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Answer:
        """Send BODY's exact bytes and return the whole answer; raise NoAnswer when none usable came back."""
        ...


_Origin = tuple[str, str, int]
_Pool = httpcore.ConnectionPool | httpcore.HTTPProxy


@dataclass(frozen=True)
class _ParsedURL:
    """A parsed URL: its origin (scheme, host, port), its httpcore URL and its Host value."""

    origin: _Origin
    url: httpcore.URL
    host: bytes


@dataclass(frozen=True)
class _ThreadPool:
    """A pool owned by one thread, so it can be closed when that thread is gone."""

    thread: threading.Thread
    origin: _Origin
    pool: _Pool


def tls_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """A verifying TLS context: httpx's default trust store (certifi, SSL_CERT_FILE), or only CA_BUNDLE.

    Raises ValueError saying why a bundle cannot be used (missing, unreadable, not PEM certificates).
    """
    if ca_bundle is None:
        return httpx.create_ssl_context()
    if not ca_bundle.is_file():
        raise ValueError(f"{ca_bundle}: no such CA bundle file")
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except ssl.SSLError as exc:
        raise ValueError(f"{ca_bundle}: not a PEM bundle of CA certificates ({exc.reason or exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{ca_bundle}: cannot read the CA bundle ({exc})") from None


class CWSTransport(httpx.BaseTransport):
    """HTTP/1.1 over keep-alive connections with the guarantees CWS needs; safe to use from many threads.

    Its `timeout` is each request's overall deadline, whatever timeout an httpx client passes along.
    Each thread sends through a small httpcore pool of its own (at most `max_connections` connections,
    kept alive): a thread sends one request at a time, and one pool shared by 32 threads spent more CPU
    scanning its connections than sending (measured: +0.8 ms per request at 32 threads, O(n^2) in them).

    The engine, a run through a proxy and library users of CWSAuth (`httpx.Client(transport=CWSTransport(...),
    auth=CWSAuth(...))`) all send through it. What it guarantees:

    - the body bytes given are the bytes sent, never re-encoded; `Accept-Encoding: identity` is asked
      for, and the answer's bytes are kept exactly as received (`RAW_BODY` in a response's extensions),
      so a signature is checked over what came off the wire, never over a decompressed copy;
    - no redirect is followed: a 3xx is an answer like any other;
    - TLS is always verified, against httpx's default trust store or the configured `ca_bundle`;
    - HTTP(S)_PROXY, ALL_PROXY and NO_PROXY are read from the environment once, when it is made;
    - every request has one overall deadline (`timeout`, from connecting to the answer's last byte) and
      every answer a size limit (`max_answer_bytes`);
    - an idle keep-alive connection the server has closed is never used to send (httpcore checks it);
    - every failure is one error, `NoAnswer`, whose `landed` says whether the request may have reached
      the server ("maybe") or certainly did not ("no").

    Measured on a 2-core machine, httpcore's pool called directly costs about half of `httpx.Client`'s CPU per
    request; every row pays it, so the engine calls `send` and library users go through httpx.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        ca_bundle: Path | None = None,
        max_connections: int = 8,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        user_agent: str = f"cws-pipeline/{__version__}",
    ) -> None:
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        # A bundle is checked now (its errors belong to set-up); the default store is read only for https.
        self._context: ssl.SSLContext | None = tls_context(ca_bundle) if ca_bundle is not None else None
        self._max_connections = max_connections
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._backend = CWSNetworkBackend()
        self._proxies = urllib.request.getproxies_environment()  # read once: the run's proxy cannot change
        self._fixed = [(b"Accept", b"*/*"), (b"Accept-Encoding", b"identity"), (b"User-Agent", user_agent.encode())]
        self._local = threading.local()  # this thread's pools, by origin
        self._pools: list[_ThreadPool] = []  # every thread's, to close them
        self._targets: dict[str, _ParsedURL] = {}
        self._lock = threading.Lock()
        self._closed = False

    def send(self, method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Answer:
        """Send BODY's exact bytes and read the whole answer; raise NoAnswer when none usable came back."""
        target = self._target(url)
        given = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
        _refuse_unsafe(given)  # the transport's own fields are known to be safe
        fields = [(b"Host", target.host), *self._fixed, *given]
        if body or method in ("POST", "PUT", "PATCH"):
            fields += [(b"Content-Type", b"application/json"), (b"Content-Length", b"%d" % len(body))]
        request = httpcore.Request(method, target.url, headers=fields, content=body)
        return self._exchange(self._pool(target.origin), request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """httpx's transport interface: the same exchange, answered with a response whose bytes are as received."""
        body = request.read()
        fields = [(k, v) for k, v in request.headers.raw if k.lower() not in _OWNED]
        fields += self._fixed[1:]
        if body and b"content-type" not in {k.lower() for k, _ in fields}:
            fields.append((b"Content-Type", b"application/json"))
        _refuse_unsafe(fields)
        url = request.url
        pool = self._pool((url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)))
        core = httpcore.Request(
            request.method,
            httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=fields,
            content=body,
        )
        try:
            answer = self._exchange(pool, core)
        except NoAnswer as exc:
            raise NoAnswer(str(exc), landed=exc.landed, request=request) from exc.__cause__
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=httpx.ByteStream(answer.body),
            extensions={RAW_BODY: answer.body},
            request=request,
        )

    def close(self) -> None:
        """Close every connection; later requests are refused (landed "no")."""
        with self._lock:
            self._closed = True
            pools, self._pools, self._targets = self._pools, [], {}
        for owned in pools:
            owned.pool.close()

    def __enter__(self) -> CWSTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.close()

    def _exchange(self, pool: _Pool, request: httpcore.Request) -> Answer:
        started = time.perf_counter()
        try:
            answer = self._answer(pool, request)
        except NoAnswer as exc:
            _logged(request, started, None, str(exc))
            raise
        _logged(request, started, answer.status)
        return answer

    def _answer(self, pool: _Pool, request: httpcore.Request) -> Answer:
        request.extensions = {"timeout": self._timeouts}
        try:
            with within(self.timeout):
                response = pool.handle_request(request)
                try:
                    body = self._read(response)
                finally:
                    response.close()
        except httpcore.TimeoutException as exc:
            landed: Landed = "no" if isinstance(exc, _NOT_SENT) else "maybe"
            message = f"{type(exc).__name__}: not done within the timeout of {self.timeout:g} s"
            raise NoAnswer(message, landed=landed) from exc
        except httpcore.ConnectionNotAvailable as exc:  # the pool was closed under us
            raise NoAnswer("ConnectError: the connection pool is closed", landed="no") from exc
        except _FAILURES as exc:
            raise NoAnswer(_describe(exc), landed="no" if isinstance(exc, _NOT_SENT) else "maybe") from exc
        return Answer(response.status, response.headers, body)

    def _read(self, response: httpcore.Response) -> bytes:
        """The answer's body, refused (landed "maybe") once it grows past max_answer_bytes."""
        limit = self.max_answer_bytes
        declared = next((v for k, v in response.headers if k.lower() == b"content-length"), None)
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise _TooLarge(f"AnswerTooLarge: an answer of {int(declared)} bytes; max_answer_bytes is {limit}")
        parts: list[bytes] = []
        size = 0
        assert isinstance(response.stream, Iterable)
        for part in response.stream:
            size += len(part)
            if size > limit:
                raise _TooLarge(f"AnswerTooLarge: an answer of more than {limit} bytes (max_answer_bytes)")
            parts.append(part)
        return b"".join(parts)

    def _target(self, url: str) -> _ParsedURL:
        found = self._targets.get(url)
        if found is not None:
            return found
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        default = port == (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = _ParsedURL(
            (parts.scheme, parts.hostname, port),
            httpcore.URL(scheme=parts.scheme, host=parts.hostname, port=port, target=path),
            (host if default else f"{host}:{port}").encode("idna" if not host.isascii() else "ascii"),
        )
        with self._lock:
            if len(self._targets) >= _MAX_TARGETS:  # lookups name one patient each: keep the cache small
                self._targets.clear()
            self._targets[url] = target
        return target

    def _pool(self, origin: _Origin) -> _Pool:
        """This thread's pool for ORIGIN, made on first use (pools of threads that have ended are closed then)."""
        mine: dict[_Origin, _Pool] | None = getattr(self._local, "pools", None)
        if mine is None:
            mine = self._local.pools = {}
        pool = mine.get(origin)
        if pool is not None and not self._closed:
            return pool
        with self._lock:
            if self._closed:
                raise NoAnswer("ConnectError: the transport is closed", landed="no")
            ended = [owned for owned in self._pools if not owned.thread.is_alive()]
            self._pools = [owned for owned in self._pools if owned.thread.is_alive()]
            pool = mine[origin] = self._new_pool(origin)
            self._pools.append(_ThreadPool(threading.current_thread(), origin, pool))
        for owned in ended:
            owned.pool.close()
        return pool

    def proxy_for(self, url: str) -> httpx.Proxy | None:
        """The proxy from the environment that requests to URL go through, or None (ConfigError if unusable)."""
        parts = urlsplit(url)
        return self._proxy(parts.scheme, parts.hostname or "")

    def _proxy(self, scheme: str, host: str) -> httpx.Proxy | None:
        proxy_url = self._proxies.get(scheme) or self._proxies.get("all")
        # NO_PROXY as urllib reads it, from the variables read when the transport was made (typeshed lacks it).
        if not proxy_url or urllib.request.proxy_bypass_environment(host, self._proxies):  # type: ignore[attr-defined]
            return None
        try:
            proxy = httpx.Proxy(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
        except (ValueError, httpx.InvalidURL):
            proxy = None
        if proxy is None or proxy.url.scheme not in ("http", "https"):
            raise ConfigError(
                f"the proxy for {scheme}:// in the environment (HTTP_PROXY, HTTPS_PROXY or ALL_PROXY) is not an"
                f" http or https proxy URL; fix it, or set NO_PROXY={host} to reach CorEMR directly"
            )
        return proxy

    def _new_pool(self, origin: _Origin) -> _Pool:
        scheme, host, _ = origin
        proxy = self._proxy(scheme, host)
        if self._context is None and (scheme == "https" or (proxy is not None and proxy.url.scheme == "https")):
            self._context = tls_context()
        if proxy is None:
            return httpcore.ConnectionPool(
                ssl_context=self._context,
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
                keepalive_expiry=_KEEPALIVE_SECONDS,
                network_backend=self._backend,
            )
        return httpcore.HTTPProxy(
            proxy_url=httpcore.URL(
                scheme=proxy.url.raw_scheme, host=proxy.url.raw_host, port=proxy.url.port, target=proxy.url.raw_path
            ),
            proxy_auth=proxy.raw_auth,
            ssl_context=self._context,
            max_connections=self._max_connections,
            max_keepalive_connections=self._max_connections,
            keepalive_expiry=_KEEPALIVE_SECONDS,
            network_backend=self._backend,
        )


class _TooLarge(httpcore.ProtocolError):
    """An answer larger than max_answer_bytes: read no further."""


def _refuse_unsafe(fields: list[tuple[bytes, bytes]]) -> None:
    for name, value in fields:
        if _UNSAFE.search(value.decode("latin-1")) or _UNSAFE.search(name.decode("latin-1")):
            raise ValueError(f"header {name.decode('latin-1')!r} holds a control character")  # header injection


def _logged(request: httpcore.Request, started: float, status: int | None, error: str | None = None) -> None:
    """Log a request at DEBUG: method, path (no query, never a body), status or why none came, and its time."""
    if not _log.isEnabledFor(logging.DEBUG):
        return
    ms = round((time.perf_counter() - started) * 1000, 1)
    method, path = request.method.decode("ascii"), request.url.target.split(b"?", 1)[0].decode("ascii", "replace")
    what = f"HTTP {status}" if status is not None else f"no answer ({reason_text(error or '')})"
    _log.debug("%s %s: %s in %.1f ms", method, path, what, ms,
               extra={"method": method, "path": path, "status": status, "ms": ms})  # fmt: skip


def _describe(exc: Exception) -> str:
    """An httpx-style error name and message: ConnectError: ..., RemoteProtocolError: ..., AnswerTooLarge: ..."""
    if isinstance(exc, _TooLarge):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent or unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


# -- network --------------------------------------------------------------------------------------

_local = threading.local()
_HOLD_AT_MOST = 1 << 20  # a larger request is written as it comes


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Give every socket operation of this thread's request at most what is left of SECONDS from now."""
    _local.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.deadline = None


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """The smaller of an operation's own timeout and what is left of the deadline; raise once it has passed."""
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's overall deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the deadline, and whose writes leave when it is read."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        self._held = bytearray()
        self._write_timeout: float | None = None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._flush()
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._held += buffer
        self._write_timeout = timeout
        if len(self._held) >= _HOLD_AT_MOST:
            self._flush()

    def _flush(self) -> None:
        if self._held:
            data, self._held = bytes(self._held), bytearray()
            self._stream.write(data, _bounded(self._write_timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._held.clear()
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        self._flush()  # a proxy's CONNECT, before the handshake
        wrapped = self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _Stream(wrapped)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)  # "is_readable" included: how a stale keep-alive is found


class CWSNetworkBackend(httpcore.NetworkBackend):
    """httpcore's sync network backend: every operation bounded by the thread's deadline, requests sent whole.

    httpcore's timeouts bound each read and write; a server that sends one byte a second never trips them. This
    network backend wraps httpcore's own sync backend and gives each connect, TLS handshake, read and write at
    most the time remaining until the deadline the calling thread set (`within`), so a request ends by its
    deadline whatever the server does. Sync httpcore runs a request (connecting included) in the thread that
    sends it, so a thread-local deadline is the request's own.

    h11 writes a request's head and body separately; each write is a system call that wakes the server. Writes
    are held until the stream is next read (an HTTP/1.1 client always reads after sending), so a request leaves
    in one `send`: measured on loopback, about 70 µs of CPU per request.
    """

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# -- a signed request -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """A request and what came back (or the error), as the ledger records it."""

    method: str
    url: str
    request_body: bytes
    request_authorization: str | None
    landed: Landed  # "yes": a response came back; "maybe": lost after sending; "no": never left
    status: int | None = None
    response_body: bytes | None = None
    response_authorization: str | None = None
    verification: Verification | None = None
    retry_after: float | None = None
    error: str | None = None
    elapsed_ms: float = 0.0  # signing, sending, receiving and verifying (not waiting for a place to send)
    round_trip_ms: float = 0.0  # from handing the request to the transport to the answer's last byte
    date: str | None = None  # the answer's Date header (`check` compares clocks)

    @property
    def verified(self) -> bool:
        """True when a response came back with a good CorEMR signature."""
        return self.verification is not None and self.verification.ok

    def describe(self) -> str:
        """What happened, in a few words: 'HTTP 503', 'not sent: ConnectError: ...', 'HTTP 201 with bad signature'."""
        if self.landed == "no":
            return f"not sent: {self.error}"
        if self.landed == "maybe":
            return f"no answer after sending: {self.error}"
        if not self.verified:
            why = self.verification.reason if self.verification is not None else "no verification"
            return f"HTTP {self.status} with {why}"
        return f"HTTP {self.status}"


def _at_once(send: Callable[[], Answer]) -> Answer:
    return send()


def send_signed(
    transport: Transport,
    auth: CWSAuth,
    method: str,
    url: str,
    body: bytes = b"",
    in_place: Callable[[Callable[[], Answer]], Answer] = _at_once,
) -> Exchange:
    """Sign the exact bytes, send them, verify what comes back over its bytes as received; never raises NoAnswer.

    Only the sending happens inside IN_PLACE (the run's concurrency limiter, which may raise to stop it
    leaving): the signature is made before the request takes its place
    among those in flight, and the answer verified after it has left it, so a place counts what
    CorEMR is working on and not our own CPU.
    """
    started = time.perf_counter()
    authorization = auth.authorization_for(body)
    signed = time.perf_counter()
    round_trip = 0.0

    def send() -> Answer:
        nonlocal round_trip
        sent = time.perf_counter()
        try:
            return transport.send(method, url, body, {"Authorization": authorization})
        finally:
            round_trip = time.perf_counter() - sent

    try:
        answer = in_place(send)
    except NoAnswer as exc:
        return Exchange(method, url, body, authorization, exc.landed, error=str(exc),
                        elapsed_ms=(signed - started + round_trip) * 1000, round_trip_ms=round_trip * 1000)  # fmt: skip
    answered = time.perf_counter()
    response_authorization = answer.header("Authorization")
    verification = auth.verify(answer.body, response_authorization)
    return Exchange(
        method,
        url,
        body,
        authorization,
        "yes",
        status=answer.status,
        response_body=answer.body,
        response_authorization=response_authorization,
        verification=verification,
        retry_after=answer.retry_after,
        date=answer.header("Date"),
        elapsed_ms=(signed - started + round_trip + time.perf_counter() - answered) * 1000,
        round_trip_ms=round_trip * 1000,
    )
