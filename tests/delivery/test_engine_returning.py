"""The engine's multi-step flow with a fake CorEMR: an existing patient gets its booking, a booking in doubt is
settled by its lookup, a correction is sent as an update, and every request that can change CorEMR is
recorded (naming its step) before it leaves."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pipeline.delivery import NoAnswer, RowOutcome
from pipeline.delivery._decisions import Target
from pipeline.ledger import sha256_hex
from pipeline.mapping import MappedRow
from pipeline.protocol import API_PROFILES

from .engine_fakes import ECHO, ENDPOINT, Engine, deliver, row

BOOKINGS = ENDPOINT + "P1/bookings/"
BOOKING = BOOKINGS + "B1"
Answered = tuple[int, object] | NoAnswer


def booked(line: int = 2, **fields: str) -> MappedRow:
    """A v2 row of patient P1 with booking B1."""
    return row("P1", line, booking_no="B1", booking_date="2026-11-28 22:15:00.000", facility="10000", **fields)


def scripted(answers: dict[tuple[str, str], list[Answered]]) -> Callable[[str, str, bytes], Answered]:
    """Answer each (method, url) from its own list, in order."""
    return lambda method, url, body: answers[(method, url)].pop(0)


def sent(engine: Engine) -> list[tuple[str, str]]:
    return [(m, u) for m, u, _ in engine.fake.requests]


def delivered_before(r: MappedRow, key: str | None = None, sha: str = "d" * 64, run_id: int = 1) -> dict[str, Any]:
    """What an earlier run left: KEY (default: this row's) delivered with body SHA by RUN_ID."""
    key = key or r.key
    return {key: (key, r.external_id, "delivered", sha, sha, run_id, r.line, None, None, run_id, "created", "create")}


def test_a_create_refused_as_existing_adds_the_booking_through_the_bookings_route(
    make_engine: Callable[..., Engine],
) -> None:
    r = booked()
    engine = make_engine(
        scripted({("POST", ENDPOINT): [(409, {"error": "exists"})], ("POST", BOOKINGS): [(201, ECHO)]})
    )
    outcome = deliver(engine, r)
    assert outcome.state == "delivered" and outcome.action == "booking added"
    assert sent(engine) == [("POST", ENDPOINT), ("POST", BOOKINGS)]
    booking_body = engine.fake.requests[1][2]
    assert booking_body == b'{"facility":"10000","booking_no":"B1","booking_date":"2026-11-28 22:15:00.000"}'


def test_a_booking_already_there_is_found_by_a_lookup_and_nothing_is_sent_twice(
    make_engine: Callable[..., Engine],
) -> None:
    answers: dict[tuple[str, str], list[Answered]] = {
        ("POST", ENDPOINT): [(409, {"error": "exists"})],
        ("POST", BOOKINGS): [(409, {"error": "this patient already has a booking with this number"})],
        ("GET", BOOKING): [(200, {"booking_no": "B1", "booking_date": "2026-11-28 22:15:00.000"})],
    }
    engine = make_engine(scripted(answers))
    outcome = deliver(engine, booked())
    assert (outcome.state, outcome.action) == ("delivered", "found")
    assert sent(engine) == [("POST", ENDPOINT), ("POST", BOOKINGS), ("GET", BOOKING)]


@pytest.mark.parametrize("lookup", [(404, {"error": "no booking"}), (200, {"booking_no": "B7"})])
def test_a_booking_refused_as_existing_that_its_lookup_does_not_find_is_rejected(
    make_engine: Callable[..., Engine], lookup: tuple[int, object]
) -> None:
    answers: dict[tuple[str, str], list[Answered]] = {
        ("POST", ENDPOINT): [(409, {})], ("POST", BOOKINGS): [(409, {})], ("GET", BOOKING): [lookup],
    }  # fmt: skip
    outcome = deliver(make_engine(scripted(answers)), booked())
    assert outcome.state == "rejected" and "refused booking B1 as existing, yet its lookup" in (outcome.reason or "")


def test_a_person_the_ledger_knows_gets_the_booking_without_a_doomed_create(make_engine: Callable[..., Engine]) -> None:
    r = booked()
    engine = make_engine(scripted({("POST", BOOKINGS): [(201, ECHO)]}), prior=delivered_before(r, key="P1/B0"))
    outcome = deliver(engine, r)
    assert (outcome.state, outcome.action) == ("delivered", "booking added")
    assert sent(engine) == [("POST", BOOKINGS)]


def test_a_booking_for_a_patient_coremr_no_longer_holds_creates_the_patient_once_a_read_finds_none(
    make_engine: Callable[..., Engine],
) -> None:
    r = booked()
    answers: dict[tuple[str, str], list[Answered]] = {
        ("POST", BOOKINGS): [(404, {"error": "no such patient"})], ("GET", ENDPOINT + "P1"): [(404, {})],
        ("POST", ENDPOINT): [(201, ECHO)],
    }  # fmt: skip
    engine = make_engine(scripted(answers), prior=delivered_before(r, key="P1/B0"))
    assert deliver(engine, r).action == "created"
    assert sent(engine) == [("POST", BOOKINGS), ("GET", ENDPOINT + "P1"), ("POST", ENDPOINT)]


def test_answers_that_contradict_each_other_end_the_row_after_one_create(make_engine: Callable[..., Engine]) -> None:
    answers: dict[tuple[str, str], list[Answered]] = {
        ("POST", ENDPOINT): [(409, {})] * 5, ("POST", BOOKINGS): [(404, {})] * 5, ("GET", ENDPOINT + "P1"): [(404, {})],
    }  # fmt: skip
    engine = make_engine(scripted(answers))
    outcome = deliver(engine, booked())
    assert outcome.state == "rejected" and "contradict" in (outcome.reason or "")
    assert sent(engine) == [("POST", ENDPOINT), ("POST", BOOKINGS), ("GET", ENDPOINT + "P1")]  # never a 2nd create


@pytest.mark.parametrize(
    ("lookup", "then", "action"),
    [((200, {"booking_no": "B1"}), [], "found"), ((404, {"error": "no booking"}), [(201, ECHO)], "booking added")],
)
def test_a_booking_in_doubt_is_settled_by_its_lookup(
    make_engine: Callable[..., Engine], lookup: tuple[int, object], then: list[Answered], action: str
) -> None:
    r = booked()
    dropped = NoAnswer("ReadError: connection reset", landed="maybe")
    answers: dict[tuple[str, str], list[Answered]] = {
        ("POST", ENDPOINT): [(409, {})], ("POST", BOOKINGS): [dropped, *then], ("GET", BOOKING): [lookup],
    }  # fmt: skip
    engine = make_engine(scripted(answers))
    outcome = deliver(engine, r)
    assert (outcome.state, outcome.action) == ("delivered", action)
    expected = [("POST", ENDPOINT), ("POST", BOOKINGS), ("GET", BOOKING)] + [("POST", BOOKINGS)] * len(then)
    assert sent(engine) == expected


def test_a_booking_left_sending_by_a_killed_run_is_looked_up_by_booking_not_by_patient(
    make_engine: Callable[..., Engine],
) -> None:
    r = booked()
    assert r.body is not None
    sha = sha256_hex(r.body)
    prior = {r.key: (r.key, "P1", "sending", sha, None, 1, 2, None, None, None, None, "booking")}
    engine = make_engine(scripted({("GET", BOOKING): [(404, {})], ("POST", BOOKINGS): [(201, ECHO)]}), prior=prior)
    assert deliver(engine, r).action == "booking added"
    assert sent(engine) == [("GET", BOOKING), ("POST", BOOKINGS)]  # no create: the patient was known to exist


def test_every_request_that_can_change_coremr_is_recorded_with_its_step_before_it_leaves(
    make_engine: Callable[..., Engine],
) -> None:
    answers: dict[tuple[str, str], list[Answered]] = {
        ("POST", ENDPOINT): [(409, {})], ("POST", BOOKINGS): [(409, {})],
        ("GET", BOOKING): [(200, {"booking_no": "B1"})],
    }  # fmt: skip
    engine = make_engine(scripted(answers))
    deliver(engine, booked())
    events = [(e.event, e.method, json.loads(e.detail or "{}")) for e in engine.entries() if e.key]
    assert events == [
        ("sending", "POST", {"step": "create"}),
        ("attempt", "POST", {"step": "create"}),
        ("sending", "POST", {"step": "booking"}),
        ("attempt", "POST", {"step": "booking"}),
        ("lookup", "GET", {}),
        ("state", "GET", {"action": "found"}),
    ]
    booking_intent = [e for e in engine.entries() if e.event == "sending"][1]
    assert engine.ledger.body(booking_intent.request_sha256) == engine.fake.requests[1][2]  # the bytes that left


def test_a_correction_is_sent_as_an_update_of_the_patient_and_of_its_booking(
    make_engine: Callable[..., Engine],
) -> None:
    r = booked(weight="151")
    answers: dict[tuple[str, str], list[Answered]] = {
        ("POST", ENDPOINT + "P1"): [(200, {"external_id": "P1"})], ("POST", BOOKING): [(200, {"booking_no": "B1"})],
    }  # fmt: skip
    engine = make_engine(scripted(answers), prior=delivered_before(r), target=Target.default(ENDPOINT, "update"))
    plan, sha = engine.delivery.plan(r)
    assert plan == "send" and sha is not None
    outcome = engine.delivery.deliver(r, plan, sha)
    assert (outcome.state, outcome.action) == ("delivered", "updated")
    assert sent(engine) == [("POST", ENDPOINT + "P1"), ("POST", BOOKING)]
    assert engine.fake.requests[0][2] == r.body  # the whole corrected body, booking fields and all


def test_a_v1_correction_is_one_put(make_engine: Callable[..., Engine]) -> None:
    r = row("P1", booking_number="B1", weight="151")
    v1 = Target(API_PROFILES["v1"].routes.at(ENDPOINT), on_change="update", api="v1")
    engine = make_engine(scripted({("PUT", ENDPOINT + "P1"): [(200, ECHO)]}), prior=delivered_before(r), target=v1)
    plan, sha = engine.delivery.plan(r)
    assert sha is not None and engine.delivery.deliver(r, plan, sha).action == "updated"
    assert sent(engine) == [("PUT", ENDPOINT + "P1")]


def test_an_update_in_doubt_is_sent_again_without_a_lookup(make_engine: Callable[..., Engine]) -> None:
    r = booked(weight="151")
    assert r.body is not None
    prior = delivered_before(r)
    prior[r.key] = (*prior[r.key][:2], "ambiguous", sha256_hex(r.body), *prior[r.key][4:11], "update")
    answers: dict[tuple[str, str], list[Answered]] = {
        ("POST", ENDPOINT + "P1"): [(200, ECHO)], ("POST", BOOKING): [(200, ECHO)],
    }  # fmt: skip
    engine = make_engine(scripted(answers), prior=prior)  # the policy is hold: the update began is finished
    assert engine.delivery.plan(r)[0] == "settle"
    assert deliver(engine, r).action == "updated"
    assert sent(engine) == [("POST", ENDPOINT + "P1"), ("POST", BOOKING)]


def test_an_update_of_a_patient_coremr_does_not_hold_creates_it(make_engine: Callable[..., Engine]) -> None:
    r = booked(weight="151")
    answers: dict[tuple[str, str], list[Answered]] = {
        ("POST", ENDPOINT + "P1"): [(404, {})], ("POST", ENDPOINT): [(201, ECHO)],
    }  # fmt: skip
    engine = make_engine(scripted(answers), prior=delivered_before(r), target=Target.default(ENDPOINT, "update"))
    plan, sha = engine.delivery.plan(r)
    assert sha is not None and engine.delivery.deliver(r, plan, sha).action == "created"


def test_a_held_change_names_the_run_that_delivered_the_body_it_differs_from(
    make_engine: Callable[..., Engine],
) -> None:
    r = booked(weight="151")
    prior = delivered_before(r, run_id=3)
    prior[r.key] = (*prior[r.key][:2], "changed", "e" * 64, prior[r.key][4], 9, *prior[r.key][6:])  # reported in 9
    engine = make_engine(scripted({}), prior=prior)
    plan, sha = engine.delivery.plan(r)
    assert plan == "changed"
    [outcome] = engine.delivery.record_many_without_sending([(r, plan, sha)])
    assert outcome == RowOutcome(
        2, "P1/B1", "changed", 'delivered in run 3 with a different body; held (on_change = "hold"): not sent',
        body_sha256=sha,
    )  # fmt: skip
    assert engine.fake.requests == []


def test_a_body_in_doubt_found_landed_is_then_corrected_under_the_update_policy(
    make_engine: Callable[..., Engine],
) -> None:
    r = booked(weight="151")
    prior = {r.key: (r.key, "P1", "ambiguous", "a" * 64, None, 1, 2, None, None, None, None, "create")}
    answers: dict[tuple[str, str], list[Answered]] = {
        ("GET", BOOKING): [(200, {"booking_no": "B1"})], ("POST", ENDPOINT + "P1"): [(200, ECHO)],
        ("POST", BOOKING): [(200, ECHO)],
    }  # fmt: skip
    engine = make_engine(scripted(answers), prior=prior, target=Target.default(ENDPOINT, "update"))
    assert deliver(engine, r).action == "updated"
    assert sent(engine) == [("GET", BOOKING), ("POST", ENDPOINT + "P1"), ("POST", BOOKING)]


def test_v1_an_existing_patient_is_rejected_saying_its_booking_cannot_be_added_through_cws(
    make_engine: Callable[..., Engine],
) -> None:
    v1 = Target(API_PROFILES["v1"].routes.at(ENDPOINT), api="v1")
    engine = make_engine(scripted({("POST", ENDPOINT): [(409, {"error": "exists"})]}), target=v1)
    outcome = deliver(engine, row("P1", booking_number="B1"))
    assert outcome.state == "rejected" and len(engine.fake.requests) == 1
    assert "CorEMR API v1 has no bookings routes" in (outcome.reason or "")
