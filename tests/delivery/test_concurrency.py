"""The adaptive concurrency limit: its decisions on scripted answers, and how it settles against a queueing model."""

from __future__ import annotations

import heapq
import random
import statistics
import threading
from dataclasses import dataclass

import pytest

from pipeline.delivery._pacing import HIGH, LOW, AdaptiveLimit, ConcurrencyLimiter, FixedLimit, Limit

BASE = 0.050  # an unloaded answer: 50 ms


def feed_round(limit: AdaptiveLimit, rtt: float, *, in_flight: int | None = None) -> str:
    """Answer one whole round with the same latency; return the decision it led to."""
    rounds = limit.rounds
    while limit.rounds == rounds:
        limit.observe("ok", rtt, in_flight if in_flight is not None else limit.allowed)
    return limit.last


def test_slow_start_doubles_the_limit_each_round_while_answers_stay_fast() -> None:
    limit = AdaptiveLimit(ceiling=64, initial=8)
    seen = [limit.allowed]
    for _ in range(3):  # the first round too: it measures the unloaded latency and is judged against it
        assert feed_round(limit, BASE) == "slow_start"
        seen.append(limit.allowed)
    assert not limit.slow_start  # at the ceiling: nothing left to find by doubling
    assert feed_round(limit, BASE) == "grow"
    assert [*seen, limit.allowed] == [8, 16, 32, 64, 64]  # never above the ceiling


def test_slow_start_rounds_are_half_a_limit_so_a_doubling_takes_one_round_trip() -> None:
    limit = AdaptiveLimit(ceiling=256, initial=32)

    def answers_to_a_decision() -> int:
        rounds, answers = limit.rounds, 0
        while limit.rounds == rounds:
            limit.observe("ok", BASE, limit.allowed)
            answers += 1
        return answers

    assert answers_to_a_decision() == 32 and limit.allowed == 64  # the first round: all 32 left at once
    assert answers_to_a_decision() == 32 and limit.allowed == 128  # then the 32 of 64 sent when it doubled


def test_slow_start_ends_without_a_shrink_when_half_a_round_shows_a_queue_starting() -> None:
    limit = AdaptiveLimit(ceiling=128, initial=16)
    assert feed_round(limit, BASE) == "slow_start" and limit.allowed == 32
    assert feed_round(limit, BASE * 1.3) == "hold"  # above TARGET, below HIGH: the start of a queue
    assert not limit.slow_start and limit.allowed == 32
    assert feed_round(limit, BASE) == "grow" and limit.allowed == 35  # then by a tenth, not by doubling


def test_a_first_round_that_queued_ends_slow_start_without_doubling() -> None:
    limit = AdaptiveLimit(ceiling=64, initial=4)
    for rtt in (BASE, BASE, 2 * BASE, 2 * BASE):  # a CorEMR serving 2 at once answers the 4 sent together in two waves
        limit.observe("ok", rtt, 4)
    assert limit.rounds == 1 and limit.base_rtt == BASE
    assert limit.last in ("hold", "shrink") and limit.allowed <= 4 and not limit.slow_start  # never doubled


def test_a_429_storm_halves_the_limit_each_round_down_to_one_and_pauses_for_retry_after() -> None:
    limit = AdaptiveLimit(ceiling=32, initial=32)
    assert feed_round(limit, BASE) == "slow_start" and limit.allowed == 32  # at the ceiling already
    seen = []
    for _ in range(8):
        rounds = limit.rounds
        pauses = []
        while limit.rounds == rounds:
            pauses.append(limit.observe("throttled", 0.001, limit.allowed, retry_after=2.0))
        assert pauses[-1] == 2.0 and not any(pauses[:-1])  # one pause per round, as long as Retry-After asks
        seen.append(limit.allowed)
    assert seen == [16, 8, 4, 2, 1, 1, 1, 1]
    assert limit.last == "throttled" and not limit.slow_start


def test_latency_rising_above_the_unloaded_level_shrinks_the_limit_towards_the_servers_capacity() -> None:
    limit = AdaptiveLimit(ceiling=32, initial=32)
    feed_round(limit, BASE)  # the unloaded latency measured; at the ceiling already
    # CorEMR can now serve 16 at once: with 32 in flight each answer waits for one ahead of it.
    assert feed_round(limit, BASE * 32 / 16) == "shrink"
    assert limit.allowed == 24 and not limit.slow_start  # a quarter at most a round: it may be a busy moment
    # The next round's first requests queued behind the 32: it only drains, whatever its latency.
    assert feed_round(limit, BASE * 32 / 16) == "drain" and limit.allowed == 24
    assert feed_round(limit, BASE * 24 / 16) == "shrink"
    assert 16 * LOW <= limit.allowed <= 16 * HIGH


def test_latency_alone_never_cuts_the_limit_below_two_a_throttle_does() -> None:
    limit = AdaptiveLimit(ceiling=4, initial=4)
    feed_round(limit, BASE)
    # A CorEMR serving one at a time: each answer waits for the one ahead of it.
    for _ in range(6):
        feed_round(limit, BASE * limit.allowed)
    assert limit.last in ("shrink", "drain") and limit.allowed == 2  # one waiting keeps it busy
    rounds = limit.rounds
    while limit.rounds == rounds:
        limit.observe("throttled", 0.001, limit.allowed)
    assert limit.allowed == 1  # CorEMR said "slow down": that is heard


def test_after_a_storm_the_limit_grows_back_by_one_a_round_not_by_doubling() -> None:
    limit = AdaptiveLimit(ceiling=16, initial=16)
    feed_round(limit, BASE)
    limit.observe("throttled", 0.001, 16, retry_after=None)
    while limit.last != "throttled":
        limit.observe("throttled", 0.001, 16)
    start = limit.allowed
    grown = [start]
    for _ in range(5):
        if feed_round(limit, BASE) == "grow":
            grown.append(limit.allowed)
    assert grown[:4] == [start, start + 1, start + 2, start + 3]


def test_a_limit_the_client_does_not_fill_does_not_grow() -> None:
    limit = AdaptiveLimit(ceiling=64, initial=8)
    for _ in range(5):  # the first round included
        assert feed_round(limit, BASE, in_flight=2) == "idle"
    assert limit.allowed == 8


def test_a_fixed_limit_is_the_ceiling_whatever_the_answers() -> None:
    fixed = FixedLimit(12)
    assert fixed.observe("throttled", 1.0, 12, retry_after=5) is None
    assert fixed.allowed == 12


# -- the controller against a model of CorEMR: N requests served at once, M each, a queue, then 429 ----------


@dataclass
class Outcome:
    """What the model server saw over a bulk load."""

    throughput_share: float  # answers per second as a share of N / M
    throttled_share: float
    p95_in_server: float
    settled: int


@dataclass
class Request:
    """One request in the model: the limit's epoch it was sent under, when it reached the server."""

    epoch: int
    arrived: float = 0.0


def bulk_load(capacity: int, service: float, requests: int, limit: Limit | None = None) -> Outcome:
    """Drive a limit (adaptive by default) through a discrete-event model of a server with CAPACITY slots of
    SERVICE seconds each and a queue of 2 x CAPACITY, beyond which it answers 429 with Retry-After: 1.

    The client keeps `limit.allowed` requests in flight while rows remain, and sends a throttled row again.
    """
    limit = limit if limit is not None else AdaptiveLimit(ceiling=256)
    network = 0.0005  # each way, on loopback
    dice = random.Random(capacity)  # service times vary by +-10%, as a real server's do
    events: list[tuple[float, int, str, Request | None]] = []
    waiting: list[Request] = []  # queued at the server, oldest first
    busy = sent = answered = throttled = seq = in_flight = 0
    now = paused_until = 0.0
    in_server: list[float] = []
    allowed: list[int] = []

    def push(at: float, kind: str, request: Request | None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, request))

    def send_more() -> None:
        nonlocal sent, in_flight
        while sent < requests and in_flight < limit.allowed and now >= paused_until:
            sent += 1
            in_flight += 1
            push(now + network, "arrive", Request(limit.epoch))

    send_more()
    while events:
        now, _, kind, request = heapq.heappop(events)
        if kind == "arrive" and request is not None:
            request.arrived = now
            if busy < capacity:
                busy += 1
                push(now + service * dice.uniform(0.9, 1.1), "served", request)
            elif len(waiting) < 2 * capacity:
                waiting.append(request)
            else:
                throttled += 1
                push(now + network, "throttled", request)
        elif kind == "served" and request is not None:
            in_server.append(now - request.arrived)
            push(now + network, "answer", request)
            if waiting:
                push(now + service * dice.uniform(0.9, 1.1), "served", waiting.pop(0))
            else:
                busy -= 1
        elif kind in ("answer", "throttled") and request is not None:  # reaches the client
            answer = "ok" if kind == "answer" else "throttled"
            rtt = 2 * network + (now - network - request.arrived)
            retry_after = 1.0 if answer == "throttled" else None
            pause = limit.observe(answer, rtt, in_flight, retry_after, request.epoch)
            in_flight -= 1
            answered += answer == "ok"
            sent -= answer == "throttled"  # the engine sends a throttled row again
            allowed.append(limit.allowed)
            if pause:
                paused_until = now + pause
                push(paused_until, "resume", None)
        send_more()
    return Outcome(
        throughput_share=answered / now / (capacity / service),
        throttled_share=throttled / (answered + throttled),
        p95_in_server=statistics.quantiles(in_server, n=20)[18],
        settled=int(statistics.median(allowed)),
    )


@pytest.mark.parametrize("capacity", [2, 4, 16, 64, 100])
def test_with_no_tuning_a_bulk_load_uses_the_servers_capacity_without_queueing_it(capacity: int) -> None:
    outcome = bulk_load(capacity, BASE, requests=300 * capacity)
    assert outcome.throughput_share >= 0.9, outcome
    assert outcome.throttled_share <= 0.01, outcome
    assert outcome.p95_in_server <= 2 * BASE, outcome
    assert capacity <= outcome.settled <= 2 * capacity, outcome


def test_the_model_is_not_flattering_fixed_limits_fail_where_adaptive_holds() -> None:
    too_many = bulk_load(4, BASE, requests=300, limit=FixedLimit(64))  # a queue of 8, then 429s
    assert too_many.throttled_share > 0.5 and too_many.p95_in_server > 2 * BASE
    too_few = bulk_load(64, BASE, requests=6400, limit=FixedLimit(8))
    assert too_few.throughput_share < 0.2


# -- the limiter: threads wait for a place, the rate ceiling, a stop ---------------------------------------------


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_never_lets_more_than_the_limit_through() -> None:
    limiter = ConcurrencyLimiter(FixedLimit(2))
    first, second = limiter.slot(), limiter.slot()
    assert first is not None and second is not None and limiter.in_flight == 2
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.slot()))
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive() and not got  # a third waits
    first.done("ok")
    waiter.join(timeout=2)
    assert got and got[0] is not None and limiter.in_flight == 2


class _BrokenLimit(FixedLimit):
    """A limit whose bookkeeping fails on an answer (a bug, say)."""

    def observe(self, *args: object, **kwargs: object) -> float | None:
        raise RuntimeError("bookkeeping failed")


def test_a_failure_while_counting_an_answer_still_frees_its_place() -> None:
    limiter = ConcurrencyLimiter(_BrokenLimit(1))
    held = limiter.slot()
    assert held is not None
    with pytest.raises(RuntimeError, match="bookkeeping failed"):  # loud, for the run to stop on ...
        held.done("ok")
    assert limiter.in_flight == 0  # ... and not a place lost, with every other thread waiting for ever
    assert limiter.slot(threading.Event()) is not None


def test_a_stop_releases_every_waiting_thread_at_once() -> None:
    limiter = ConcurrencyLimiter(FixedLimit(1))
    held = limiter.slot()
    assert held is not None
    stop = threading.Event()
    results: list[object] = []
    waiters = [threading.Thread(target=lambda: results.append(limiter.slot(stop))) for _ in range(5)]
    for w in waiters:
        w.start()
    stop.set()
    limiter.wake()
    for w in waiters:
        w.join(timeout=2)
    assert results == [None] * 5


def test_the_rate_ceiling_spaces_requests_by_one_over_max_rate() -> None:
    clock = FakeClock()
    limiter = ConcurrencyLimiter(FixedLimit(100), max_rate=4, clock=clock)
    first = limiter.slot()
    assert first is not None
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.slot()))
    waiter.start()
    waiter.join(timeout=0.3)
    assert not got  # 4 a second: the next may leave 0.25 s after the first
    clock.now = 0.25
    waiter.join(timeout=2)
    assert got and got[0] is not None
