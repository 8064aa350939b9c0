"""What CorEMR's answer to each request of a row means: the row is done, the next request, or doubt.

A row is one patient and one booking. Its requests ("steps"): `create` the patient (with its booking as
the first); `booking`, a booking create for a patient CorEMR already holds (v2, v3); `update` the patient
with a corrected body and then its `booking update` (v2, v3). Which status means "already exists" is the
assumption EXISTS_STATUS ("exists-status"); 404 for an unknown patient or booking is "other-statuses".
No I/O here: the engine sends, records and follows these verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..ledger import Action, RowState, Step
from ..protocol import EXISTS_STATUS
from ._exchange import Exchange
from ._messages import server_message
from ._retry import RETRYABLE_STATUSES

__all__ = ["NOT_FOUND_STATUS", "Verdict", "judge_answer", "no_bookings_reason"]

NOT_FOUND_STATUS = 404  # an unknown patient or booking (assumption "other-statuses")

Doubt = Literal["ambiguous", "unverified"]


@dataclass(frozen=True)
class Verdict:
    """What one answer means: `done` (STATE, ACTION), `next` (STEP), `check` (a lookup of the booking must
    confirm it exists), `doubt` (it may have landed), or `retry` (nothing landed; try again)."""

    kind: Literal["done", "next", "check", "doubt", "retry"]
    state: RowState | None = None
    action: Action | None = None
    reason: str | None = None
    step: Step | None = None
    doubt: Doubt | None = None


_DONE: dict[Step, Action] = {"create": "created", "booking": "booking added", "update": "updated",
                             "booking update": "updated"}  # fmt: skip
# A 404 to a step that names a patient or booking: what to send instead.
_IF_ABSENT: dict[Step, Step] = {"booking": "create", "update": "create", "booking update": "booking"}


def judge_answer(step: Step, ex: Exchange, *, has_booking: bool, api: str) -> Verdict:
    """What the answer EX to STEP means; HAS_BOOKING: the row's booking can go through the bookings routes."""
    if not ex.verified or ex.status is None:
        if ex.reached == "yes":
            return Verdict("doubt", doubt="unverified")
        return Verdict("doubt", doubt="ambiguous") if ex.reached == "maybe" else Verdict("retry")
    status = ex.status
    if status in RETRYABLE_STATUSES:
        return Verdict("retry")
    if 200 <= status < 300:
        if step == "update" and has_booking:
            return Verdict("next", step="booking update")  # CorEMR ignores booking fields on update
        return Verdict("done", "delivered", _DONE[step])
    if status == EXISTS_STATUS and step == "create":
        return Verdict("next", step="booking") if has_booking else Verdict("done", "rejected", reason=_exists(ex, api))
    if status == EXISTS_STATUS and step == "booking":
        return Verdict("check")  # the booking exists: a lookup confirms it is the one asked for
    if status == NOT_FOUND_STATUS and step in _IF_ABSENT:
        return Verdict("next", step=_IF_ABSENT[step])
    return Verdict("done", "rejected", reason=f"HTTP {status}: {server_message(ex.response_body)}")


def _exists(ex: Exchange, api: str) -> str:
    return f"HTTP {ex.status}: {server_message(ex.response_body)}; {no_bookings_reason(api)}"


def no_bookings_reason(api: str) -> str:
    """Why a patient CorEMR already holds cannot be given this row's booking through CWS."""
    if api == "v1":
        return (
            "the patient exists, and CorEMR API v1 has no bookings routes: this booking cannot be added or checked"
            " through CWS; add it in CorEMR by hand, then `cws-pipeline accept` the row (or use api v2)"
        )
    return "the patient exists, and the row names no booking the bookings routes can take (booking_fields)"
