"""An answer counts only when it is bound to its request: it names what was sent, is no error, and is no replay of
an answer to another request; a refusal of our site is no verdict on the row (a fake CorEMR, a real ledger)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest

from pipeline.delivery._decisions import site_setting, unbound_answer
from pipeline.ledger import Step

from .engine_fakes import ECHO, ENDPOINT, Engine, deliver, in_doubt, row

PATIENT = b'{"external_id":"P1","fname":"Aisha","booking_no":"B1"}'
BOOKING = b'{"booking_no":"B1","booking_date":"2026-11-28 22:15:00.000"}'


@pytest.mark.parametrize(
    ("step", "answer", "request_body", "problem"),
    [
        ("create", b'{"external_id":"P1","fname":"Aisha"}', PATIENT, None),
        ("create", b'{"external_id":"P1","booking_no":"B1"}', PATIENT, None),
        ("update", b'{"external_id":"P1"}', PATIENT, None),
        ("create", b'{"external_id":"P7","fname":"Aisha"}', PATIENT, "it names another patient"),
        ("create", b'{"external_id":"P1","booking_no":"B7"}', PATIENT, "it names another booking"),
        ("create", b'{"fname":"Aisha"}', PATIENT, "it names no external_id"),
        ("create", b'{"id":7}', PATIENT, "it names no external_id"),
        ("create", b'{"error":"could not store","external_id":"P1"}', PATIENT, "its body is an error"),
        ("create", b"[]", PATIENT, "its body is not a JSON object"),
        ("create", b"", PATIENT, "its body is not JSON"),
        ("booking", b'{"booking_no":"B1"}', BOOKING, None),
        ("booking update", b'{"booking_no":"B1","external_id":"P1"}', BOOKING, None),
        ("booking", b'{"booking_no":"B1","external_id":"P7"}', BOOKING, "it names another patient"),
        ("booking", b'{"booking_no":"B7"}', BOOKING, "it names another booking"),
        ("booking", b'{"booking_date":"2026-11-28 22:15:00.000"}', BOOKING, "it names no booking number"),
    ],
)
def test_a_2xx_is_bound_to_its_request_only_when_it_names_what_was_sent(
    step: Step, answer: bytes, request_body: bytes, problem: str | None
) -> None:
    assert unbound_answer(step, answer, request_body, "P1") == problem


@pytest.mark.parametrize(
    ("step", "status", "setting"),
    [("create", 401, "access and private_key"), ("lookup", 403, "access and private_key"), ("create", 302, "base_url"),
     ("update", 307, "base_url"), ("create", 404, "base_url"), ("update", 404, None), ("booking", 404, None),
     ("lookup", 404, None), ("create", 400, None), ("create", 409, None), ("create", 422, None), ("create", 201, None)],
)  # fmt: skip
def test_which_answers_are_refusals_of_our_site(step: str, status: int, setting: str | None) -> None:
    assert site_setting(step, status) == setting  # type: ignore[arg-type]


def test_an_answer_already_received_for_another_request_is_a_replay_not_a_delivery(
    make_engine: Callable[..., Engine],
) -> None:
    # One patient, two bookings (two row keys) sent as creates: CorEMR answers both with the same signed bytes.
    first, second = row("P1"), row("P1", line=3, fname="Aysha")
    second = dataclasses.replace(second, key="P1/B2")
    engine = make_engine(
        lambda m, u, b: (404, {"error": "no such patient"}) if m == "GET" else (201, {"external_id": "P1"})
    )
    assert deliver(engine, first).state == "delivered"
    outcome = deliver(engine, second)
    assert outcome.state == "ambiguous" and outcome.reason is not None
    assert "a replay" in outcome.reason
    assert [m for m, _, _ in engine.fake.requests].count("GET") >= 1  # each try after a replay looks it up first


def test_the_same_request_sent_again_may_get_the_same_answer(make_engine: Callable[..., Engine]) -> None:
    answers = iter([(503, {"error": "busy"}), (201, ECHO), (201, ECHO)])
    engine = make_engine(lambda m, u, b: next(answers))
    assert deliver(engine, row("P1")).state == "delivered"
    update = make_engine(lambda m, u, b: (200, ECHO))
    assert deliver(update, row("P2")).state == "delivered"  # one answer per request, however alike their bytes


@pytest.mark.parametrize("status", [401, 403, 302, 404])
def test_a_refusal_of_our_site_stops_the_run_and_leaves_the_row_sendable(
    make_engine: Callable[..., Engine], status: int
) -> None:
    engine = make_engine(lambda m, u, b: (status, {"error": "no"}))
    outcome = deliver(engine, row("P1"))
    assert outcome.state == "failed" and outcome.reason is not None
    assert engine.stop.stopped and f"HTTP {status}" in engine.stop.reason
    assert outcome.reason == f"not sent again (HTTP {status}): {engine.stop.reason}"
    assert len(engine.fake.requests) == 1  # nothing sent after it


def test_a_refused_lookup_stops_the_run_and_the_row_stays_in_doubt(make_engine: Callable[..., Engine]) -> None:
    r = row("P1")
    engine = make_engine(lambda m, u, b: (401, {"error": "bad signature"}), prior=in_doubt(r))
    outcome = deliver(engine, r)
    assert outcome.state == "ambiguous" and engine.stop.stopped
    assert [m for m, _, _ in engine.fake.requests] == ["GET"]


def test_a_long_run_of_busy_answers_stops_the_run(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(lambda m, u, b: (503, {"error": "busy"}), max_attempts=2, circuit_breaker=2)
    outcomes = [deliver(engine, row(f"P{i}", line=2 + i)) for i in range(8)]
    assert engine.stop.stopped and "answers in a row refusing to process (last: HTTP 503)" in engine.stop.reason
    assert len(engine.fake.requests) == 10  # 2 x 5: the breaker's threshold of busy answers
    assert {o.state for o in outcomes} == {"failed"}


def test_a_lookup_of_another_patient_with_the_asked_booking_number_is_not_found(
    make_engine: Callable[..., Engine],
) -> None:
    r = row("P1", booking_no="B1", booking_date="2026-11-28 22:15:00.000", facility="10000")
    other = {"booking_no": "B1", "external_id": "P7"}
    engine = make_engine(lambda m, u, b: (200, other), prior=in_doubt(r))
    outcome = deliver(engine, r)
    assert outcome.state == "ambiguous" and "another booking than B1" in (outcome.reason or "")
    assert [(m, u) for m, u, _ in engine.fake.requests] == [("GET", ENDPOINT + "P1/bookings/B1")]
    assert json.loads(engine.fake.requests[0][2] or b"{}") == {}
