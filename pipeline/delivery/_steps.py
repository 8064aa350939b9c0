"""What CorEMR's answer to each request of a row means: the row is done, the next request, or doubt.

A row is one patient and one booking. Its requests ("steps"): `create` the patient (with its booking as
the first); `booking`, a booking create for a patient CorEMR already holds (v2, v3, where the site has the
bookings routes); `update` the patient with a corrected body and then, when a booking field changed, its
`booking update`. Which statuses mean "already exists" is the site's setting `exists_status` (assumption
"exists-status", [409] by default); 404 for an unknown patient or booking is "other-statuses". A 404 from a
bookings route is never read as "no such patient" on its own word: a route that is not there answers 404
too, so the engine reads the patient first (`read_patient`). No I/O here: the engine sends, records and
follows these verdicts.

Two kinds of refusal. One about the row's data (400, 409, 422...) makes it `rejected`. One about our
site (401/403: our key or Access name; any 3xx or a 404 to a create: the base_url; see `site_setting`)
says nothing about the row: the run stops and the row stays sendable. And a 2xx counts only once it is
bound to its request (`unbound_answer`): it names the external_id (or booking number) sent, and is no
error. A 2xx that is not may or may not have stored anything: the row is in doubt, settled by a lookup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ..ledger import Action, RowState, Step
from ..protocol import EXISTS_STATUS
from ._exchange import Exchange
from ._messages import server_message
from ._retry import RETRYABLE_STATUSES

__all__ = [
    "NOT_FOUND_STATUS",
    "Verdict",
    "judge_answer",
    "no_bookings_reason",
    "no_bookings_route_reason",
    "rebooking_held_reason",
    "site_setting",
    "unbound_answer",
]

NOT_FOUND_STATUS = 404  # an unknown patient or booking (assumption "other-statuses")

Doubt = Literal["ambiguous", "unverified"]


@dataclass(frozen=True)
class Verdict:
    """What one answer means: `done` (STATE, ACTION), `next` (STEP), `check` (a lookup of the booking must
    confirm it exists), `doubt` (it may have landed), `retry` (nothing landed; try again), `site` (a
    refusal of our site, not of the row: the run stops; REASON names the setting to check), `exists` (the
    patient exists and its booking cannot go through bookings routes: the engine holds or updates), or
    `read_patient` (a bookings route answered 404: a read of the patient tells a missing patient from a
    missing route)."""

    kind: Literal["done", "next", "check", "doubt", "retry", "site", "exists", "read_patient"]
    state: RowState | None = None
    action: Action | None = None
    reason: str | None = None
    step: Step | None = None
    doubt: Doubt | None = None


_DONE: dict[Step, Action] = {"create": "created", "booking": "booking added", "update": "updated",
                             "booking update": "updated"}  # fmt: skip
# A 404 to a step that names a patient or booking: what to send instead.
# (A 404 to a booking create is read by reading the patient first: `read_patient`.)
_IF_ABSENT: dict[Step, Step] = {"update": "create", "booking update": "booking"}


def site_setting(step: Step | Literal["lookup"], status: int) -> str | None:
    """The settings to check when STATUS, answered to STEP, is a refusal of our site rather than of the row;
    None when it is about the row (or not a refusal). For now any 404 to a create is a route that is not
    there (a 404 to an update, a booking or a lookup still means "no such patient or booking")."""
    if status in (401, 403):
        return "access and private_key"
    if 300 <= status < 400 or (status == NOT_FOUND_STATUS and step == "create"):
        return "base_url"
    return None


def judge_answer(
    step: Step,
    ex: Exchange,
    *,
    has_booking: bool,
    api: str,
    external_id: str | None = None,
    exists: tuple[int, ...] = (EXISTS_STATUS,),
    bookings_routes: bool = True,
) -> Verdict:
    """What the answer EX to STEP means; HAS_BOOKING: the row's booking can go through the bookings routes;
    EXTERNAL_ID: the patient the request is about, which a 2xx must answer for (`unbound_answer`); EXISTS:
    the statuses meaning "this external_id or booking exists" (the site's `exists_status`); BOOKINGS_ROUTES:
    the site has them (a v2/v3 patient that exists is then refused only when the row names no booking)."""
    if not ex.verified or ex.status is None:
        if ex.reached == "yes":
            return Verdict("doubt", doubt="unverified")
        return Verdict("doubt", doubt="ambiguous") if ex.reached == "maybe" else Verdict("retry")
    status = ex.status
    if status in RETRYABLE_STATUSES or status >= 500:  # the server's own failure: nothing about the row
        return Verdict("retry")
    if (setting := site_setting(step, status)) is not None:
        return Verdict("site", reason=f"HTTP {status} to a {step}: check {setting}")
    if 200 <= status < 300:
        if (problem := unbound_answer(step, ex.response_body, ex.request_body, external_id)) is not None:
            return Verdict("doubt", reason=problem, doubt="ambiguous")
        if step == "update" and has_booking:
            return Verdict("next", step="booking update")  # CorEMR ignores booking fields on update
        return Verdict("done", "delivered", _DONE[step])
    if status in exists and step == "create":
        if has_booking:
            return Verdict("next", step="booking")
        if api == "v1" or bookings_routes:
            return Verdict("done", "rejected", reason=_exists(ex, api))
        return Verdict("exists", reason=f"HTTP {status}: {server_message(ex.response_body)}")
    if status in exists and step == "booking":
        return Verdict("check")  # the booking exists: a lookup confirms it is the one asked for
    if status == NOT_FOUND_STATUS and step == "booking":
        return Verdict("read_patient")  # no such patient, or no such route: only a read of the patient tells
    if status == NOT_FOUND_STATUS and step in _IF_ABSENT:
        return Verdict("next", step=_IF_ABSENT[step])
    return Verdict("done", "rejected", reason=f"HTTP {status}: {server_message(ex.response_body)}")


def unbound_answer(step: Step, answer: bytes | None, request: bytes, external_id: str | None) -> str | None:
    """Why a 2xx ANSWER to STEP is not bound to its REQUEST (for EXTERNAL_ID), or None when it is.

    A patient answer (create, update) must name the external_id sent; a booking answer (booking, booking
    update) the booking number sent; where an answer names the other as well, it must be the one sent. An
    answer that is not a JSON object, or carries an `error`, is no success whatever its status.
    """
    try:
        data = json.loads(answer or b"")
    except ValueError:
        return "its body is not JSON"
    if not isinstance(data, dict):
        return "its body is not a JSON object"
    if data.get("error"):
        return "its body is an error"
    try:
        sent = json.loads(request or b"{}")
    except ValueError:
        sent = {}
    sent = sent if isinstance(sent, dict) else {}
    patient = step in ("create", "update")
    for names, asked, required, what in (
        (("external_id",), external_id or _named(sent, ("external_id",)), patient, "patient"),
        (_NUMBER, _named(sent, _NUMBER), not patient, "booking"),
    ):
        named = _named(data, names)
        if named is None and required and asked is not None:
            return f"it names no {'external_id' if patient else 'booking number'}"
        if named is not None and asked is not None and named != asked:
            return f"it names another {what}"
    return None


_NUMBER = ("booking_no", "booking_number")  # the booking number's names (v2/v3, v1)


def _named(data: dict[str, object], names: tuple[str, ...]) -> str | None:
    """The value DATA gives the first of NAMES it holds, as text (None: none of them)."""
    for name in names:
        value = data.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


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


def rebooking_held_reason(external_id: str | None, booking: str | None, routes_known: str) -> str:
    """Why a returning person (a patient CorEMR holds, with a new booking) is held: what to do in CorEMR.

    ROUTES_KNOWN says where the site's lack of bookings routes comes from (its setting, or `check`)."""
    number = f"booking {booking}" if booking else "this booking"
    return (
        f"patient {external_id} is already in CorEMR and this site has no bookings routes ({routes_known}):"
        f" held, not sent; add {number} to patient {external_id} in CorEMR by hand, then `cws-pipeline accept`"
        " the row (or set update_adds_booking = true where a patient update adds a booking)"
    )


def no_bookings_route_reason(collection: str) -> str:
    """The site-level stop when a bookings route answered 404 for a patient a read found: the route is not there."""
    return (
        f"CorEMR has no bookings routes: POST {collection}{{external_id}}/bookings/ answered 404 for a patient"
        ' a signed read found there; set bookings_routes = "no" in the run configuration'
    )
