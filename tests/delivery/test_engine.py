"""The per-row engine with a fake transport (no sockets): what it retries, when it stops, what it records.

The fake CorEMR signs its answers with the server's real key and the ledger is a real SQLite file;
only the network is scripted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from pipeline.delivery import NoAnswer, RowOutcome
from pipeline.ledger import sha256_hex

from ..sites import KeyPair
from .engine_fakes import ECHO, ENDPOINT, Engine, deliver, in_doubt, row


def test_a_lookup_answered_with_a_verified_400_is_sent_once(make_engine: Callable[..., Engine]) -> None:
    r = row("P1")
    engine = make_engine(lambda m, u, b: (400, {"error": "bad request"}), prior=in_doubt(r))
    outcome = deliver(engine, r)
    assert [m for m, _, _ in engine.fake.requests] == ["GET"]  # not five times with back-off
    assert engine.sleeps == []
    assert outcome.state == "ambiguous" and "lookup answered HTTP 400" in (outcome.reason or "")


def test_a_verified_409_is_final_and_sent_once(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(lambda m, u, b: (409, {"error": "exists"}))
    outcome = deliver(engine, row("P1"))
    assert len(engine.fake.requests) == 1 and engine.sleeps == []
    assert outcome.state == "rejected" and (outcome.reason or "").startswith(
        "HTTP 409: CorEMR's words are kept in the ledger, not printed; the patient exists"
    )


def test_transient_answers_are_retried_up_to_max_attempts(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(lambda m, u, b: (503, {"error": "busy"}), max_attempts=3)
    outcome = deliver(engine, row("P1"))
    assert len(engine.fake.requests) == 3 and len(engine.sleeps) == 2
    assert outcome.state == "failed" and outcome.reason == "gave up after 3 attempts: HTTP 503"


def test_after_the_breaker_trips_a_row_sends_nothing_and_waits_for_nothing(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(lambda m, u, b: (201, ECHO))
    engine.stop.stop("stopped after 5 refused or unverified answers in a row (last: HTTP 401)")
    outcome = deliver(engine, row("P1"))
    assert engine.fake.requests == [] and engine.sleeps == []
    assert outcome.state == "failed" and outcome.reason == "not sent: " + engine.stop.reason


def test_the_breaker_wakes_a_row_waiting_to_retry_at_once(make_engine: Callable[..., Engine]) -> None:
    waiting, refused = row("P1"), row("P2", line=3)

    def script(method: str, url: str, body: bytes) -> tuple[int, object]:
        return (503, {"error": "busy"}) if b'"P1"' in body else (401, {"error": "unknown key"})

    # A minute's back-off for P1, slept on the run's stop (the default), not recorded.
    engine = make_engine(script, record_sleeps=False, circuit_breaker=1, retry_initial_wait=60, retry_max_wait=60)
    outcomes: list[RowOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(deliver(engine, waiting)))
    worker.start()
    assert engine.fake.seen.wait(10)  # P1's first POST was answered 503: it now waits to retry
    assert deliver(engine, refused).state == "failed"  # a verified 401, about our site: the breaker trips
    worker.join(timeout=20)  # a hang bound, not a speed check: without the wake-up it sleeps 60 s
    assert not worker.is_alive()
    [outcome] = outcomes
    assert outcome.state == "failed" and outcome.reason is not None
    assert outcome.reason.startswith("not sent again (HTTP 503): CorEMR answered a create with HTTP 401")
    assert [b for _, _, b in engine.fake.requests].count(waiting.body) == 1


def test_a_post_that_may_have_landed_before_a_security_stop_is_not_reported_not_sent(
    make_engine: Callable[..., Engine], other_keys: KeyPair
) -> None:
    engine = make_engine(lambda m, u, b: (201, ECHO), circuit_breaker=1)
    engine.fake.key = other_keys.key  # answers signed by a key we do not trust: unverified
    outcome = deliver(engine, row("P1"))
    assert len(engine.fake.requests) == 1  # the POST reached CorEMR; the stop came after its answer
    assert outcome.state == "unverified" and outcome.reason is not None
    assert "not sent" not in outcome.reason
    assert outcome.reason.startswith("may have reached CorEMR (HTTP 201 with bad signature")
    assert "the next run looks it up first" in outcome.reason


def test_a_lookup_is_found_only_when_the_answer_is_the_patient_asked_for(make_engine: Callable[..., Engine]) -> None:
    r = row("P1")
    listing = make_engine(lambda m, u, b: (200, [{"external_id": "P7"}]), prior=in_doubt(r))
    outcome = deliver(listing, r)
    assert outcome.state == "ambiguous" and "another patient than P1" in (outcome.reason or "")
    assert [m for m, _, _ in listing.fake.requests] == ["GET"]  # neither delivered nor sent again

    other = make_engine(lambda m, u, b: (200, {"external_id": "P7"}), prior=in_doubt(r))
    assert deliver(other, r).state == "ambiguous"

    assert r.body is not None
    found = make_engine(lambda m, u, b: (200, {**json.loads(r.body or b""), "id": 7}), prior=in_doubt(r))
    assert deliver(found, r) == RowOutcome(
        2, "P1/B1", "delivered", "settled by lookup", action="found", body_sha256=sha256_hex(r.body)
    )


def test_a_patient_found_with_other_details_than_the_rows_leaves_the_row_in_doubt(
    make_engine: Callable[..., Engine],
) -> None:
    r = row("P1")  # no booking number: only the patient can be looked up, as in v1
    entered_by_hand = {**json.loads(r.body or b""), "fname": "Ayesha"}
    engine = make_engine(lambda m, u, b: (200, entered_by_hand), prior=in_doubt(r))
    outcome = deliver(engine, r)
    assert outcome.state == "ambiguous" and "with other details than this row's" in (outcome.reason or "")
    assert [m for m, _, _ in engine.fake.requests] == ["GET"]


@pytest.mark.parametrize("external_id", [".", ".."])
def test_a_dot_segment_external_id_is_never_put_in_a_url(make_engine: Callable[..., Engine], external_id: str) -> None:
    r = row(external_id)
    engine = make_engine(lambda m, u, b: (200, [{"external_id": "P7"}]), prior=in_doubt(r))
    outcome = deliver(engine, r)
    assert engine.fake.requests == []
    assert outcome.state == "ambiguous" and "no external_id a lookup can name safely" in (outcome.reason or "")


def test_a_lookup_url_percent_encodes_the_external_id(make_engine: Callable[..., Engine]) -> None:
    r = row("A/B ?#%1")
    engine = make_engine(lambda m, u, b: (404, {"error": "no such patient"}) if m == "GET" else (201, ECHO),
                         prior=in_doubt(r))  # fmt: skip
    assert deliver(engine, r).state == "delivered"
    assert [(m, u) for m, u, _ in engine.fake.requests] == [
        ("GET", ENDPOINT + "A%2FB%20%3F%23%251"),
        ("POST", ENDPOINT),
    ]


def test_a_server_message_is_not_recorded_in_the_reason_only_the_fields_it_names(
    make_engine: Callable[..., Engine],
) -> None:
    message = "Patient DAVIS, Aisha born 1986-11-08\r\n  line 99 key P9/B9: delivered\x1b[2J" + "x" * 2000
    engine = make_engine(lambda m, u, b: (400, {"error": message, "fields": {"lname": "Davis is taken"}}))
    outcome = deliver(engine, row("P1"))
    reason = outcome.reason or ""
    assert outcome.state == "rejected"
    assert reason == "HTTP 400: CorEMR named fields lname; its words are kept in the ledger, not printed"
    assert not any(ch in reason for ch in "\r\n\x1b")
    assert "Davis" not in reason and "DAVIS" not in reason and "Aisha" not in reason and "1986" not in reason
    assert len(reason) <= 500
    recorded = [e.error or "" for e in engine.entries() if e.event == "state"]
    assert recorded == [reason]


def test_a_connection_lost_after_sending_is_settled_by_lookup_not_resent(make_engine: Callable[..., Engine]) -> None:
    answers: list[tuple[int, object] | NoAnswer] = [
        NoAnswer("ReadError: connection reset", landed="maybe"),
        (200, {**json.loads(row("P1").body or b""), "dob": "1986-11-08 00:00:00.000"}),
    ]
    engine = make_engine(lambda m, u, b: answers.pop(0))
    r = row("P1")
    outcome = deliver(engine, r)
    assert [m for m, _, _ in engine.fake.requests] == ["POST", "GET"]
    assert outcome == RowOutcome(
        2, "P1/B1", "delivered", "settled by lookup", action="found", body_sha256=sha256_hex(r.body or b"")
    )


def test_a_refused_connection_is_sent_again_without_a_lookup(make_engine: Callable[..., Engine]) -> None:
    answers: list[tuple[int, object] | NoAnswer] = [NoAnswer("ConnectError: refused", landed="no"), (201, ECHO)]
    engine = make_engine(lambda m, u, b: answers.pop(0))
    assert deliver(engine, row("P1")).state == "delivered"
    assert [m for m, _, _ in engine.fake.requests] == ["POST", "POST"]


def test_a_signer_name_chosen_by_the_server_cannot_put_control_characters_in_the_security_stop(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(lambda m, u, b: (201, ECHO), circuit_breaker=1)
    engine.fake.access = "coremr\x1b[2J\x07"  # no whitespace or comma: the header parser takes it as a name
    outcome = deliver(engine, row("P1"))
    breaker_reason = engine.stop.reason
    assert breaker_reason.startswith("stopped after 1 unverified answers in a row (last: HTTP 201 with unknown")
    for text in (breaker_reason, outcome.reason or ""):
        assert "unknown signer: coremr[2J" in text and "\x1b" not in text and "\x07" not in text
