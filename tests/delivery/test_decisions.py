"""The pure decisions as tables: what each answer to each step of a row means, which refusals are our site's, what a
lookup found, what a row needs this run from what earlier runs left, and where its requests go (no I/O: no network,
no ledger file).

Each row is what the code does and what CWS.md and `_decisions`' docstrings say it should do. A reader sees every
outcome at once here; test_plan.py and test_bound_answers.py hold the reasons' words and the engine's part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.delivery._decisions import (
    Booking,
    Plan,
    Target,
    Verdict,
    judge_answer,
    judge_lookup,
    plan,
    site_setting,
)
from pipeline.delivery._transport import Exchange, Landed
from pipeline.ledger import STEPS, PriorRows, Step, sha256_hex
from pipeline.mapping import MappedRow, Mapping, OnChange, RowProblem
from pipeline.protocol import API_PROFILES, ApiVersion, Verification

# -- answers --------------------------------------------------------------------------------------

PATIENT = b'{"external_id":"P1","fname":"Aisha","booking_no":"B1"}'  # a create's or an update's body
BOOKING = b'{"booking_no":"B1","booking_date":"2026-11-28 22:15:00.000"}'  # a booking create's or update's body
BOUND = {"external_id": "P1", "booking_no": "B1"}  # names what any step of row P1/B1 sent
REFUSAL = b'{"error":"refused","fields":{"dob":"not a date"}}'
GOOD = Verification("ok", algorithm="CWS-SHA256", signer="coremr")
BAD = Verification("bad_signature", algorithm="CWS-SHA256", signer="coremr")
UNSIGNED = Verification("missing_header")


@dataclass(frozen=True)
class Reply:
    """What came back, as a table names it; `to(step)` is the Exchange of that step's request."""

    status: int | None
    payload: object = REFUSAL
    verification: Verification | None = GOOD
    landed: Landed = "yes"

    def to(self, step: Step) -> Exchange:
        request = PATIENT if step in ("create", "update") else BOOKING
        if self.landed != "yes":
            return Exchange("POST", "https://coremr.test/ws/patients/", request, "CWS-SHA256 Access=client",
                            self.landed, error="ConnectError: connection reset")  # fmt: skip
        body = self.payload if isinstance(self.payload, bytes) else json.dumps(self.payload).encode()
        return Exchange("POST", "https://coremr.test/ws/patients/", request, "CWS-SHA256 Access=client", "yes",
                        self.status, body, "CWS-SHA256 Access=coremr", self.verification)  # fmt: skip


NO_ANSWER = Reply(None, None, None, "no")  # never left
LOST = Reply(None, None, None, "maybe")  # sent, and no answer came back


def said(v: Verdict) -> str:
    """A verdict in the tables' words: its kind and what it carries (a refusal: its status; a site's: the setting)."""
    if v.kind == "done":
        return f"{v.state} ({v.action or (v.reason or '').partition(':')[0]})"
    if v.kind == "next":
        return f"next: {v.step}"
    if v.kind == "doubt":
        return f"{v.doubt}: {v.reason}" if v.reason else f"{v.doubt}"
    if v.kind == "site":
        return f"site: {(v.reason or '').partition(': check ')[2]}"
    return v.kind


# What an answer means whatever the step it answers (a v2 site with bookings routes, exists_status 409).
EVERY_STEP = [
    pytest.param(Reply(401), "site: access and private_key", id="401"),
    pytest.param(Reply(403), "site: access and private_key", id="403"),
    pytest.param(Reply(301), "site: base_url", id="301"),
    pytest.param(Reply(302), "site: base_url", id="302"),
    pytest.param(Reply(307), "site: base_url", id="307"),
    pytest.param(Reply(308), "site: base_url", id="308"),
    pytest.param(Reply(400), "rejected (HTTP 400)", id="400 data refusal"),
    pytest.param(Reply(422), "rejected (HTTP 422)", id="422 data refusal"),
    pytest.param(Reply(200, b""), "ambiguous: its body is not JSON", id="200 empty"),
    pytest.param(Reply(204, b""), "ambiguous: its body is not JSON", id="204 empty"),
    pytest.param(Reply(201, {}), "ambiguous: it names no external_id or booking number", id="201 {}"),
    pytest.param(Reply(201, [BOUND]), "ambiguous: its body is not a JSON object", id="201 a list"),
    pytest.param(Reply(201, {**BOUND, "error": "not stored"}), "ambiguous: its body is an error", id="201 error"),
    pytest.param(Reply(200, {**BOUND, "external_id": "P7"}), "ambiguous: it names another patient", id="200 P7"),
    pytest.param(Reply(201, BOUND, BAD), "unverified", id="201 bad signature"),
    pytest.param(Reply(201, BOUND, UNSIGNED), "unverified", id="201 unsigned"),
    pytest.param(Reply(409, REFUSAL, BAD), "unverified", id="409 bad signature"),
    pytest.param(Reply(503, REFUSAL, UNSIGNED), "unverified", id="503 unsigned"),
    pytest.param(NO_ANSWER, "retry", id="no answer, never left"),
    pytest.param(LOST, "ambiguous", id="no answer, maybe landed"),
]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(("reply", "meaning"), EVERY_STEP)
def test_what_an_answer_means_whatever_the_step(step: Step, reply: Reply, meaning: str) -> None:
    # "it names no ..." words the step: a patient answer must name the external_id, a booking answer the number
    expected = meaning.replace("external_id or booking number", _named_by(step))
    verdict = judge_answer(step, reply.to(step), has_booking=True, api="v2", external_id="P1")
    assert said(verdict) == expected


# A server's failure: 429 and 503 say the request was not processed (sent again); any other 5xx to a create or a
# booking create may come after CorEMR stored it (in doubt: a lookup settles it); an update creates nothing.
SERVER_FAILURES = [
    pytest.param(429, "retry", "retry", id="429"),
    pytest.param(500, "ambiguous", "retry", id="500"),
    pytest.param(502, "ambiguous", "retry", id="502"),
    pytest.param(503, "retry", "retry", id="503"),
    pytest.param(504, "ambiguous", "retry", id="504"),
]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(("status", "to_a_create", "to_an_update"), SERVER_FAILURES)
def test_a_server_failure_leaves_a_create_in_doubt_and_an_update_sent_again(
    step: Step, status: int, to_a_create: str, to_an_update: str
) -> None:
    verdict = judge_answer(step, Reply(status).to(step), has_booking=True, api="v2", external_id="P1")
    assert said(verdict) == (to_a_create if step in ("create", "booking") else to_an_update)


def _named_by(step: Step) -> str:
    return "external_id" if step in ("create", "update") else "booking number"


@dataclass(frozen=True)
class Site:
    """What a site is known to have: its API version, bookings routes, the statuses meaning "exists"."""

    api: str = "v2"
    bookings_routes: bool = True
    exists: tuple[int, ...] = (409,)


V2 = Site()
V2_BARE = Site(bookings_routes=False)  # a v2 CorEMR without the bookings routes
V3_BARE = Site(api="v3", bookings_routes=False)  # v3 documents none
V1 = Site(api="v1", bookings_routes=False)
SAYS_422 = Site(exists=(422,))  # a site whose second create answers 422
SAYS_422_BARE = Site(exists=(422,), bookings_routes=False)

BOOKED, UNBOOKED = True, False  # the row's booking can (or cannot) go through the bookings routes

# What an answer means for one step: the bound 2xx, "exists" (the site's status), and 404.
BY_STEP = [
    pytest.param("create", BOOKED, V2, Reply(201, BOUND), "delivered (created)", id="create 201"),
    pytest.param("create", BOOKED, V2, Reply(200, BOUND), "delivered (created)", id="create 200"),
    pytest.param("create", UNBOOKED, V1, Reply(201, BOUND), "delivered (created)", id="create 201 v1"),
    pytest.param("booking", BOOKED, V2, Reply(201, BOUND), "delivered (booking added)", id="booking 201"),
    pytest.param("booking", BOOKED, V2, Reply(200, BOUND), "delivered (booking added)", id="booking 200"),
    pytest.param("update", BOOKED, V2, Reply(200, BOUND), "next: booking update", id="update 200 booking changed"),
    pytest.param("update", UNBOOKED, V2, Reply(200, BOUND), "delivered (updated)", id="update 200 booking same"),
    pytest.param("update", UNBOOKED, V1, Reply(200, BOUND), "delivered (updated)", id="update 200 v1"),
    pytest.param("booking update", BOOKED, V2, Reply(200, BOUND), "delivered (updated)", id="booking update 200"),
    pytest.param("booking update", BOOKED, V2, Reply(201, BOUND), "delivered (updated)", id="booking update 201"),
    pytest.param("create", BOOKED, V2, Reply(409), "next: booking", id="create 409 with a booking"),
    pytest.param("create", UNBOOKED, V2, Reply(409), "rejected (HTTP 409)", id="create 409 names no booking"),
    pytest.param("create", UNBOOKED, V1, Reply(409), "rejected (HTTP 409)", id="create 409 v1"),
    pytest.param("create", UNBOOKED, V2_BARE, Reply(409), "exists", id="create 409 v2 without bookings routes"),
    pytest.param("create", UNBOOKED, V3_BARE, Reply(409), "exists", id="create 409 v3 without bookings routes"),
    pytest.param("booking", BOOKED, V2, Reply(409), "check", id="booking 409"),
    pytest.param("update", BOOKED, V2, Reply(409), "rejected (HTTP 409)", id="update 409"),
    pytest.param("booking update", BOOKED, V2, Reply(409), "rejected (HTTP 409)", id="booking update 409"),
    pytest.param("create", BOOKED, SAYS_422, Reply(422), "next: booking", id="create 422 at a 422 site"),
    pytest.param("create", UNBOOKED, SAYS_422, Reply(422), "rejected (HTTP 422)", id="create 422 names no booking"),
    pytest.param("create", UNBOOKED, SAYS_422_BARE, Reply(422), "exists", id="create 422 at a bare 422 site"),
    pytest.param("booking", BOOKED, SAYS_422, Reply(422), "check", id="booking 422 at a 422 site"),
    pytest.param("update", BOOKED, SAYS_422, Reply(422), "rejected (HTTP 422)", id="update 422 at a 422 site"),
    pytest.param("create", BOOKED, SAYS_422, Reply(409), "rejected (HTTP 409)", id="create 409 at a 422 site"),
    pytest.param("booking", BOOKED, SAYS_422, Reply(409), "rejected (HTTP 409)", id="booking 409 at a 422 site"),
    pytest.param("create", BOOKED, V2, Reply(404), "site: base_url", id="create 404"),
    pytest.param("create", UNBOOKED, V1, Reply(404), "site: base_url", id="create 404 v1"),
    pytest.param("booking", BOOKED, V2, Reply(404), "read_patient", id="booking 404"),
    pytest.param("update", BOOKED, V2, Reply(404), "next: create", id="update 404"),
    pytest.param("update", UNBOOKED, V1, Reply(404), "next: create", id="update 404 v1"),
    pytest.param("booking update", BOOKED, V2, Reply(404), "next: booking", id="booking update 404"),
]


@pytest.mark.parametrize(("step", "has_booking", "site", "reply", "meaning"), BY_STEP)
def test_what_an_answer_means_for_its_step(
    step: Step, has_booking: bool, site: Site, reply: Reply, meaning: str
) -> None:
    verdict = judge_answer(step, reply.to(step), has_booking=has_booking, api=site.api, external_id="P1",
                           exists=site.exists, bookings_routes=site.bookings_routes)  # fmt: skip
    assert said(verdict) == meaning


@pytest.mark.parametrize(
    ("site", "advice"),
    [(V1, "add it in CorEMR by hand, then `cws-pipeline accept` the row (or use api v2)"),
     (V2, "the row names no booking the bookings routes can take (booking_fields)")],
    ids=["v1", "v2 with bookings routes"],
)  # fmt: skip
def test_a_patient_that_exists_refuses_a_row_whose_booking_cannot_follow_saying_what_to_do(
    site: Site, advice: str
) -> None:
    verdict = judge_answer("create", Reply(409).to("create"), has_booking=False, api=site.api, external_id="P1",
                           bookings_routes=site.bookings_routes)  # fmt: skip
    assert verdict.state == "rejected" and verdict.reason is not None
    assert verdict.reason.startswith("HTTP 409: ") and verdict.reason.endswith(advice)


# -- refusals of our site -------------------------------------------------------------------------

LOOKUP_AND_STEPS: tuple[Step | str, ...] = (*STEPS, "lookup")


@pytest.mark.parametrize("step", LOOKUP_AND_STEPS)
@pytest.mark.parametrize(
    ("status", "setting"),
    [(401, "access and private_key"), (403, "access and private_key"), (300, "base_url"), (301, "base_url"),
     (302, "base_url"), (303, "base_url"), (307, "base_url"), (308, "base_url"), (200, None), (201, None),
     (405, "base_url and the mapping's [target] api"), (400, None), (409, None), (422, None), (429, None),
     (500, None), (503, None)],
    ids=lambda v: str(v),
)  # fmt: skip
def test_which_setting_a_status_names_whatever_the_step(step: Step, status: int, setting: str | None) -> None:
    assert site_setting(step, status) == setting


@pytest.mark.parametrize(
    ("step", "setting"),
    [("create", "base_url"), ("booking", None), ("update", None), ("booking update", None), ("lookup", None)],
)  # fmt: skip
def test_only_a_create_reads_404_as_a_route_that_is_not_there(step: Step, setting: str | None) -> None:
    assert site_setting(step, 404) == setting


# -- lookups --------------------------------------------------------------------------------------

PATIENT_READ = {"external_id": "P1", "fname": "Aisha"}
BOOKING_READ = {"booking_no": "B1", "external_id": "P1"}

# A lookup of patient P1 (GET /ws/patients/P1): field external_id, expected P1.
PATIENT_LOOKUP = [
    pytest.param(Reply(200, PATIENT_READ), "found", id="200 P1"),
    pytest.param(Reply(200, {"external_id": "P7"}), "someone_else", id="200 P7"),
    pytest.param(Reply(200, [PATIENT_READ]), "someone_else", id="200 the list route"),
    pytest.param(Reply(200, {"fname": "Aisha"}), "someone_else", id="200 names no external_id"),
    pytest.param(Reply(200, {**PATIENT_READ, "error": "no"}), "error", id="200 error naming P1"),
    pytest.param(Reply(200, b""), "someone_else", id="200 empty"),
    pytest.param(Reply(404), "absent", id="404"),
    pytest.param(Reply(201, PATIENT_READ), "refused", id="201"),
    pytest.param(Reply(302), "refused", id="302"),
    pytest.param(Reply(400), "refused", id="400"),
    pytest.param(Reply(401), "refused", id="401"),
    pytest.param(Reply(403), "refused", id="403"),
    pytest.param(Reply(409), "refused", id="409"),
    pytest.param(Reply(429), "try_again", id="429"),
    pytest.param(Reply(500), "try_again", id="500"),
    pytest.param(Reply(501), "try_again", id="501"),
    pytest.param(Reply(503), "try_again", id="503"),
    pytest.param(Reply(200, PATIENT_READ, BAD), "try_again", id="200 P1 bad signature"),
    pytest.param(Reply(404, REFUSAL, UNSIGNED), "try_again", id="404 unsigned"),
    pytest.param(NO_ANSWER, "try_again", id="no answer, never left"),
    pytest.param(LOST, "try_again", id="no answer, lost"),
]


@pytest.mark.parametrize(("reply", "finding"), PATIENT_LOOKUP)
def test_what_a_lookup_of_a_patient_found(reply: Reply, finding: str) -> None:
    assert judge_lookup(reply.to("create"), "P1") == finding


# A lookup of booking B1 of patient P1 (GET /ws/patients/P1/bookings/B1): field booking_no, expected B1.
BOOKING_LOOKUP = [
    pytest.param(Reply(200, BOOKING_READ), "found", id="200 B1 of P1"),
    pytest.param(Reply(200, {"booking_no": "B1"}), "found", id="200 B1 naming no patient"),
    pytest.param(Reply(200, {"booking_no": "B1", "external_id": "P7"}), "someone_else", id="200 B1 of P7"),
    pytest.param(Reply(200, {"booking_no": "B7", "external_id": "P1"}), "someone_else", id="200 B7 of P1"),
    pytest.param(Reply(200, PATIENT_READ), "someone_else", id="200 the patient, no booking"),
    pytest.param(Reply(200, {**BOOKING_READ, "error": "no"}), "error", id="200 error naming B1"),
    pytest.param(Reply(404), "absent", id="404"),
    pytest.param(Reply(403), "refused", id="403"),
    pytest.param(Reply(307), "refused", id="307"),
    pytest.param(Reply(422), "refused", id="422"),
    pytest.param(Reply(429), "try_again", id="429"),
    pytest.param(Reply(502), "try_again", id="502"),
    pytest.param(Reply(200, BOOKING_READ, BAD), "try_again", id="200 B1 bad signature"),
    pytest.param(LOST, "try_again", id="no answer, lost"),
]


@pytest.mark.parametrize(("reply", "finding"), BOOKING_LOOKUP)
def test_what_a_lookup_of_a_booking_found(reply: Reply, finding: str) -> None:
    assert judge_lookup(reply.to("booking"), "B1", "booking_no", "P1") == finding


# -- plan -----------------------------------------------------------------------------------------

KEY = "P1/B1"
BODY = b'{"external_id":"P1","fname":"Ann"}'
SHA = sha256_hex(BODY)
OTHER = sha256_hex(b'{"external_id":"P1","fname":"Anne"}')
THIRD = sha256_hex(b'{"external_id":"P1","fname":"Annie"}')


def mapped(
    external_id: str = "P1", body: bytes | None = BODY, excluded: str | None = None, duplicate_of: int | None = None
) -> MappedRow:
    body = body.replace(b'"P1"', f'"{external_id}"'.encode()) if body is not None else None
    return MappedRow(2, KEY, external_id, body, (), ("ID",), (external_id,), excluded, duplicate_of)


ROW = mapped()
RENUMBERED = mapped("X9")  # the jail system gave the booking's patient another number
EXCLUDED = mapped(body=None, excluded="released before the export")
INVALID = MappedRow(2, KEY, "P1", None, (RowProblem(2, "dob", "DOB", None, "a date"),), ("ID",), ("P1",))
DUPLICATE = mapped(duplicate_of=1)  # an earlier line of this export is the same booking


def left(state: str, body: str | None = SHA, delivered: str | None = None, reason: str | None = None) -> PriorRows:
    """What earlier runs left for row P1/B1: its STATE, the body it is about, the body delivered, the reason."""
    return PriorRows({KEY: (KEY, "P1", state, body, delivered, 1, 2, reason, None, 1 if delivered else None)})


NOTHING = PriorRows({})

# What a row needs, by what earlier runs left, under on_change = "hold" and "update".
PLANS = [
    pytest.param(ROW, NOTHING, "send", "send", id="never seen"),
    pytest.param(ROW, left("delivered", SHA, SHA), "skipped", "skipped", id="delivered, same body"),
    pytest.param(ROW, left("delivered", OTHER, OTHER), "changed", "send", id="delivered, other body"),
    pytest.param(ROW, left("skipped", SHA, SHA), "skipped", "skipped", id="skipped, same body"),
    pytest.param(ROW, left("changed", SHA, OTHER), "changed", "send", id="held change, same body"),
    pytest.param(ROW, left("changed", OTHER, SHA), "skipped", "skipped", id="held change, back to delivered"),
    pytest.param(ROW, left("changed", THIRD, OTHER), "changed", "send", id="held change, changed again"),
    pytest.param(ROW, left("rejected", SHA, reason="HTTP 400: invalid"), "rejected_again", "rejected_again",
                 id="rejected for its data, same body"),
    pytest.param(ROW, left("rejected", SHA, reason="HTTP 409: exists"), "rejected_again", "rejected_again",
                 id="rejected as existing, same body"),
    pytest.param(ROW, left("rejected", SHA, reason=None), "rejected_again", "rejected_again",
                 id="rejected, no reason, same body"),
    pytest.param(ROW, left("rejected", OTHER, reason="HTTP 400: invalid"), "send", "send", id="rejected, other body"),
    pytest.param(ROW, left("rejected", SHA, reason="HTTP 401: bad signature"), "send", "send", id="401, same body"),
    pytest.param(ROW, left("rejected", SHA, reason="HTTP 403: forbidden"), "send", "send", id="403, same body"),
    pytest.param(ROW, left("rejected", SHA, reason="HTTP 302: moved"), "send", "send", id="302, same body"),
    pytest.param(ROW, left("rejected", SHA, reason="HTTP 404: no route"), "send", "send", id="create 404, same body"),
    pytest.param(ROW, left("rejected", SHA, reason="HTTP 503: busy"), "send", "send", id="503, same body"),
    pytest.param(ROW, left("rejected", SHA, reason="rejected earlier with the same body (run 2): HTTP 403: no"),
                 "send", "send", id="403 reported again, same body"),
    pytest.param(ROW, left("rejected", SHA, OTHER, "HTTP 422: bad"), "rejected_again", "rejected_again",
                 id="correction refused, same body"),
    pytest.param(ROW, left("rejected", SHA, OTHER, "HTTP 401: bad"), "changed", "send",
                 id="correction refused by our site, same body"),
    pytest.param(ROW, left("rejected", THIRD, OTHER, "HTTP 422: bad"), "changed", "send",
                 id="correction refused, other body"),
    pytest.param(ROW, left("sending"), "settle", "settle", id="sending"),
    pytest.param(ROW, left("ambiguous"), "settle", "settle", id="ambiguous"),
    pytest.param(ROW, left("unverified"), "settle", "settle", id="unverified"),
    pytest.param(ROW, left("ambiguous", OTHER, SHA), "settle", "settle", id="correction in doubt, back to delivered"),
    pytest.param(ROW, left("failed"), "send", "send", id="failed"),
    pytest.param(ROW, left("invalid", None), "send", "send", id="invalid before"),
    pytest.param(ROW, left("excluded", None), "send", "send", id="excluded before"),
    pytest.param(ROW, left("duplicate"), "send", "send", id="duplicate before"),
    pytest.param(RENUMBERED, left("delivered", OTHER, OTHER), "renumbered", "renumbered", id="renumbered, delivered"),
    pytest.param(RENUMBERED, left("ambiguous", OTHER, OTHER), "renumbered", "renumbered",
                 id="renumbered, delivered then in doubt"),
    pytest.param(RENUMBERED, left("failed"), "send", "send", id="renumbered, never delivered"),
    pytest.param(RENUMBERED, left("sending"), "renumbered", "renumbered", id="renumbered, sending"),
    pytest.param(RENUMBERED, left("ambiguous"), "renumbered", "renumbered", id="renumbered, its create ambiguous"),
    pytest.param(RENUMBERED, left("unverified"), "renumbered", "renumbered", id="renumbered, its create unverified"),
    pytest.param(EXCLUDED, left("delivered", OTHER, OTHER), "excluded", "excluded", id="excluded now"),
    pytest.param(INVALID, left("delivered", OTHER, OTHER), "invalid", "invalid", id="invalid now"),
    pytest.param(DUPLICATE, NOTHING, "duplicate", "duplicate", id="duplicate now, never seen"),
    pytest.param(DUPLICATE, left("delivered", OTHER, OTHER), "duplicate", "duplicate", id="duplicate now, delivered"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "prior", "hold", "update"), PLANS)
def test_what_a_row_needs_from_what_earlier_runs_left(
    row: MappedRow, prior: PriorRows, hold: Plan, update: Plan
) -> None:
    sha = sha256_hex(row.body) if row.body is not None and row.excluded is None else None
    policies: tuple[tuple[OnChange, Plan], ...] = (("hold", hold), ("update", update))
    for on_change, needs in policies:
        assert plan(row, prior, on_change) == (needs, sha), on_change


# -- where requests go ----------------------------------------------------------------------------

BASE = "https://coremr.test/"
PATIENTS, PATIENTS_V3 = "https://coremr.test/ws/patients/", "https://coremr.test/ws/v3/patients/"


def target(api: ApiVersion, bookings_routes: bool) -> Target:
    mapping = Mapping(Path("m.toml"), "0" * 64, api, API_PROFILES[api].routes.collection,
                      booking_fields=("booking_no", "booking_date", "facility"))  # fmt: skip
    return Target.of(mapping, BASE, bookings_routes=bookings_routes)


# The URLs of row P1/B1's requests by API version and whether the site has the bookings routes.
URLS = [
    pytest.param("v1", True, PATIENTS, "PUT", PATIENTS + "P1", None, None, id="v1"),
    pytest.param("v2", True, PATIENTS, "POST", PATIENTS + "P1", PATIENTS + "P1/bookings/",
                 PATIENTS + "P1/bookings/B1", id="v2 with bookings routes"),
    pytest.param("v2", False, PATIENTS, "POST", PATIENTS + "P1", None, None, id="v2 without"),
    pytest.param("v3", True, PATIENTS_V3, "POST", PATIENTS_V3 + "P1", PATIENTS_V3 + "P1/bookings/",
                 PATIENTS_V3 + "P1/bookings/B1", id="v3 with bookings routes"),
    pytest.param("v3", False, PATIENTS_V3, "POST", PATIENTS_V3 + "P1", None, None, id="v3 without"),
]  # fmt: skip


@pytest.mark.parametrize(("api", "routes", "create", "update", "patient", "bookings", "booking"), URLS)
def test_where_each_request_of_a_row_goes(
    api: ApiVersion, routes: bool, create: str, update: str, patient: str, bookings: str | None, booking: str | None
) -> None:
    t = target(api, routes)
    assert (t.create_url, t.update_method, t.patient_url("P1")) == (create, update, patient)
    assert (t.bookings_url("P1"), t.booking_url("P1", Booking("B1", b"{}"))) == (bookings, booking)


@pytest.mark.parametrize(
    ("external_id", "number", "patient", "booking"),
    [("P 1/ä", "B/1", PATIENTS + "P%201%2F%C3%A4", PATIENTS + "P%201%2F%C3%A4/bookings/B%2F1"),
     (".", "B1", None, None), ("..", "B1", None, None), ("", "B1", None, None), (None, "B1", None, None),
     ("P1", ".", PATIENTS + "P1", None), ("P1", "..", PATIENTS + "P1", None)],
    ids=["quoted into one segment", "dot", "dot dot", "empty", "none", "booking dot", "booking dot dot"],
)  # fmt: skip
def test_a_name_goes_into_a_url_as_one_segment_or_not_at_all(
    external_id: str | None, number: str, patient: str | None, booking: str | None
) -> None:
    t = target("v2", True)
    assert (t.patient_url(external_id), t.booking_url(external_id, Booking(number, b"{}"))) == (patient, booking)


ROW_BODY = {"external_id": "P1", "facility": 10000, "booking_date": "2026-11-28 22:15:00.000", "booking_no": "B1"}

# The booking a row's body gives the bookings routes: its number, and the mapping's booking_fields in their order.
BOOKINGS = [
    pytest.param("v2", True, ROW_BODY, Booking("B1", b'{"booking_no":"B1","booking_date":"2026-11-28 22:15:00.000",'
                                                     b'"facility":10000}'), id="v2"),
    pytest.param("v2", False, ROW_BODY, None, id="no bookings routes"),
    pytest.param("v1", True, {**ROW_BODY, "booking_number": "B1"}, None, id="v1"),
    pytest.param("v2", True, {"external_id": "P1", "facility": 10000}, None, id="no booking number"),
    pytest.param("v2", True, {**ROW_BODY, "booking_no": 7}, None, id="a number that is no text"),
    pytest.param("v2", True, {**ROW_BODY, "booking_no": ".."}, None, id="a number no URL can name"),
]  # fmt: skip


@pytest.mark.parametrize(("api", "routes", "body", "booking"), BOOKINGS)
def test_the_booking_a_row_sends_to_the_bookings_routes(
    api: ApiVersion, routes: bool, body: dict[str, object], booking: Booking | None
) -> None:
    assert target(api, routes).booking_of(json.dumps(body).encode()) == booking
