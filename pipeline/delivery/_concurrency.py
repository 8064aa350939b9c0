"""How many requests may be in flight: an adaptive limit that follows CorEMR's answers and latency.

The algorithm is TCP Vegas (Brakmo and Peterson, 1994) applied to request concurrency, as Netflix's
concurrency-limits library does: the limit plays the congestion window, and the ratio of the latency
now to the latency with no queue (`base_rtt`) says how many requests are waiting in the server.

    queue in the server ~ limit x (1 - base_rtt / rtt)

Per round (one limit's worth of answers to requests sent under the current limit): a throttle (429,
503, or any Retry-After) halves the limit and pauses new requests for what Retry-After asks; latency
above HIGH x base_rtt shrinks the limit toward where it would be TARGET x base_rtt; latency below LOW x
base_rtt grows it, by a tenth (at least one) a round. Slow start, as Vegas does before its first sign
of queueing, doubles the limit each round, from INITIAL; the first round (its requests all left at
once) sets base_rtt and is judged against it at once. Growth needs the limit to be used: a client that cannot
fill it learns nothing by raising it. The bounds are chosen for a nurse's CorEMR: a queue in the
server of a sixth to a half of its capacity (so its p95 stays within about twice its unloaded time),
and never idle capacity when answers stay as fast as unloaded.

Measured against the local server's capacity model on a 2-core machine shared by client and server,
the textbook statistics read our own CPU as CorEMR's queue; so (each a change from Vegas, with why):
a round's latency is its median, and base_rtt the lowest lower-quartile seen, not the mean and the
fastest answer; a slow-start round is half a limit (the requests sent the moment it doubled: one round
trip per doubling, not two), and slow start ends when its latency passes TARGET, then whole rounds
judge; after slow start the limit grows by a tenth, not by one (less than HIGH / LOW - 1, so a step
never jumps over the hold band; 60 is back to 80 in three rounds, not twenty); a round of high latency
cuts at most a quarter (a busy moment on the client's machine is not CorEMR's queue; a throttle still
halves), and never below 2 (one request waiting keeps a CorEMR that serves one at a time busy, where a
limit of 1 leaves it idle while each answer travels back; a throttle still takes it to 1); and after a
shrink the next round only drains (its first requests still queue behind those the larger limit sent,
and would shrink the limit twice for one queue).

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

__all__ = [
    "INITIAL",
    "THROTTLE_STATUSES",
    "AdaptiveLimit",
    "AnswerKind",
    "ConcurrencyLimiter",
    "FixedLimit",
    "Limit",
    "RoundDecision",
    "answer_kind",
    "settled_limit",
]

LOW = 1.15  # latency below LOW x base_rtt: no queue worth the name; grow
HIGH = 1.5  # latency above HIGH x base_rtt: we are making CorEMR queue; shrink (1.4 read our own CPU as a queue)
TARGET = 1.25  # where a shrink aims: a queue of a quarter of the server's capacity
GROWTH = 0.1  # after slow start, a round grows the limit by a tenth (at least one): less than HIGH / LOW - 1,
# so one step cannot jump over the hold band, and a limit of 60 is back to 80 in 3 rounds, not 20
LEAST_KEPT = 0.75  # a round of high latency cuts the limit by a quarter at most (a throttle halves it): a busy
# moment on this machine (our CPU is in every latency measured) must not cost half the limit
PROBE_ROUNDS = 100
LEAST_FOR_LATENCY = 2.0  # latency alone never cuts the limit below 2: one request waiting keeps a CorEMR that
# serves one at a time busy (a throttle still halves it, down to 1)
MIN_ROUND = 4  # answers per round at least, so one slow answer cannot move the limit
INITIAL = 4  # the limit a run starts at; 8 overflows the waiting room of a CorEMR serving 2 at once (twice
# its capacity, in the model): 1.5% of a bulk load's requests throttled, against none from 4
_SAFETY_NET = 0.5  # seconds a waiting thread sleeps at most before it looks again (no notification is lost)
# "Slow down": 429 Too Many Requests and 503 Service Unavailable (any answer with a Retry-After says so too).
THROTTLE_STATUSES = frozenset({429, 503})

AnswerKind = Literal["ok", "throttled", "failed"]
RoundDecision = Literal["slow_start", "grow", "hold", "shrink", "drain", "throttled", "probe", "idle"]


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
    drain: bool = False  # the round after a shrink: its requests queued behind the larger limit's


class AdaptiveLimit:
    """The Vegas controller, with no threads or clocks: feed it answers, read `allowed`.

    Pure so that its decisions can be tested on scripted answer sequences.
    """

    def __init__(self, ceiling: int, initial: int = INITIAL) -> None:
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
        self, answer: AnswerKind, rtt: float, in_flight: int, retry_after: float | None = None, epoch: int | None = None
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
        if probe:  # enough answers at half the limit for the queue the full limit made to drain first
            return limit + max(1, limit // 2)
        if self.slow_start and self.base_rtt is not None:
            # Half the limit left the moment it doubled: their answers, one round trip later, say whether it
            # queues. Waiting for the whole limit would take two round trips per doubling.
            return max(MIN_ROUND, limit // 2)
        return max(MIN_ROUND, limit)

    def _end_round(self) -> float | None:
        r = self._round
        self.rounds += 1
        before = (self.limit, r.probe)
        pause = self._decide(r)
        probe = self.rounds % PROBE_ROUNDS == 0 and self.last != "throttled"
        if (self.limit, probe) != before or r.drain:
            # Judge the new limit only by answers to requests sent under it; after a drain, only by requests
            # sent once those queued behind the larger limit's were answered.
            self.epoch += 1
        self._round = _Round(self._round_size(probe), probe=probe, drain=self.last == "shrink" and not probe)
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
        if r.drain:  # the first requests under a smaller limit wait behind what the larger one queued
            self.last = "drain"
            return None
        # A round's latency is its median, not its mean: in a CorEMR that queues, every answer waits, while
        # our own CPU (and anything else on this machine) delays some answers a lot. The unloaded latency is
        # the lowest quarter's edge, not the fastest answer: service times vary, and the fastest of many is
        # luck; yet when the first round already queues (a CorEMR serving 2 at once), a quarter did not.
        rtts = sorted(r.rtts)
        rtt, low = statistics.median(rtts), rtts[(len(rtts) - 1) // 4]
        if r.probe:
            self.base_rtt = low  # measured afresh: the queue the full limit made has drained
            self.last = "probe"
            return None
        # The first round measures the unloaded latency and is judged against it at once: its spread says
        # whether it queued (a CorEMR serving 4 at once answers 8 in two waves: a median 1.5 x its lowest).
        self.base_rtt = low if self.base_rtt is None else min(self.base_rtt, low)
        ratio = rtt / self.base_rtt
        used = r.busiest * 2 >= int(self.limit)
        if ratio > HIGH:
            self.limit = max(min(LEAST_FOR_LATENCY, self.limit), self.limit * max(TARGET / ratio, LEAST_KEPT))
            self.slow_start = False
            self.last = "shrink"
        elif used and ratio < (TARGET if self.slow_start else LOW):
            grown = self.limit * 2 if self.slow_start else self.limit + max(1.0, self.limit * GROWTH)
            self.limit = min(float(self.ceiling), grown)
            self.last = "slow_start" if self.slow_start else "grow"
            self.slow_start = self.slow_start and self.limit < self.ceiling  # at the ceiling, whole rounds judge
        else:
            # A half round sees only the start of a queue: slow start ends here, and whole rounds judge it.
            self.slow_start = False
            self.last = "hold" if used else "idle"
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
        self, answer: AnswerKind, rtt: float, in_flight: int, retry_after: float | None = None, epoch: int | None = None
    ) -> float | None:
        """A fixed limit learns nothing."""
        return None


Limit = AdaptiveLimit | FixedLimit


class ConcurrencyLimiter:
    """Threads wait here before each request: at most `limit.allowed` in flight, at most `max_rate` a second.

    `slot()` blocks until a request may leave (or the stop event is set: then it returns None); the
    slot's `done(...)` reports how the answer went and frees the place. A freed place wakes one
    waiting thread, not all of them: a run's pool may hold a hundred threads waiting for a dozen places.
    ON_CHANGE is told the new limit whenever it changes (a progress bar shows it).
    """

    def __init__(
        self,
        limit: Limit,
        *,
        max_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._interval = 1.0 / max_rate if max_rate else 0.0
        self._next_start = 0.0  # the earliest a request may leave under the rate ceiling
        self._paused_until = 0.0
        self._in_flight = 0
        self._peak = 0
        self._on_change = on_change
        self._cond = threading.Condition()

    @property
    def in_flight(self) -> int:
        """Requests in flight now."""
        return self._in_flight

    @property
    def peak(self) -> int:
        """The most requests that were in flight at once."""
        return self._peak

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
                    if self._in_flight < self.limit.allowed:
                        self._cond.notify()  # a place is left: the next thread in line may take it (or time it)
                    return _Slot(self, self._clock(), self.limit.epoch)
                # A freed place, a place left or a stop notifies; the timeout is only a safety net.
                self._cond.wait(timeout=min(wait, _SAFETY_NET) if wait > 0 else _SAFETY_NET)

    def wake(self) -> None:
        """Wake every waiting thread (after a stop event is set)."""
        with self._cond:
            self._cond.notify_all()

    def _done(self, slot: _Slot, answer: AnswerKind, retry_after: float | None, rtt: float | None) -> None:
        with self._cond:
            before = self.limit.allowed
            if rtt is None:
                rtt = self._clock() - slot.started
            try:
                pause = self.limit.observe(answer, rtt, self._in_flight, retry_after, slot.epoch)
            finally:  # a place taken and never given back would leave every other thread waiting for ever
                self._in_flight -= 1
            if pause:
                self._paused_until = max(self._paused_until, self._clock() + pause)
            allowed = self.limit.allowed
            free = allowed - self._in_flight
            if free > 0:
                self._cond.notify(free)
        if allowed != before and self._on_change is not None:
            self._on_change(allowed)


@dataclass
class _Slot:
    """One request's place in flight."""

    limiter: ConcurrencyLimiter
    started: float
    epoch: int
    _released: bool = False

    def done(self, answer: AnswerKind, retry_after: float | None = None, rtt: float | None = None) -> None:
        """Report the answer (ok, throttled, failed) and free the place; a second call does nothing.

        RTT: seconds from sending to the answer's last byte, when the caller timed it (by default the
        time since the place was given, which also counts the signing before the request left).
        """
        if not self._released:
            self._released = True
            self.limiter._done(self, answer, retry_after, rtt)


def answer_kind(status: int | None, retry_after: float | None) -> AnswerKind:
    """What an answer tells the limit: no answer (STATUS None) failed; 429, 503 or a Retry-After throttled; else ok."""
    if status is None:
        return "failed"
    if status in THROTTLE_STATUSES or retry_after is not None:
        return "throttled"
    return "ok"


def settled_limit(limit: Limit) -> int:
    """The limit as a whole number of requests, for the run's summary and record."""
    return max(1, math.floor(limit.limit))
