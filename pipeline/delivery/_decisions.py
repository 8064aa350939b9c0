"""The pure decisions: what a row needs this run, where its requests go, and what each answer means for it (no I/O)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .._masking import server_message
from ..ledger import (
    Action,
    LedgerWrite,
    PriorRow,
    PriorRows,
    RowState,
    StatusUpdate,
    Step,
    booking_identity,
    sha256_hex,
)
from ..mapping import MappedRow, Mapping, OnChange
from ..protocol import API_PROFILES, DEFAULT_API, EXISTS_STATUS, ApiProfile, ApiVersion, Routes, answer_date
from ._transport import Exchange

__all__ = [
    "CREATES",
    "DOUBTFUL",
    "NOT_FOUND_STATUS",
    "RETRYABLE_STATUSES",
    "Booking",
    "LookupFinding",
    "Plan",
    "Rebookings",
    "RowOutcome",
    "Target",
    "Verdict",
    "already_reported",
    "answered_external_id",
    "changed_reason",
    "holds_body",
    "judge_answer",
    "judge_lookup",
    "keeps_recorded_status",
    "known_outcome",
    "no_bookings_reason",
    "no_bookings_route_reason",
    "plan",
    "rebooking_held_reason",
    "refused_by_site",
    "rejected_again_reason",
    "renumbered_reason",
    "same_number_reason",
    "site_setting",
    "unbound_answer",
    "updated_reason",
]

# 429 and the gateway/server errors that mean "not processed, try later"; any other 4xx is final.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Of those, the answers that say a request was not processed (throttled, unavailable). Any other 5xx to a create
# (500, a gateway's 502 or 504) may come after CorEMR stored it: the create is in doubt, and a lookup settles it
# before it is ever sent again (assumption "not-processed").
NOT_PROCESSED = frozenset({429, 503})
# The steps that can create something (a patient, a booking): one in doubt is looked up before it is sent
# again. The others are updates, which create nothing: one in doubt is simply sent again.
CREATES: frozenset[Step] = frozenset({"create", "booking"})


# -- plan -----------------------------------------------------------------------------------------

Plan = Literal[
    "invalid", "excluded", "duplicate", "skipped", "changed", "renumbered", "rejected_again", "send", "settle",
    "stopped", "rebooked",
]  # fmt: skip
# "rebooked": a returning person (a patient CorEMR holds, with a new booking) at a site without bookings routes:
# held, not sent (the engine decides it, knowing the site; see Delivery.plan).
# A request was recorded as leaving, or may have landed, and no verified answer settled it.
DOUBTFUL = ("sending", "ambiguous", "unverified")
_REJECTED_AGAIN = re.compile(r"rejected earlier with the same body \(run (\d+)\): ")
_HTTP_STATUS = re.compile(r"HTTP (\d{3})\b")  # how a refusal's reason starts (judge_answer)


def plan(row: MappedRow, prior: PriorRows, on_change: OnChange = "hold") -> tuple[Plan, str | None]:
    """What this row needs (from its validity, earlier runs and the corrections policy ON_CHANGE) and its body's
    SHA-256, hashed once here. "send" for a delivered row is its correction, sent as an update.

    No I/O: the ledger hands out plain prior-row data (`PriorRows`), and the rules live here. Two of them guard
    against what older versions did: a row recorded `rejected` by a refusal of our site (401/403, a 3xx, a 404
    to a create, a 5xx: `refused_by_site`) was never refused for its data and is sent again; and a delivered row
    whose external_id has changed is held (`renumbered`), never sent as anyone's update.
    """
    if row.excluded is not None:  # a filter of the mapping left it out: never sent, never an alarm
        return "excluded", None
    if row.body is None:
        return "invalid", None
    sha = sha256_hex(row.body)
    if row.duplicate_of is not None:  # an earlier line of this export is the same booking: that line is sent
        return "duplicate", sha
    delivered = prior.delivered_sha256(row.key)  # a re-run's common case, without a PriorRow each
    if delivered and sha == delivered and not prior.in_doubt(row.key):
        return "skipped", sha
    p = prior.get(row.key)
    if delivered and p is not None and p.external_id and row.external_id != p.external_id:
        return "renumbered", sha  # another patient's number: never an update, whatever on_change says
    if delivered and not prior.in_doubt(row.key):
        if _refused_again(p, sha):  # this correction was refused
            return "rejected_again", sha
        return ("send" if on_change == "update" else "changed"), sha
    if p is None:
        return "send", sha
    if p.state in DOUBTFUL:  # a request may have landed under the external_id it named: look that one up, no other
        return ("renumbered" if p.external_id and row.external_id != p.external_id else "settle"), sha
    if _refused_again(p, sha):
        return "rejected_again", sha
    return "send", sha


def _refused_again(p: PriorRow | None, sha: str) -> bool:
    """True when this very body was refused for its data before (a refusal of our site does not count)."""
    return p is not None and p.state == "rejected" and p.body_sha256 == sha and not refused_by_site(p.reason)


def refused_by_site(reason: str | None) -> bool:
    """True when a recorded rejection was a refusal of our site (401/403, 3xx, a 404 to a create, 405, 5xx), which
    older versions recorded as `rejected`: no verdict on the row. A rejection is recorded as "HTTP NNN: ...",
    and only a create's 404 ends a row (a 404 to any other step leads to a next one)."""
    _, message = _first_refusal(reason or "")
    match = _HTTP_STATUS.match(message)
    if match is None:
        return False
    status = int(match.group(1))
    return status in (401, 403, 404, 405) or 300 <= status < 400 or status >= 500


def renumbered_reason(p: PriorRow | None, row: MappedRow) -> str:
    """Why a row whose external_id changed since it was delivered (or sent, its answer unsettled) is held: the jail
    system merged or renumbered a patient, and CorEMR holds (or may hold) the one under the earlier number."""
    was = p.external_id if p is not None else "another"
    if p is not None and p.state in DOUBTFUL:
        return (
            f"the external_id changed from {was} to {row.external_id} since run {p.run_id} sent it, and no lookup"
            f" settled whether that request created patient {was}: it may have; held, not sent: check CorEMR for"
            f" {was}, fix it there by hand, then `cws-pipeline accept` the row"
        )
    return (
        f"the external_id changed from {was} to {row.external_id} since it was {_delivered_where(p)}: a patient"
        " merged or renumbered in the jail system; held, not sent: fix it in CorEMR by hand, then"
        " `cws-pipeline accept` the row"
    )


def same_number_reason(external_id: str | None, number: str | None, p: PriorRow | None) -> str:
    """Why a new booking of a patient keyed by person alone is held: it has the number of the booking delivered."""
    return (
        f"patient {external_id} has a new booking date under booking {number or '(none)'}, the number of the booking"
        f" {_delivered_where(p)}: the mapping's key names no booking, so this is a new booking, and it cannot be"
        " added under the delivered booking's number (nor sent as its update, which would overwrite its date); held,"
        " not sent: make booking_no from the person and the booking date (docs/returning-patients.md), or enter the"
        " booking in CorEMR by hand, then `cws-pipeline accept` the row"
    )


def changed_reason(p: PriorRow | None) -> str:
    """Why a held change is not sent, naming the run that delivered the body it differs from."""
    return f'{_delivered_where(p)} with a different body; held (on_change = "hold"): not sent'


def updated_reason(p: PriorRow | None) -> str:
    """What an update sent: a correction of the body delivered in the run it names."""
    return f'corrected: {_delivered_where(p)} with a different body; sent as an update (on_change = "update")'


def _delivered_where(p: PriorRow | None) -> str:
    if p is None or p.delivered_run_id is None:
        return "delivered in an earlier run"
    if p.action == "accepted":
        return f"accepted after run {p.delivered_run_id}"
    return f"delivered in run {p.delivered_run_id}"


def already_reported(p: PriorRow | None, update: StatusUpdate | None) -> bool:
    """True when an earlier run left this row in the same state, with the same body and the same input cells.

    Such a row was reported then and has not changed since: cron need not hear of it again.
    """
    return (
        p is not None
        and update is not None
        and p.state == update.state
        and p.body_sha256 == update.body_sha256
        and p.cells_sha256 == update.cells_sha256
    )


def keeps_recorded_status(
    recorded: tuple[str, str | None, str | None] | None, body_sha256: str, cells_sha256: str
) -> bool:
    """True when a skipped row's status needs no change: RECORDED (PriorRows.recorded: state, body and cells
    SHA-256) is delivered or skipped with this body and these cells."""
    return (
        recorded is not None and recorded[0] in ("delivered", "skipped") and recorded[1:] == (body_sha256, cells_sha256)
    )


def rejected_again_reason(p: PriorRow | None) -> str:
    """The reason for a row rejected earlier with the same body: the run that was refused and CorEMR's words.

    The same every night: the reason recorded last night is read back to the first refusal, never
    nested in another "rejected earlier" (older ledgers hold such nested reasons: the innermost is kept).
    """
    if p is None:
        return "rejected earlier with the same body"
    run_id, message = _first_refusal(p.reason or "", p.run_id)
    return f"rejected earlier with the same body (run {run_id}): {message}"


def _first_refusal(reason: str, run_id: int = 0) -> tuple[int, str]:
    """The run and words of the first refusal a reason tells of, through any "rejected earlier" around it."""
    while match := _REJECTED_AGAIN.match(reason):
        run_id, reason = int(match.group(1)), reason[match.end() :]
    return run_id, reason


class Rebookings:
    """The rules for a re-booking at this site: a person CorEMR already holds (delivered under another key, or,
    keyed by person alone, under this one with another booking) booked again. Pure: the engine reads the body
    delivered under a row's key from the ledger (DELIVERED) and hands it in.

    The external_id -> keys index is built on first need (a re-run of 100,000 rows should not pay for it).
    """

    def __init__(self, prior: PriorRows, target: Target) -> None:
        self._prior = prior
        self._target = target
        self._ids: dict[str, set[str]] | None = None
        self._lock = threading.Lock()

    def under_another_key(self, row: MappedRow) -> bool:
        """True when this row's external_id was delivered earlier under another row key."""
        with self._lock:
            if self._ids is None:
                ids: dict[str, set[str]] = {}
                for external_id, key in self._prior.delivered_ids():
                    ids.setdefault(external_id, set()).add(key)
                self._ids = ids
        return bool(self._ids.get(row.external_id or "", set()) - {row.key})

    def new_booking(self, row: MappedRow, delivered: bytes | None) -> bytes | None:
        """DELIVERED when ROW, keyed by person alone, has another booking number or date: a new booking of a known
        patient (a re-booking), never an update that would overwrite the delivered booking; else None."""
        if delivered is None or row.body is None or not self._target.new_booking(delivered, row.body):
            return None
        return delivered

    def plan(self, row: MappedRow, row_plan: Plan, sha: str, delivered: bytes | None) -> Plan:
        """ROW_PLAN ("send" or "changed") as this site can carry it out: "rebooked" for a returning person held for a
        person (the site cannot add a booking through CWS, or the new booking has the delivered one's number),
        "send" for a re-booking it can send (whatever on_change says)."""
        if (new := self.new_booking(row, delivered)) is not None:
            return "rebooked" if self.cannot_add_booking or self._same_number(new, row) else "send"
        if row_plan == "send" and self._held(row, sha):
            return "rebooked"
        return row_plan

    def held_reason(self, row: MappedRow, delivered: bytes | None) -> str:
        """Why a returning person is held: the new booking has the delivered one's number, or the site cannot add
        a booking through CWS."""
        assert row.body is not None
        number = self._target.booking_number_of(row.body)
        new = self.new_booking(row, delivered)
        if new is not None and self._same_number(new, row):
            return same_number_reason(row.external_id, number, self._prior.get(row.key))
        return rebooking_held_reason(row.external_id, number, self._target.routes_known)

    @property
    def cannot_add_booking(self) -> bool:
        """True where a patient CorEMR holds cannot get a booking through CWS: no bookings routes (v1 has none),
        and no patient update that adds one."""
        t = self._target
        return t.api == "v1" or (not t.routes.has_bookings and not t.update_adds_booking)

    @property
    def by_update(self) -> bool:
        """True where a re-booking goes as a patient update: no bookings routes and update_adds_booking (v2, v3)."""
        t = self._target
        return t.update_adds_booking and not t.routes.has_bookings and t.api != "v1"

    def _same_number(self, delivered: bytes, row: MappedRow) -> bool:
        """True when a new booking has the DELIVERED booking's number: it cannot be added under it (nor sent as
        that booking's update, which would overwrite its date)."""
        assert row.body is not None
        number = self._target.booking_number_of(row.body)
        return number is not None and number == self._target.booking_number_of(delivered)

    def _held(self, row: MappedRow, sha: str) -> bool:
        """True for a returning person at a site without bookings routes that does not take bookings by update:
        one the ledger knows under another key, or one CorEMR refused as existing before (held, same body)."""
        t = self._target
        if t.api == "v1" or t.routes.has_bookings or t.update_adds_booking or self._prior.delivered_sha256(row.key):
            return False
        p = self._prior.get(row.key)
        if p is not None and p.state == "changed" and p.body_sha256 == sha:
            return True  # held before (a create answered "exists"): a create again would be refused again
        return self.under_another_key(row)


# -- steps ----------------------------------------------------------------------------------------

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
    if status == 405:  # the route does not take our verb: another API version's routes (v1 updates by PUT)
        return "base_url and the mapping's [target] api"
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
    the site has them (a v2/v3 patient that exists is then refused only when the row names no booking).

    A row is one patient and one booking. Its requests ("steps"): `create` the patient (with its booking as the
    first); `booking`, a booking create for a patient CorEMR already holds (v2, v3, where the site has the
    bookings routes); `update` the patient with a corrected body and then, when a booking field changed, its
    `booking update`. Which statuses mean "already exists" is the site's setting `exists_status` (assumption
    "exists-status", [409] by default); 404 for an unknown patient or booking is "other-statuses". A 404 from a
    bookings route is never read as "no such patient" on its own word: a route that is not there answers 404
    too, so the engine reads the patient first (`read_patient`). No I/O here: the engine sends, records and
    follows these verdicts.

    Two kinds of refusal. One about the row's data (400, 409, 422...) makes it `rejected`. One about our site
    (401/403: our key or Access name; any 3xx or a 404 to a create: the base_url; see `site_setting`) says
    nothing about the row: the run stops and the row stays sendable. And a 2xx counts only once it is bound to
    its request (`unbound_answer`): it names the external_id (or booking number) sent, and is no error. A 2xx
    that is not may or may not have stored anything: the row is in doubt, settled by a lookup.
    """
    if not ex.verified or ex.status is None:
        if ex.landed == "yes":
            return Verdict("doubt", doubt="unverified")
        return Verdict("doubt", doubt="ambiguous") if ex.landed == "maybe" else Verdict("retry")
    status = ex.status
    if status in RETRYABLE_STATUSES or status >= 500:  # the server's own failure: nothing about the row
        if step in CREATES and status not in NOT_PROCESSED:
            return Verdict("doubt", doubt="ambiguous")  # it may have been stored before the failure
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


# -- lookup ---------------------------------------------------------------------------------------

LookupFinding = Literal["found", "absent", "someone_else", "error", "refused", "try_again"]


def answered_external_id(body: bytes | None, field: str = "external_id") -> str | None:
    """The value an answer names in FIELD: its JSON object's `external_id` (a patient read) or booking number."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return None
    value = data.get(field) if isinstance(data, dict) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def judge_lookup(
    ex: Exchange, expected: str, field: str = "external_id", external_id: str | None = None
) -> LookupFinding:
    """What a lookup's answer says: found only when it is verified, 200, and names EXPECTED in FIELD; a booking's
    answer that names an external_id too must name EXTERNAL_ID, the patient asked for.

    A lookup's 200 proves nothing unless the answer is the patient asked for: a front end that normalises dot
    segments turns `GET /ws/patients/.` into the list route, which answers 200 too. So a patient is found only
    when the answer names its external_id, and a booking only when the answer names its booking number.
    """
    if not ex.verified or ex.status is None or ex.status in RETRYABLE_STATUSES or ex.status >= 500:
        return "try_again"
    if ex.status == 404:
        return "absent"
    if ex.status != 200:
        return "refused"
    if _has_error(ex.response_body):
        return "error"  # a 200 that carries an error is no finding, whoever it names
    if answered_external_id(ex.response_body, field) != expected:
        return "someone_else"
    named = answered_external_id(ex.response_body)
    if field != "external_id" and external_id is not None and named is not None and named != external_id:
        return "someone_else"  # the asked booking number, of another patient
    return "found"


def _has_error(body: bytes | None) -> bool:
    """True when an answer's JSON object carries an `error`: no answer about a patient, whatever its status."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return False
    return isinstance(data, dict) and bool(data.get("error"))


def holds_body(answer: bytes | None, body: bytes, api: ApiProfile) -> bool:
    """True when a patient answer holds every patient field of BODY as sent (or in its GET form: assumption
    "answer-shape"); booking fields are not compared: a patient answer does not carry them."""
    try:
        answered, sent = json.loads(answer or b""), json.loads(body)
    except ValueError:
        return False
    if not isinstance(answered, dict) or not isinstance(sent, dict):
        return False
    for name, value in sent.items():
        rule = api.rule(name)
        if rule is None or rule.booking:
            continue
        got = answered.get(name)
        as_read = (
            answer_date(rule.kind, value) if rule.kind in ("date", "timestamp") and isinstance(value, str) else value
        )
        if got != value and got != as_read and str(got) != str(value):
            return False
    return True


# -- target ---------------------------------------------------------------------------------------

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # as the mapping writes bodies


@dataclass(frozen=True)
class Booking:
    """A row's booking: its number (in the bookings routes' path) and the exact body bytes to sign and send."""

    number: str
    body: bytes


@dataclass(frozen=True)
class Target:
    """The API version's routes at the site (absolute URLs), the booking body's fields, the corrections policy.

    One place for the URLs of every step (create, patient read and update, a patient's booking read, create and
    update: the API version's routes at the site), the booking body the mapping's `[target] booking_fields` name
    (assumption "booking-body"), and the corrections policy (`[target] on_change`). Whether the site has the
    bookings routes is the site's fact (run configuration `bookings_routes`, or what `check` found), never the
    version's: v2 and v3 without one have none here (assumption "bookings-routes").
    """

    routes: Routes
    booking_number: str | None = None  # the body field naming a booking; None: no bookings routes (v1)
    booking_fields: tuple[str, ...] = ()
    on_change: OnChange = "hold"
    api: ApiVersion = DEFAULT_API
    update_adds_booking: bool = False  # without bookings routes, a re-booking goes as a patient update
    routes_known: str = ""  # where the site's having (or not) the bookings routes is known from, in words
    key_names_booking: bool = True  # the mapping's key has a booking number or date (else it names a person)

    @classmethod
    def of(
        cls,
        mapping: Mapping,
        base_url: str,
        *,
        bookings_routes: bool = False,
        update_adds_booking: bool = False,
        routes_known: str = "",
    ) -> Target:
        """The target of a mapping at a site's base_url; BOOKINGS_ROUTES: the site is known to have them."""
        profile = API_PROFILES[mapping.api]
        routes = profile.routes.at(base_url.rstrip("/") + mapping.endpoint)
        routes = replace(routes, has_bookings=routes.has_bookings and bookings_routes)
        number = profile.booking_number if routes.has_bookings and mapping.booking_fields else None
        return cls(routes, number, mapping.booking_fields, mapping.on_change, mapping.api, update_adds_booking,
                   routes_known, mapping.key_names_booking)  # fmt: skip

    @classmethod
    def default(cls, endpoint_url: str, on_change: OnChange = "hold") -> Target:
        """The default API version's routes under ENDPOINT_URL, with its booking body (assumption "booking-body")."""
        profile = API_PROFILES[DEFAULT_API]
        return cls(profile.routes.at(endpoint_url), profile.booking_number, profile.booking_fields, on_change)

    @property
    def profile(self) -> ApiProfile:
        """The API version's field rules."""
        return API_PROFILES[self.api]

    @property
    def create_url(self) -> str:
        """Where a patient is created."""
        return self.routes.collection

    @property
    def update_method(self) -> str:
        """PUT (v1) or POST (v2, v3)."""
        return self.routes.update_method

    def patient_url(self, external_id: str | None) -> str | None:
        """Read and update one patient; None when no URL path can name the external_id safely."""
        return self.routes.patient(external_id) if external_id is not None and _nameable(external_id) else None

    def bookings_url(self, external_id: str | None) -> str | None:
        """Create a booking for a patient; None without bookings routes or a safe external_id."""
        if not self.routes.has_bookings or not _nameable(external_id):
            return None
        assert external_id is not None
        return self.routes.bookings(external_id)

    def booking_url(self, external_id: str | None, booking: Booking) -> str | None:
        """Read and update one booking; None without bookings routes or safe names."""
        if not self.routes.has_bookings or not _nameable(external_id) or not _nameable(booking.number):
            return None
        assert external_id is not None
        return self.routes.booking(external_id, booking.number)

    def booking_of(self, body: bytes) -> Booking | None:
        """The row's booking (its number and booking body, fields in the mapping's order), or None when the
        version has no bookings routes or the body names no booking."""
        if self.booking_number is None:
            return None
        data: Any = json.loads(body)
        number = data.get(self.booking_number) if isinstance(data, dict) else None
        if not isinstance(number, str) or not _nameable(number):
            return None
        fields = {name: data[name] for name in self.booking_fields if name in data}
        return Booking(number, _COMPACT.encode(fields).encode("utf-8"))

    def booking_number_of(self, body: bytes) -> str | None:
        """The booking number a body names (the version's field), with or without bookings routes."""
        data: Any = json.loads(body)
        number = data.get(self.profile.booking_number) if isinstance(data, dict) else None
        return number if isinstance(number, str) else None

    def booking_changed(self, delivered: bytes | None, body: bytes) -> bool:
        """True unless the DELIVERED body is known and holds every booking field exactly as BODY does."""
        # Pruned, never stored or unreadable: send the booking update (it changes nothing if the same).
        return _fields_differ(delivered, body, self.booking_fields or self.profile.booking_fields) is not False

    def new_booking(self, delivered: bytes | None, body: bytes) -> bool:
        """True when the key names a person only and BODY's booking (number or date) differs from the DELIVERED
        body's: a new booking of that person, never a correction of the delivered one. False when DELIVERED is
        unknown (pruned): whether the booking changed cannot be told, and the row is a correction as before."""
        if self.key_names_booking:
            return False
        identity = [f.name for f in self.profile.fields if f.booking]  # the booking number and date
        return _fields_differ(delivered, body, identity) is True


def _nameable(segment: str | None) -> bool:
    """True when SEGMENT can be one segment of a URL path once percent-encoded (never '', '.' or '..')."""
    return bool(segment) and segment not in (".", "..")


def _fields_differ(delivered: bytes | None, body: bytes, names: Iterable[str]) -> bool | None:
    """Whether BODY holds any of NAMES otherwise than DELIVERED does; None when DELIVERED is unknown or unreadable."""
    if delivered is None:
        return None
    try:
        before: Any = json.loads(delivered)
    except ValueError:
        return None
    now: Any = json.loads(body)
    if not isinstance(before, dict) or not isinstance(now, dict):
        return None
    return any(before.get(name) != now.get(name) for name in names)


# -- outcome --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowOutcome:
    """The one state a row ended in, and why; `known` when an earlier run left it so, unchanged since; for a
    delivered row how it got there (ACTION); the body the state is about (a held change: the new body, not sent)."""

    line: int
    key: str
    state: RowState
    reason: str | None = None
    known: bool = False
    action: Action | None = None  # delivered: created, booking added, found or updated
    body_sha256: str | None = None
    # The input cells: name a line without a key as a booking (see `booking`); how, not what, so not compared.
    cells_sha256: str | None = field(default=None, compare=False)

    @property
    def booking(self) -> str:
        """The booking this row is a line of: its key, or for a line without one, its input cells."""
        return booking_identity(self.key, self.cells_sha256)


def known_outcome(p: PriorRow | None, write: LedgerWrite) -> bool:
    """Whether the row's new status repeats what an earlier run left (same state, body and input cells)."""
    return already_reported(p, write.updates[-1] if write.updates else None)
