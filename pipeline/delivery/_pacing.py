"""Concurrency and pacing: the adaptive limit, the retry waits, the circuit breaker and the delivery window."""

from __future__ import annotations

import math
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import time as clock_time
from typing import Literal

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
from .._masking import MAX_REASON, one_line, reason_text
from ..ledger import Step
from ._decisions import RETRYABLE_STATUSES, site_setting
from ._transport import Exchange

__all__ = [
    "INITIAL",
    "THROTTLE_STATUSES",
    "AdaptiveLimit",
    "AnswerKind",
    "CircuitBreaker",
    "ConcurrencyLimiter",
    "DeliveryWindow",
    "FixedLimit",
    "Limit",
    "RoundDecision",
    "RunStop",
    "SendingWatch",
    "TransientFailure",
    "answer_kind",
    "capped_retry_after",
    "retrying",
    "settled_limit",
    "wait_retry_after_or_backoff",
]


# -- concurrency ----------------------------------------------------------------------------------

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

    The algorithm is TCP Vegas (Brakmo and Peterson, 1994) applied to request concurrency, as Netflix's
    concurrency-limits library does: the limit plays the congestion window, and the ratio of the latency now to
    the latency with no queue (`base_rtt`) says how many requests are waiting in the server.

        queue in the server ~ limit x (1 - base_rtt / rtt)

    Per round (one limit's worth of answers to requests sent under the current limit): a throttle (429, 503, or
    any Retry-After) halves the limit and pauses new requests for what Retry-After asks; latency above HIGH x
    base_rtt shrinks the limit toward where it would be TARGET x base_rtt; latency below LOW x base_rtt grows
    it, by a tenth (at least one) a round. Slow start, as Vegas does before its first sign of queueing, doubles
    the limit each round, from INITIAL; the first round (its requests all left at once) sets base_rtt and is
    judged against it at once. Growth needs the limit to be used: a client that cannot fill it learns nothing by
    raising it. The bounds are chosen for a nurse's CorEMR: a queue in the server of a sixth to a half of its
    capacity (so its p95 stays within about twice its unloaded time), and never idle capacity when answers stay
    as fast as unloaded.

    Measured against the local server's capacity model on a 2-core machine shared by client and server, the
    textbook statistics read our own CPU as CorEMR's queue; so (each a change from Vegas, with why): a round's
    latency is its median, and base_rtt the lowest lower-quartile seen, not the mean and the fastest answer; a
    slow-start round is half a limit (the requests sent the moment it doubled: one round trip per doubling, not
    two), and slow start ends when its latency passes TARGET, then whole rounds judge; after slow start the
    limit grows by a tenth, not by one (less than HIGH / LOW - 1, so a step never jumps over the hold band; 60
    is back to 80 in three rounds, not twenty); a round of high latency cuts at most a quarter (a busy moment on
    the client's machine is not CorEMR's queue; a throttle still halves), and never below 2 (one request waiting
    keeps a CorEMR that serves one at a time busy, where a limit of 1 leaves it idle while each answer travels
    back; a throttle still takes it to 1); and after a shrink the next round only drains (its first requests
    still queue behind those the larger limit sent, and would shrink the limit twice for one queue).

    Every PROBE_ROUNDS rounds one round runs at half the limit so the server's queue drains and base_rtt is
    measured afresh: a CorEMR that became slower for everyone (a busy morning) is not mistaken for a queue that
    we made, and one that became faster is noticed.
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


# -- retry ----------------------------------------------------------------------------------------


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

    Retried: only a `TransientFailure` (connection trouble, 429, 500, 502, 503, 504, an unverified answer that a
    lookup may settle). Everything else ends the row at once. Waits honour Retry-After (capped) or back off
    exponentially with jitter, and every wait ends the moment the run is told to stop (`RunStop`): a tripped
    circuit breaker or an interrupted run stops every waiting row at once.
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


# -- circuit_breaker ------------------------------------------------------------------------------


class CircuitBreaker:
    """Stops the run on a refusal of our site, N unverified answers in a row, or a long run of 429s/5xx.

    Three ways to trip it: one signed refusal of our site (401/403: our key or Access name; a 3xx or a 404 to a
    create: the base_url; see `site_setting`), which would be the same for every row; N unverified answers in a
    row (a wrong server, or the wrong key for it); or 5 x N answers in a row refusing to process (429, 5xx): a
    site that is down or overloaded all night is not a reason to try every row.
    """

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
        if ex.landed != "yes":
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


# -- window ---------------------------------------------------------------------------------------

_WINDOW = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")


@dataclass(frozen=True)
class DeliveryWindow:
    """A daily window in site local time; one that ends before it starts runs past midnight.

    CorEMR is busiest while nurses chart; a bulk load of a site's history can be kept to the night. A run
    started outside the window sends nothing and says when it opens; a run still going when it closes stops
    sending, and the rows it did not reach go next time. A run's time limit (`max_run_seconds`) stops it the
    same way, whether or not it has a window.
    """

    start: clock_time
    end: clock_time
    zone: tzinfo | None = None  # None: this machine's local time

    @classmethod
    def parse(cls, text: str, zone: tzinfo | None = None) -> DeliveryWindow:
        """Read "HH:MM-HH:MM" (24-hour clock); ValueError saying what is wrong."""
        match = _WINDOW.fullmatch(text.strip())
        if match is None:
            raise ValueError(f'{text!r} is not a window like "22:00-06:00" (HH:MM-HH:MM, 24-hour clock)')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"{text!r}: hours run 00-23 and minutes 00-59")
        if (h1, m1) == (h2, m2):
            raise ValueError(f"{text!r}: a window must not start and end at the same minute")
        return cls(clock_time(h1, m1), clock_time(h2, m2), zone)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def describe(self) -> str:
        """The window and its zone, e.g. '22:00-06:00 America/Chicago' or '22:00-06:00 local time'."""
        return f"{self} {self.zone if self.zone is not None else 'local time'}"

    def not_open(self, when: datetime) -> str | None:
        """None inside the window; outside it, one line saying when it opens (and that nothing was sent)."""
        if self.contains(when):
            return None
        opens = self.opens_at(when)
        minutes = max(1, round((opens - self._local(when)).total_seconds() / 60))
        wait = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
        return (
            f"outside the delivery window {self.describe()}: it opens at {opens:%H:%M} (in {wait}); nothing was"
            " sent: run again then"
        )

    def now(self) -> datetime:
        """The current time in the window's zone."""
        return datetime.now(self.zone).astimezone(self.zone)

    def contains(self, when: datetime) -> bool:
        """True when WHEN (aware, or naive local time) falls inside the window."""
        at = self._local(when).time()
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end

    def closes_at(self, when: datetime) -> datetime:
        """The end of the window WHEN is in (WHEN must be inside it)."""
        local = self._local(when)
        end = datetime.combine(local.date(), self.end, local.tzinfo)
        return end if end > local else end + timedelta(days=1)

    def opens_at(self, when: datetime) -> datetime:
        """The next start of the window after WHEN."""
        local = self._local(when)
        start = datetime.combine(local.date(), self.start, local.tzinfo)
        return start if start > local else start + timedelta(days=1)

    def _local(self, when: datetime) -> datetime:
        return when.astimezone(self.zone) if when.tzinfo is not None else when


class SendingWatch:
    """Watches the clock while a run sends, and calls ON_STOP once with the reason when sending must end:
    the delivery window closes, or the run has been going for MAX_SECONDS (its `max_run_seconds`).

    Both ends are worked out once, when the watch starts (the window's in its zone, so a daylight-saving
    change in between is counted right); the watch looks at the clock at least once a minute, so a clock
    that is set forward (or an injected one, in tests) is noticed.
    """

    def __init__(
        self,
        on_stop: Callable[[str], None],
        now: Callable[[], datetime] | None = None,
        *,
        window: DeliveryWindow | None = None,
        max_seconds: float | None = None,
        limit_named: str = "max_run_seconds",
        started: datetime | None = None,
    ) -> None:
        self.window = window
        self._started = started  # when the run began (the window's close is reckoned from it); None: on entering
        self._on_stop = on_stop
        self._now = now or (window.now if window is not None else _utc_now)
        self._max_seconds = max_seconds
        self._limit_named = limit_named
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.stopped: str | None = None  # the reason given, once sending had to end during the run

    def __enter__(self) -> SendingWatch:
        start = self._started if self._started is not None else self._now()
        ends: list[tuple[datetime, str]] = []
        if self.window is not None:
            closes = self.window.closes_at(start)
            ends.append((closes, f"the delivery window {self.window} closed at {closes:%H:%M}"))
        if self._max_seconds is not None:
            limit = f"the run reached its time limit, {self._limit_named}"
            ends.append((start + timedelta(seconds=self._max_seconds), limit))
        if ends:
            end = min(ends, key=lambda e: e[0])
            self._thread = threading.Thread(target=self._watch, args=end, name="sending-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, end: datetime, reason: str) -> None:
        while True:
            left = (end - self._now()).total_seconds()
            if left <= 0:
                self.stopped = reason
                self._on_stop(reason)
                return
            if self._done.wait(min(left, 60.0)):
                return


def _utc_now() -> datetime:
    return datetime.now(UTC)
