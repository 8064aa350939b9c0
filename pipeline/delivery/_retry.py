"""The retry policy for CWS requests, composed from tenacity's named strategies.

Retried: only a `TransientFailure` (connection trouble, 429, 500, 502, 503, 504, an unverified
answer that a lookup may settle). Everything else ends the row at once. Waits honour Retry-After
(capped) or back off exponentially with jitter, and every wait ends the moment the run is told to
stop (`RunStop`): a tripped circuit breaker or an interrupted run stops every waiting row at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from .._logging import logger
from ._messages import reason_text

__all__ = [
    "RETRYABLE_STATUSES",
    "RunStop",
    "TransientFailure",
    "capped_retry_after",
    "retrying",
    "wait_retry_after_or_backoff",
]

# 429 and the gateway/server errors that mean "not processed, try later"; any other 4xx is final.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

_log = logger(__name__)


class TransientFailure(Exception):
    """An attempt that may succeed if tried again (carries the server's Retry-After, if any)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class RunStop:
    """Tells every row of a run to stop sending: the circuit breaker tripped, or the run was interrupted."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self._lock = threading.Lock()
        self._wakers: list[Callable[[], None]] = []

    def also_wake(self, wake: Callable[[], None]) -> None:
        """Call WAKE when the run stops: rows waiting elsewhere (for a place to send) end at once too."""
        self._wakers.append(wake)

    def stop(self, reason: str) -> None:
        """Stop the run (the first reason given is kept) and wake every row waiting to retry or to send."""
        with self._lock:
            if self.event.is_set():
                return
            self.reason = reason
            self.event.set()
        _log.warning("run stopped: %s", reason_text(reason))
        for wake in self._wakers:
            wake()

    @property
    def stopped(self) -> bool:
        """True once the run was told to stop."""
        return self.event.is_set()

    def sleep(self, seconds: float) -> None:
        """Wait SECONDS, or less when the run is stopped meanwhile."""
        self.event.wait(seconds)


def capped_retry_after(retry_after: float | None, cap: float) -> float | None:
    """The wait a Retry-After asks for, at most CAP; None when it asks for none (absent, 0 or negative)."""
    return min(retry_after, cap) if retry_after is not None and retry_after > 0 else None


class wait_retry_after_or_backoff(wait_base):  # lower case, like tenacity's own strategies
    """Wait what the server's Retry-After asks (capped; 0 or negative ignored), else exponential jitter."""

    def __init__(self, initial: float, maximum: float, retry_after_cap: float) -> None:
        self._backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)
        self._cap = retry_after_cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        asked = capped_retry_after(failure.retry_after, self._cap) if isinstance(failure, TransientFailure) else None
        return asked if asked is not None else float(self._backoff(retry_state))


def retrying(
    *,
    max_attempts: int,
    initial_wait: float,
    max_wait: float,
    retry_after_cap: float,
    stop: RunStop,
    sleep: Callable[[float], None] | None = None,
) -> Retrying:
    """A retry loop: transient failures only, up to max_attempts, and no further once the run is stopped.

    SLEEP replaces the wait (tests record it); by default a wait ends early when the run stops.
    tenacity keeps each thread's attempt state apart, so one loop serves every worker.
    """
    return Retrying(
        retry=retry_if_exception_type(TransientFailure),
        stop=stop_after_attempt(max_attempts) | stop_when_event_set(stop.event),
        wait=wait_retry_after_or_backoff(initial_wait, max_wait, retry_after_cap),
        sleep=sleep or stop.sleep,
        before_sleep=_log_retry,
        reraise=True,
    )


def _log_retry(retry_state: RetryCallState) -> None:
    """Log a retry at INFO: which attempt failed, why (masked as a printed reason is) and how long it waits."""
    outcome = retry_state.outcome
    failure = outcome.exception() if outcome is not None else None
    wait = retry_state.next_action.sleep if retry_state.next_action is not None else 0.0
    why = reason_text(str(failure)) if failure is not None else "?"
    _log.info("attempt %d failed (%s); retrying in %.1f s", retry_state.attempt_number, why, wait,
              extra={"attempt": retry_state.attempt_number, "wait": round(wait, 3)})  # fmt: skip
