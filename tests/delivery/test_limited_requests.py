"""Every request of a run takes a place from the run's limiter and reports its answer (fake transport, no sockets)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from pipeline.delivery import RowOutcome
from pipeline.delivery._engine import Delivery
from pipeline.delivery._pacing import AdaptiveLimit, ConcurrencyLimiter, FixedLimit, RunStop, answer_kind
from pipeline.delivery._run import Dispatcher, Tally, workers_for
from pipeline.delivery._transport import Answer
from pipeline.protocol import CWSAuth

from .engine_fakes import ECHO, ENDPOINT, Engine, FakeCorEMR, Script, in_doubt, row
from .test_concurrency import FakeClock


def answering(status: int) -> Script:
    """A CorEMR that answers STATUS to every request: a lookup's body names P1, a 2xx to a POST is the patient
    sent, any other answer says busy."""

    def answer(method: str, url: str, body: bytes) -> tuple[int, object]:
        if method == "GET":
            return status, {"external_id": "P1"}
        return status, (ECHO if 200 <= status < 300 else {"error": "busy"})

    return answer


@dataclass
class Limited:
    """A Delivery whose requests go through LIMITER to a fake CorEMR."""

    delivery: Delivery
    fake: FakeCorEMR
    stop: RunStop
    limiter: ConcurrencyLimiter


@pytest.fixture
def make_limited(make_engine: Callable[..., Engine]) -> Callable[..., Limited]:
    def make(limiter: ConcurrencyLimiter, status: int, headers: tuple[tuple[str, str], ...] = (),
             prior: dict[str, tuple[Any, ...]] | None = None, **settings: Any) -> Limited:  # fmt: skip
        engine = make_engine(answering(status), prior, limiter=limiter, answer_headers=headers, **settings)
        return Limited(engine.delivery, engine.fake, engine.stop, limiter)

    return make


def deliver(limited: Limited, r: Any) -> RowOutcome:
    plan, sha = limited.delivery.plan(r)
    assert sha is not None
    return limited.delivery.deliver(r, plan, sha)


@pytest.mark.parametrize(
    ("status", "retry_after", "kind"),
    [(None, None, "failed"), (429, None, "throttled"), (503, None, "throttled"), (200, 5.0, "throttled"),
     (500, None, "ok"), (201, None, "ok"), (404, None, "ok")],
)  # fmt: skip
def test_what_an_answer_tells_the_limit(status: int | None, retry_after: float | None, kind: str) -> None:
    assert answer_kind(status, retry_after) == kind


def test_a_lookup_waits_for_a_place_and_a_stop_while_it_waits_ends_the_row_unsent(
    make_limited: Callable[..., Limited],
) -> None:
    r = row("P1")
    limited = make_limited(ConcurrencyLimiter(FixedLimit(1)), 200, prior=in_doubt(r))
    held = limited.limiter.slot()  # the run's only place is taken
    assert held is not None
    outcomes: list[RowOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(deliver(limited, r)))
    worker.start()
    worker.join(timeout=0.3)
    assert worker.is_alive() and limited.fake.requests == []  # the lookup waits for the place
    limited.stop.stop("stopped after 5 refused or unverified answers in a row (last: HTTP 401)")
    worker.join(timeout=20)  # a hang bound: the stop wakes it at once (a lost wake-up would wait 0.5 s more)
    assert not worker.is_alive() and limited.fake.requests == []
    [outcome] = outcomes
    assert outcome.state == "ambiguous" and "before a lookup settled it" in (outcome.reason or "")


def test_a_post_waits_for_a_place_and_goes_once_one_is_free(make_limited: Callable[..., Limited]) -> None:
    limited = make_limited(ConcurrencyLimiter(FixedLimit(1)), 201)
    held = limited.limiter.slot()
    assert held is not None
    outcomes: list[RowOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(deliver(limited, row("P1"))))
    worker.start()
    worker.join(timeout=0.3)
    assert worker.is_alive() and limited.fake.requests == []
    held.done("ok")
    worker.join(timeout=20)
    assert [o.state for o in outcomes] == ["delivered"]
    assert [(m, u) for m, u, _ in limited.fake.requests] == [("POST", ENDPOINT)]
    assert limited.limiter.in_flight == 0  # the answer freed the place


def test_429s_halve_the_adaptive_limit_and_pause_sending_for_retry_after_capped(
    make_limited: Callable[..., Limited],
) -> None:
    clock = FakeClock()
    limiter = ConcurrencyLimiter(AdaptiveLimit(ceiling=8, initial=4), clock=clock)
    limited = make_limited(limiter, 429, (("Retry-After", "600"),), max_attempts=1, retry_after_cap=2)
    for i in range(4):  # one round of answers at a limit of 4, every one a 429
        outcome = deliver(limited, row(f"P{i}", line=2 + i))
        assert outcome.state == "failed" and outcome.reason == "gave up after 1 attempts: HTTP 429"
    assert limiter.limit.allowed == 2 and limiter.limit.last == "throttled"
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.slot()))
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive()  # nothing new leaves during the pause ...
    clock.now += 2.0  # ... of retry_after_cap, not the 600 s asked
    waiter.join(timeout=20)
    assert got and got[0] is not None


def test_while_every_place_is_taken_a_spare_worker_has_the_next_request_signed(
    make_limited: Callable[..., Limited], monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = ConcurrencyLimiter(FixedLimit(2))
    limited = make_limited(limiter, 201)
    release = threading.Event()
    answer = limited.fake.send
    on_the_wire: list[bytes] = []

    def held(method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Answer:
        on_the_wire.append(body)
        release.wait(20)
        return answer(method, url, body, headers)

    limited.fake.send = held  # type: ignore[method-assign]
    signed: list[bytes] = []
    sign = CWSAuth.authorization_for

    def signing(auth: CWSAuth, body: bytes) -> str:
        signed.append(body)
        return sign(auth, body)

    monkeypatch.setattr(CWSAuth, "authorization_for", signing)
    rows = [row(f"P{i}", line=2 + i) for i in range(6)]
    tally = Tally()
    dispatcher = Dispatcher(limited.delivery, limited.stop, limiter, tally)
    runner = threading.Thread(target=dispatcher.run, args=(iter([rows]),))
    runner.start()
    try:
        waited = 0.0
        while (len(signed) < 3 or len(on_the_wire) < 2) and waited < 20:  # a busy machine signs in any order
            time.sleep(0.01)
            waited += 0.01
        # Both places are taken and held; a third request is already signed, waiting for one of them.
        assert limiter.in_flight == 2 and len(on_the_wire) == 2 and len(signed) == 3
    finally:
        release.set()
        runner.join(timeout=30)
    assert sum(tally.counts.values()) == 6 and len(limited.fake.requests) == 6
    assert limiter.peak == 2  # the spare worker never adds a request in flight
    assert workers_for(32) == 36 and workers_for(2) == 3
    assert workers_for(1) == 1  # one at a time stays in the file's order


def test_one_at_a_time_sends_the_rows_in_the_files_order(make_limited: Callable[..., Limited]) -> None:
    limiter = ConcurrencyLimiter(AdaptiveLimit(ceiling=1, initial=1))
    limited = make_limited(limiter, 201)
    rows = [row(f"P{i}", line=2 + i) for i in range(24)]
    Dispatcher(limited.delivery, limited.stop, limiter, Tally()).run(iter([rows]))
    sent = [json.loads(body)["external_id"] for _, _, body in limited.fake.requests]
    assert sent == [f"P{i}" for i in range(24)]
