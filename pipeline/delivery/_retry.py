"""Retry strategy for CWS requests, composed from tenacity's named strategies."""

from __future__ import annotations

from tenacity import RetryCallState, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

__all__ = ["RETRYABLE_STATUSES", "TransientFailure", "stop_after_attempt", "wait_retry_after_or_backoff"]

# 429 and the gateway/server errors that mean "not processed, try later"; any other 4xx is final.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class TransientFailure(Exception):
    """An attempt that may succeed if tried again (carries the server's Retry-After, if any)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class wait_retry_after_or_backoff(wait_base):  # lower case, like tenacity's own strategies
    """Wait what the server's Retry-After asks (capped; 0 or negative ignored), else exponential jitter."""

    def __init__(self, initial: float, maximum: float, retry_after_cap: float) -> None:
        self._backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)
        self._cap = retry_after_cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        if isinstance(failure, TransientFailure) and failure.retry_after is not None and failure.retry_after > 0:
            return min(failure.retry_after, self._cap)
        return float(self._backoff(retry_state))
