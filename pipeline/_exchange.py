"""One signed HTTP exchange with CWS, and what it tells us: verified, unverified, or whether it may have landed."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx

from ._auth import verification_of
from ._verification import Verification

__all__ = ["Exchange", "Reached", "exchange", "parse_retry_after"]

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


def exchange(client: httpx.Client, method: str, url: str, body: bytes = b"") -> Exchange:
    """Send one signed request through a client whose auth is CWSAuth; never raises for network trouble."""
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
