"""The circuit breaker: stop the whole run when CorEMR's answers are about our site rather than about rows.

Three ways to trip it: one signed refusal of our site (401/403: our key or Access name; a 3xx or a 404 to
a create: the base_url; see `site_setting`), which would be the same for every row; N unverified answers
in a row (a wrong server, or the wrong key for it); or 5 x N answers in a row refusing to
process (429, 5xx): a site that is down or overloaded all night is not a reason to try every row.
"""

from __future__ import annotations

import threading
from typing import Literal

from ..ledger import Step
from ._exchange import Exchange
from ._messages import MAX_REASON, one_line
from ._retry import RETRYABLE_STATUSES, RunStop
from ._steps import site_setting

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Stops the run on a refusal of our site, N unverified answers in a row, or a long run of 429s/5xx."""

    def __init__(self, threshold: int, stop: RunStop, busy_threshold: int | None = None) -> None:
        self.threshold = threshold
        self.busy_threshold = busy_threshold if busy_threshold is not None else threshold * 5
        self.stop = stop
        self._count = 0
        self._busy = 0
        self._lock = threading.Lock()
        self.reason = ""

    @property
    def tripped(self) -> bool:
        """True once the breaker stopped the run."""
        return bool(self.reason)

    def observe(self, ex: Exchange, step: Step | Literal["lookup"] = "lookup") -> None:
        """Stop on a refusal of our site; count unverified and busy answers; reset on any other verified one."""
        if ex.reached != "yes":
            return
        if not ex.verified:
            self._count_unverified(ex)
            return
        assert ex.status is not None  # a verified answer has a status
        if (setting := site_setting(step, ex.status)) is not None:
            self._trip(f"CorEMR answered a {step} with HTTP {ex.status}, a refusal of our site, not of the row:"
                       f" check {setting}")  # fmt: skip
            return
        busy = ex.status in RETRYABLE_STATUSES or ex.status >= 500
        with self._lock:
            self._count = 0
            self._busy = self._busy + 1 if busy else 0
            tripped = busy and self._busy >= self.busy_threshold
            count = self._busy
        if tripped:
            self._trip(f"stopped after {count} answers in a row refusing to process (last: HTTP {ex.status}):"
                       " CorEMR is down or overloaded; check base_url, or run again later")  # fmt: skip

    def site_refused(self, reason: str) -> None:
        """Stop the run for a refusal of our site the engine found out itself (e.g. no bookings routes)."""
        self._trip(reason)

    def _count_unverified(self, ex: Exchange) -> None:
        with self._lock:
            self._count += 1
            self._busy = 0
            if self._count < self.threshold:
                return
            count = self._count
        why = ex.verification.reason if ex.verification else "no verification"
        # The signer's name in `why` is the server's: one line, no control characters, like any reason.
        self._trip(f"stopped after {count} unverified answers in a row (last: HTTP {ex.status} with {why}):"
                   " check server_keys and base_url")  # fmt: skip

    def _trip(self, reason: str) -> None:
        """Stop the run for REASON (the first reason is kept)."""
        with self._lock:
            if self.reason:
                return
            self.reason = one_line(reason, MAX_REASON)
        self.stop.stop(self.reason)
