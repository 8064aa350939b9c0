"""Planning against what earlier runs left (PriorRows): what each row needs, decided without I/O."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.delivery._decisions import (
    changed_reason,
    keeps_recorded_status,
    plan,
    rejected_again_reason,
    renumbered_reason,
)
from pipeline.ledger import PriorRow, PriorRows, sha256_hex
from pipeline.mapping import MappedRow, RowProblem

BODY = b'{"external_id":"P1","fname":"Ann"}'
SHA = sha256_hex(BODY)
OTHER = sha256_hex(b'{"external_id":"P1","fname":"Anne"}')
KEY = "P1/B1"


def row(body: bytes | None = BODY, problems: tuple[RowProblem, ...] = ()) -> MappedRow:
    return MappedRow(2, KEY, "P1", body, problems, ("ID",), ("P1",))


def prior(state: str, body_sha: str | None = SHA, delivered: str | None = None, **more: Any) -> PriorRows:
    fields = {"reason": None, "cells_sha256": None, "step": None, **more}
    return PriorRows({KEY: (KEY, "P1", state, body_sha, delivered, 1, 2, fields["reason"], fields["cells_sha256"],
                            1 if delivered else None, None, fields["step"])})  # fmt: skip


def test_a_row_with_no_body_is_invalid() -> None:
    problem = RowProblem(line=2, field="dob", column="DOB", value=None, expected="a date")
    assert plan(row(None, (problem,)), PriorRows({})) == ("invalid", None)


def test_a_row_no_earlier_run_knows_is_sent() -> None:
    assert plan(row(), PriorRows({})) == ("send", SHA)


@pytest.mark.parametrize(("delivered", "expected"), [(SHA, "skipped"), (OTHER, "changed")])
def test_a_row_delivered_earlier_is_skipped_when_identical_and_changed_when_not(delivered: str, expected: str) -> None:
    assert plan(row(), prior("delivered", delivered, delivered)) == (expected, SHA)


@pytest.mark.parametrize("state", ["sending", "ambiguous", "unverified"])
def test_a_row_whose_earlier_request_may_have_landed_is_settled_first(state: str) -> None:
    assert plan(row(), prior(state)) == ("settle", SHA)


def test_a_row_rejected_with_the_same_body_is_not_sent_again_but_a_changed_one_is() -> None:
    assert plan(row(), prior("rejected", SHA)) == ("rejected_again", SHA)
    assert plan(row(), prior("rejected", OTHER)) == ("send", SHA)


@pytest.mark.parametrize("state", ["failed", "invalid"])
def test_a_row_that_failed_or_was_invalid_before_is_sent(state: str) -> None:
    assert plan(row(), prior(state)) == ("send", SHA)


def test_a_skipped_row_keeps_its_status_only_when_body_and_cells_are_those_recorded() -> None:
    recorded = prior("delivered", SHA, SHA, cells_sha256="c1").recorded(KEY)
    assert keeps_recorded_status(recorded, SHA, "c1")
    assert not keeps_recorded_status(recorded, SHA, "c2")
    assert not keeps_recorded_status(recorded, OTHER, "c1")
    assert not keeps_recorded_status(prior("ambiguous", SHA, SHA, cells_sha256="c1").recorded(KEY), SHA, "c1")
    assert not keeps_recorded_status(prior("delivered", SHA, SHA).recorded(KEY), SHA, "c1")  # no cells recorded
    assert not keeps_recorded_status(None, SHA, "c1")


def test_the_reason_for_a_repeated_rejection_names_the_refusing_run_and_never_grows() -> None:
    first = PriorRow(KEY, "P1", "rejected", SHA, None, 1, 2, "HTTP 409: exists")
    reason = rejected_again_reason(first)
    assert reason == "rejected earlier with the same body (run 1): HTTP 409: exists"
    # The next night reads back what this night recorded (as run 2): the same words, the same run.
    second = first._replace(run_id=2, reason=reason)
    assert rejected_again_reason(second) == reason
    # A ledger from before the fix: the reason grew each night. The innermost run and message are kept.
    grown = first._replace(run_id=5, reason="rejected earlier with the same body (run 4): " + reason)
    assert rejected_again_reason(grown) == reason


def test_a_row_repeating_an_earlier_lines_booking_is_a_duplicate_whatever_earlier_runs_left() -> None:
    repeated = MappedRow(5, KEY, "P1", BODY, (), ("ID",), ("P1",), duplicate_of=2)
    assert plan(repeated, PriorRows({})) == ("duplicate", SHA)
    assert plan(repeated, prior("delivered", OTHER, OTHER)) == ("duplicate", SHA)


def test_under_the_update_policy_a_changed_row_is_sent_and_under_hold_it_is_held() -> None:
    assert plan(row(), prior("delivered", OTHER, OTHER), "update") == ("send", SHA)
    assert plan(row(), prior("delivered", OTHER, OTHER), "hold") == ("changed", SHA)
    assert plan(row(), prior("delivered", SHA, SHA), "update") == ("skipped", SHA)


def test_a_refused_correction_is_not_sent_again_unchanged() -> None:
    assert plan(row(), prior("rejected", SHA, OTHER), "update") == ("rejected_again", SHA)


def test_an_update_in_doubt_is_settled_even_when_the_export_went_back_to_the_delivered_body() -> None:
    assert plan(row(), prior("ambiguous", OTHER, SHA, step="update"), "hold") == ("settle", SHA)


def test_a_held_change_names_the_run_that_delivered_its_body_not_the_last_that_reported_it() -> None:
    p = PriorRow(KEY, "P1", "changed", SHA, OTHER, 9, 2, None, None, delivered_run_id=3, action="created")
    assert changed_reason(p) == 'delivered in run 3 with a different body; held (on_change = "hold"): not sent'
    accepted = p._replace(action="accepted")
    assert changed_reason(accepted).startswith("accepted after run 3 with a different body")
    assert changed_reason(p._replace(delivered_run_id=None)).startswith("delivered in an earlier run")


@pytest.mark.parametrize(
    "reason",
    ["HTTP 401: bad signature", "HTTP 403: forbidden", "HTTP 404: no such route: /cws/ws/patients/",
     "HTTP 302: moved", "HTTP 501: not implemented",
     "rejected earlier with the same body (run 3): rejected earlier with the same body (run 2): HTTP 401: bad"],
)  # fmt: skip
def test_a_row_an_older_version_recorded_rejected_for_a_refusal_of_our_site_is_sent_again(reason: str) -> None:
    assert plan(row(), prior("rejected", SHA, reason=reason)) == ("send", SHA)
    # a correction refused so after a delivery is sent again too
    assert plan(row(), prior("rejected", SHA, OTHER, reason=reason), "update") == ("send", SHA)


@pytest.mark.parametrize(
    "reason", ["HTTP 400: invalid patient (dob: not a date)", "HTTP 422: bad", "HTTP 409: exists; the patient exists",
               "rejected earlier with the same body (run 2): HTTP 400: invalid", None],
)  # fmt: skip
def test_a_row_refused_for_its_data_stays_rejected(reason: str | None) -> None:
    assert plan(row(), prior("rejected", SHA, reason=reason)) == ("rejected_again", SHA)


def renumbered(external_id: str) -> MappedRow:
    body = BODY.replace(b'"P1"', f'"{external_id}"'.encode())
    return MappedRow(2, KEY, external_id, body, (), ("ID",), (external_id,))


@pytest.mark.parametrize("on_change", ["hold", "update"])
@pytest.mark.parametrize("state", ["delivered", "changed", "ambiguous", "rejected"])
def test_a_delivered_row_whose_external_id_changed_is_held_whatever_on_change_says(on_change: str, state: str) -> None:
    moved = renumbered("X9")
    assert plan(moved, prior(state, OTHER, OTHER), on_change) == ("renumbered", sha256_hex(moved.body or b""))  # type: ignore[arg-type]


def test_the_reason_for_a_renumbered_row_names_both_external_ids_and_what_to_do() -> None:
    p = prior("delivered", OTHER, OTHER).get(KEY)
    reason = renumbered_reason(p, renumbered("X9"))
    assert reason.startswith("the external_id changed from P1 to X9 since it was delivered in run 1:")
    assert "merged or renumbered" in reason and "`cws-pipeline accept`" in reason
