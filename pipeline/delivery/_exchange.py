"""One signed HTTP exchange with CWS, and what it tells us: verified, unverified, or whether it may have landed."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx

from ..protocol import CWSAuth, Verification, verification_of
from ._connections import CWSConnections, NotSent, SentButLost

__all__ = ["Exchange", "Reached", "SignedConnections", "exchange", "parse_retry_after"]

Reached = Literal["no", "maybe", "yes"]

# Failures before any byte of the request could have been processed: safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class Exchange:
    """A request and what came back (or the error), as the ledger records it."""

    method: str
    url: str
    request_body: bytes
    request_authorization: str | None
    reached: Reached  # "yes": a response came back; "maybe": lost after sending; "no": never left
    status: int | None = None
    response_body: bytes | None = None
    response_authorization: str | None = None
    verification: Verification | None = None
    retry_after: float | None = None
    error: str | None = None
    elapsed_ms: float = 0.0

    @property
    def verified(self) -> bool:
        """True when a response came back with a good CorEMR signature."""
        return self.verification is not None and self.verification.ok


@dataclass(frozen=True)
class SignedConnections:
    """The engine's lean client: CWSAuth's signing and verification over keep-alive `http.client` connections."""

    connections: CWSConnections
    auth: CWSAuth
    user_agent: str

    def close(self) -> None:
        """Close the connections."""
        self.connections.close()

    def __enter__(self) -> SignedConnections:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def exchange(client: httpx.Client | SignedConnections, method: str, url: str, body: bytes = b"") -> Exchange:
    """Send one signed request (httpx client with CWSAuth, or SignedConnections); never raises for network trouble."""
    if isinstance(client, SignedConnections):
        return _exchange_lean(client, method, url, body)
    request = client.build_request(
        method, url, content=body, headers={"Content-Type": "application/json"} if body else None
    )
    started = time.perf_counter()
    try:
        response = client.send(request)
    except httpx.TransportError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        reached: Reached = "no" if isinstance(exc, _NOT_SENT) else "maybe"
        return Exchange(
            method, url, body, request.headers.get("Authorization"), reached,
            error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, elapsed_ms=elapsed,
        )  # fmt: skip
    elapsed = (time.perf_counter() - started) * 1000
    return Exchange(
        method,
        url,
        body,
        request.headers.get("Authorization"),
        "yes",
        status=response.status_code,
        response_body=response.content,
        response_authorization=response.headers.get("Authorization"),
        verification=verification_of(response),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        elapsed_ms=elapsed,
    )


def _exchange_lean(client: SignedConnections, method: str, url: str, body: bytes) -> Exchange:
    """The same exchange as through httpx and CWSAuth: sign the exact bytes, send, verify what comes back."""
    started = time.perf_counter()
    authorization = client.auth.authorization_for(body)
    headers = {
        "Authorization": authorization,
        # CorEMR signs the body it sends; a transparently decompressed body would not be those bytes.
        "Accept-Encoding": "identity",
        "Accept": "*/*",
        "User-Agent": client.user_agent,
    }
    if body:
        headers["Content-Type"] = "application/json"
    try:
        answer = client.connections.request(method, url, body, headers)
    except (NotSent, SentButLost) as exc:
        reached: Reached = "no" if isinstance(exc, NotSent) else "maybe"
        elapsed = (time.perf_counter() - started) * 1000
        return Exchange(method, url, body, authorization, reached, error=str(exc), elapsed_ms=elapsed)
    verification = client.auth.verify(answer.body, answer.authorization)
    return Exchange(
        method,
        url,
        body,
        authorization,
        "yes",
        status=answer.status,
        response_body=answer.body,
        response_authorization=answer.authorization,
        verification=verification,
        retry_after=parse_retry_after(answer.retry_after),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent or unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()
