"""How many requests may be in flight: an adaptive limit that follows CorEMR's answers and latency.

The algorithm is TCP Vegas (Brakmo and Peterson, 1994) applied to request concurrency, as Netflix's
concurrency-limits library does: the limit plays the congestion window, and the ratio of the latency
now to the latency with no queue (`base_rtt`) says how many requests are waiting in the server.

    queue in the server ~ limit x (1 - base_rtt / rtt)

Per round (one limit's worth of answers): a throttle (429, 503, or any Retry-After) halves the limit
and pauses new requests for what Retry-After asks; latency above HIGH x base_rtt shrinks the limit to
where the queue would be TARGET x base_rtt; latency below LOW x base_rtt grows it (doubling while in
slow start, as Vegas does before its first sign of queueing, then by one a round). Growth needs the
limit to be used: a client that cannot fill it learns nothing by raising it. The bounds are chosen for
a nurse's CorEMR: a queue in the server of at most about half its capacity (so its p95 stays within
about twice its unloaded time), and never idle capacity when answers stay as fast as unloaded.

Every PROBE_ROUNDS rounds one round runs at half the limit so the server's queue drains and base_rtt is
measured afresh: a CorEMR that became slower for everyone (a busy morning) is not mistaken for a queue
that we made, and one that became faster is noticed.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["AdaptiveLimit", "Answer", "ConcurrencyLimiter", "FixedLimit", "Limit", "RoundDecision"]

LOW = 1.15  # latency below LOW x base_rtt: no queue worth the name; grow
HIGH = 1.4  # latency above HIGH x base_rtt: we are making CorEMR queue; shrink
TARGET = 1.25  # where a shrink aims: a queue of about a third of the server's capacity
PROBE_ROUNDS = 40
MIN_ROUND = 4  # answers per round at least, so one slow answer cannot move the limit

Answer = Literal["ok", "throttled", "failed"]
RoundDecision = Literal["slow_start", "grow", "hold", "shrink", "throttled", "probe", "idle"]


@dataclass
class _Round:
    """Answers gathered since the last decision."""

    size: int  # answers that end the round
    answers: int = 0
    rtts: list[float] = field(default_factory=list)
    throttled: int = 0
    retry_after: float = 0.0
    busiest: int = 0  # the most requests in flight when an answer came back
    probe: bool = False


class AdaptiveLimit:
    """The Vegas controller, with no threads or clocks: feed it answers, read `allowed`.

    Pure so that its decisions can be tested on scripted answer sequences.
    """

    def __init__(self, ceiling: int, initial: int = 4) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = float(min(self.ceiling, max(1, initial)))
        self.base_rtt: float | None = None
        self.slow_start = True
        self.rounds = 0
        self.epoch = 0  # which limit a request was sent under: answers to older ones say nothing of this one
        self.last: RoundDecision = "idle"
        self._round = _Round(self._round_size())

    @property
    def allowed(self) -> int:
        """Requests that may be in flight now (half the limit during a probe round)."""
        limit = max(1, int(self.limit))
        return max(1, limit // 2) if self._round.probe else limit

    def observe(
        self, answer: Answer, rtt: float, in_flight: int, retry_after: float | None = None, epoch: int | None = None
    ) -> float | None:
        """Count one answer (its latency in seconds, requests in flight when it came); return a pause, if any.

        A round ends after one limit's worth of answers to requests sent under the current limit (EPOCH;
        None: assume so); a round with a throttle in it returns how long to send nothing new (the longest
        Retry-After asked, or None). A throttle to an older request still asks for its pause.
        """
        if epoch is not None and epoch != self.epoch:
            return retry_after if answer == "throttled" and retry_after else None
        r = self._round
        r.answers += 1
        r.busiest = max(r.busiest, in_flight)
        if answer == "throttled":
            r.throttled += 1
            r.retry_after = max(r.retry_after, retry_after or 0.0)
        elif answer == "ok":
            r.rtts.append(rtt)
        return self._end_round() if r.answers >= r.size else None

    def _round_size(self, probe: bool = False) -> int:
        limit = max(1, int(self.limit))
        # A probe round waits for the answers already in flight at the full limit, then half a limit's more.
        return limit + max(1, limit // 2) if probe else max(MIN_ROUND, limit)

    def _end_round(self) -> float | None:
        r = self._round
        self.rounds += 1
        before = (self.limit, r.probe)
        pause = self._decide(r)
        probe = self.rounds % PROBE_ROUNDS == 0 and self.last != "throttled"
        if (self.limit, probe) != before:
            self.epoch += 1  # judge the new limit only by answers to requests sent under it
        self._round = _Round(self._round_size(probe), probe=probe)
        return pause

    def _decide(self, r: _Round) -> float | None:
        if r.throttled:
            self.limit = max(1.0, self.limit / 2)
            self.slow_start = False
            self.last = "throttled"
            return r.retry_after or None
        if not r.rtts:
            self.last = "idle"
            return None
        if r.probe or self.base_rtt is None:
            self.base_rtt = min(r.rtts)  # measured afresh: the queue drained, or this is the first round
            self.last = "probe"
            return None
        self.base_rtt = min(self.base_rtt, *r.rtts)
        ratio = statistics.fmean(r.rtts) / self.base_rtt  # the mean: by Little's law, in flight / served at once
        if ratio > HIGH:
            self.limit = max(1.0, self.limit * TARGET / ratio)
            self.slow_start = False
            self.last = "shrink"
        elif ratio < LOW and r.busiest * 2 >= int(self.limit):
            grown = self.limit * 2 if self.slow_start else self.limit + 1
            self.limit = min(float(self.ceiling), grown)
            self.last = "slow_start" if self.slow_start else "grow"
        else:
            self.slow_start = self.slow_start and ratio < LOW
            self.last = "hold" if r.busiest * 2 >= int(self.limit) else "idle"
        return None


class FixedLimit:
    """A fixed limit (`adaptive = false`): the ceiling, always."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.epoch = 0
        self.last: RoundDecision = "hold"

    @property
    def allowed(self) -> int:
        """Requests that may be in flight now."""
        return self.ceiling

    def observe(
        self, answer: Answer, rtt: float, in_flight: int, retry_after: float | None = None, epoch: int | None = None
    ) -> float | None:
        """A fixed limit learns nothing."""
        return None


Limit = AdaptiveLimit | FixedLimit


class ConcurrencyLimiter:
    """Threads wait here before each request: at most `limit.allowed` in flight, at most `max_rate` a second.

    `slot()` blocks until a request may leave (or the stop event is set: then it returns None); the
    slot's `done(...)` reports how the answer went and frees the place.
    """

    def __init__(
        self,
        limit: Limit,
        *,
        max_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._interval = 1.0 / max_rate if max_rate else 0.0
        self._next_start = 0.0  # the earliest a request may leave under the rate ceiling
        self._paused_until = 0.0
        self._in_flight = 0
        self._peak = 0
        self._cond = threading.Condition()

    @property
    def in_flight(self) -> int:
        """Requests in flight now."""
        return self._in_flight

    def slot(self, stop: threading.Event | None = None) -> _Slot | None:
        """Wait for a place (and for the rate ceiling and any Retry-After pause); None when STOP is set first."""
        with self._cond:
            while True:
                if stop is not None and stop.is_set():
                    return None
                now = self._clock()
                wait = max(self._paused_until, self._next_start) - now
                if self._in_flight < self.limit.allowed and wait <= 0:
                    self._in_flight += 1
                    self._peak = max(self._peak, self._in_flight)
                    self._next_start = max(now, self._next_start) + self._interval
                    return _Slot(self, self._clock(), self.limit.epoch)
                self._cond.wait(timeout=min(wait, 0.25) if wait > 0 else 0.25)

    def wake(self) -> None:
        """Wake every waiting thread (after a stop event is set)."""
        with self._cond:
            self._cond.notify_all()

    def _done(self, slot: _Slot, answer: Answer, retry_after: float | None) -> None:
        with self._cond:
            rtt = self._clock() - slot.started
            pause = self.limit.observe(answer, rtt, self._in_flight, retry_after, slot.epoch)
            self._in_flight -= 1
            if pause:
                self._paused_until = max(self._paused_until, self._clock() + pause)
            self._cond.notify_all()


@dataclass
class _Slot:
    """One request's place in flight."""

    limiter: ConcurrencyLimiter
    started: float
    epoch: int
    _released: bool = False

    def done(self, answer: Answer, retry_after: float | None = None) -> None:
        """Report the answer (ok, throttled, failed) and free the place; a second call does nothing."""
        if not self._released:
            self._released = True
            self.limiter._done(self, answer, retry_after)


def settled_limit(limit: Limit) -> int:
    """The limit as a whole number of requests, for the run's summary and record."""
    return max(1, math.floor(limit.limit))
