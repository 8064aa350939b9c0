"""The circuit breaker: after N refusals in a row, stop the whole run rather than hammer a wrong server."""

from __future__ import annotations

import threading

from ._exchange import Exchange
from ._messages import MAX_REASON, one_line
from ._retry import RunStop

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Stops the run after N refusals in a row (401/403 or unverified answers): a wrong key or wrong server."""

    def __init__(self, threshold: int, stop: RunStop) -> None:
        self.threshold = threshold
        self.stop = stop
        self._count = 0
        self._lock = threading.Lock()
        self.reason = ""

    @property
    def tripped(self) -> bool:
        """True once the breaker stopped the run."""
        return bool(self.reason)

    def observe(self, ex: Exchange) -> None:
        """Count a security refusal, or reset on any verified answer that is not one."""
        if ex.reached != "yes":
            return
        refused = not ex.verified or ex.status in (401, 403)
        with self._lock:
            if not refused:
                self._count = 0
                return
            self._count += 1
            if self._count < self.threshold or self.reason:
                return
            if ex.verified:
                what = f"HTTP {ex.status}"
            else:
                what = f"unverified response ({ex.verification.reason if ex.verification else 'no verification'})"
            # The signer's name in `what` is the server's: one line, no control characters, like any reason.
            self.reason = one_line(
                f"stopped after {self._count} refused or unverified answers in a row (last: {what})", MAX_REASON
            )
        self.stop.stop(self.reason)
