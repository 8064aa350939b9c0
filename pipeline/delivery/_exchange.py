"""One signed HTTP exchange with CWS, and what it tells us: verified, unverified, or whether it may have landed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..protocol import CWSAuth, Verification
from ._transport import Answer, NoAnswer, Transport

__all__ = ["Exchange", "Gate", "Reached", "exchange"]

Reached = Literal["no", "maybe", "yes"]


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
    elapsed_ms: float = 0.0  # signing, sending, receiving and verifying (not waiting for a place to send)
    round_trip_ms: float = 0.0  # from handing the request to the transport to the answer's last byte

    @property
    def verified(self) -> bool:
        """True when a response came back with a good CorEMR signature."""
        return self.verification is not None and self.verification.ok

    def describe(self) -> str:
        """What happened, in a few words: 'HTTP 503', 'not sent: ConnectError: ...', 'HTTP 201 with bad signature'."""
        if self.reached == "no":
            return f"not sent: {self.error}"
        if self.reached == "maybe":
            return f"no answer after sending: {self.error}"
        if not self.verified:
            why = self.verification.reason if self.verification is not None else "no verification"
            return f"HTTP {self.status} with {why}"
        return f"HTTP {self.status}"


Gate = Callable[[Callable[[], Answer]], Answer]
"""Wraps the moment a request is on the wire (the run's concurrency limiter); may raise to stop it leaving."""


def _ungated(send: Callable[[], Answer]) -> Answer:
    return send()


def exchange(
    transport: Transport, auth: CWSAuth, method: str, url: str, body: bytes = b"", gate: Gate = _ungated
) -> Exchange:
    """Sign the exact bytes, send them, verify what comes back over its bytes as received; never raises NoAnswer.

    Only the sending happens inside GATE: the signature is made before the request takes its place
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
        answer = gate(send)
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
        elapsed_ms=(signed - started + round_trip + time.perf_counter() - answered) * 1000,
        round_trip_ms=round_trip * 1000,
    )
