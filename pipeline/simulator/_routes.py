"""The local CWS server's routes for one API version: patients (list, create, read, update) and bookings.

v1: `GET/POST /ws/patients/`, `GET/PUT /ws/patients/{external_id}`. v2: the same with updates by POST,
plus `GET/POST /ws/patients/{external_id}/bookings/` and `GET/POST …/bookings/{booking}` (an older version
of the v2 page lists them; the current one does not). v3: v2's patient routes under `/ws/v3/patients/`, and
no bookings routes, as its page lists none. Whether the bookings routes are there is a site's fact
(assumption "bookings-routes"): ServerOptions can take them away from v2 or give them to v1 and v3.
Statuses the docs do not give follow assumptions "exists-status" (settable: ServerOptions.exists_status)
and "other-statuses"; a 404 says in its body whether the route, the patient or the booking is missing
(assumption "not-found-body").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from ..protocol import EXISTS_STATUS, ApiProfile
from ._answers import booking_answer, patient_answer
from ._checks import booking_problems, patient_problems
from ._counters import CounterBook
from ._http import Answer, error_payload
from ._patients import PatientStore

__all__ = ["PatientRoutes", "ServerOptions", "parse_json"]

_EXISTS = {"external_id": "already exists"}
NO_ROUTE, NO_PATIENT, NO_BOOKING = "no such route", "no such patient", "no such booking"  # "not-found-body"


@dataclass(frozen=True)
class ServerOptions:
    """What the local server plays where a site's CorEMR may differ from our guesses (each a named assumption)."""

    bookings_routes: bool | None = None  # None: the version's docs (v2 has them from an older page, v1 and v3 not)
    exists_status: int = EXISTS_STATUS  # the status a second create of an external_id or booking answers
    # The facilities a site's CorEMR has (None: any): a create naming another is refused with a 400, as a site
    # whose facility is not added in CorEMR yet would refuse it.
    facilities: tuple[object, ...] | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.exists_status <= 499:
            raise ValueError(f"exists_status {self.exists_status}: a refusal is a 4xx status (400 to 499)")

    def served(self, api: ApiProfile) -> ApiProfile:
        """API as this server plays it: with or without the bookings routes (by default v2 only: v3's page lists
        none, and only an older version of v2's lists them)."""
        has = api.routes.has_bookings and api.version != "v3" if self.bookings_routes is None else self.bookings_routes
        if has == api.routes.has_bookings:
            return api
        return replace(api, routes=replace(api.routes, has_bookings=has))


def parse_json(body: bytes) -> tuple[object, str | None]:
    """The JSON value of BODY, or None and what is wrong with it."""
    try:
        return json.loads(body), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except ValueError:
        return None, "invalid JSON: the body is not UTF-8 text"


def _not_allowed(*methods: str) -> Answer:
    allow = ", ".join(methods)
    return Answer(405, error_payload("method not allowed"), (("Allow", allow),))


def _no_route() -> Answer:
    return Answer(404, error_payload(NO_ROUTE))


def _no_patient() -> Answer:
    return Answer(404, error_payload(NO_PATIENT))


def _no_booking() -> Answer:
    return Answer(404, error_payload(NO_BOOKING))


class PatientRoutes:
    """Answers one API version's patient and booking requests from a store, counting what it stores."""

    def __init__(
        self, api: ApiProfile, store: PatientStore, counters: CounterBook, options: ServerOptions | None = None
    ) -> None:
        self.options = options or ServerOptions()
        self.api = self.options.served(api)
        self.store = store
        self.counters = counters
        # The exact bytes that stored each patient and booking: a refused create carrying them again is a
        # blind resend, which a server that did not refuse it would store twice.
        self._stored_by: dict[tuple[str, ...], bytes] = {}
        self._lock = threading.Lock()

    def target(self, path: str) -> tuple[str, ...] | None:
        """The route a path names: () the list, (id,) a patient, (id, "bookings"[, number]); None: no route."""
        collection = self.api.routes.collection
        if path in (collection, collection.rstrip("/")):
            return ()
        if not path.startswith(collection):
            return None
        parts = path[len(collection) :].split("/")
        if len(parts) == 3 and parts[1:] == ["bookings", ""]:
            parts = parts[:2]
        segments = tuple(unquote(p) for p in parts)
        if not all(segments) or len(segments) > 3 or (len(segments) > 1 and segments[1] != "bookings"):
            return None
        if len(segments) > 1 and not self.api.routes.has_bookings:
            return None
        return segments

    def count_attempt(self, method: str, path: str, body: bytes) -> None:
        """Count a create or booking create as it arrives, whatever happens to it next."""
        target = self.target(path)
        if method != "POST" or target is None or len(target) not in (0, 2):
            return
        parsed, _ = parse_json(body)
        if target == ():
            if isinstance(parsed, dict) and isinstance(parsed.get("external_id"), str):
                self.counters.create_attempt(parsed["external_id"])
        elif isinstance(parsed, dict) and isinstance(parsed.get(self.api.booking_number), str):
            self.counters.booking_attempt(target[0], parsed[self.api.booking_number])

    def answer(self, method: str, path: str, body: bytes) -> Answer:
        """The answer to a request whose signature checked out."""
        target = self.target(path)
        if target is None:
            return _no_route()
        update = self.api.routes.update_method
        if target == ():
            if method == "GET":
                return Answer(200, [patient_answer(self.api, p) for p in self.store.all().values()])
            return self._create(body) if method == "POST" else _not_allowed("GET", "POST")
        if len(target) == 1:
            if method == "GET":
                return self._read(target[0])
            return self._update(target[0], body) if method == update else _not_allowed("GET", update)
        if len(target) == 2:
            if method == "GET":
                return self._bookings(target[0])
            return self._add_booking(target[0], body) if method == "POST" else _not_allowed("GET", "POST")
        if method == "GET":
            return self._booking(target[0], target[2])
        return self._update_booking(target[0], target[2], body) if method == "POST" else _not_allowed("GET", "POST")

    def _checked(self, body: bytes, what: str, problems: Callable[[object], dict[str, str]]) -> dict[str, Any] | Answer:
        """The body as a JSON object when it passes PROBLEMS, else the 400 answer naming each field."""
        parsed, problem = parse_json(body)
        if problem is not None:
            return Answer(400, error_payload(problem))
        fields = problems(parsed)
        if fields:
            return Answer(400, error_payload(f"invalid {what}", fields))
        assert isinstance(parsed, dict)  # the checks refuse anything else
        return parsed

    def _patient_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body's patient fields (booking fields and fields the version does not list are not kept)."""
        return {k: v for k, v in body.items() if (rule := self.api.rule(k)) is not None and not rule.booking}

    def _booking_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k in self.api.booking_fields}

    def _create(self, body: bytes) -> Answer:
        checked = self._checked(body, "patient", lambda b: patient_problems(self.api, b))
        if isinstance(checked, Answer):
            return checked
        if self.options.facilities is not None and checked.get("facility") not in self.options.facilities:
            return Answer(400, error_payload("invalid patient", {"facility": "unknown facility"}))
        external_id, patient = checked["external_id"], self._patient_fields(checked)
        number = checked.get(self.api.booking_number)  # required in every version (assumption "first-booking")
        booking = None if number is None else (number, self._booking_fields(checked))
        if not self.store.create(external_id, patient, booking):
            self.counters.refused_create(external_id, resent=self._stored_with(external_id) == body)
            exists = error_payload("a patient with this external_id already exists", _EXISTS)
            return Answer(self.options.exists_status, exists)
        with self._lock:
            self._stored_by[(external_id,)] = body
        self.counters.created(external_id)
        if number is not None:
            self.counters.booking_created(external_id, number)
        return Answer(201, patient_answer(self.api, patient))

    def _stored_with(self, *what: str) -> bytes | None:
        """The bytes that stored a patient (external_id) or a booking (external_id, number), if a request did."""
        with self._lock:
            return self._stored_by.get(what)

    def _read(self, external_id: str) -> Answer:
        found = self.store.get(external_id)
        return _no_patient() if found is None else Answer(200, patient_answer(self.api, found))

    def _update(self, external_id: str, body: bytes) -> Answer:
        checked = self._checked(body, "patient", lambda b: patient_problems(self.api, b, external_id=external_id))
        if isinstance(checked, Answer):
            return checked
        updated = self.store.update(external_id, self._patient_fields(checked))
        if updated is None:
            return _no_patient()
        self.counters.updated(external_id)
        return Answer(200, patient_answer(self.api, updated))

    def _bookings(self, external_id: str) -> Answer:
        found = self.store.bookings(external_id)
        if found is None:
            return _no_patient()
        return Answer(200, [booking_answer(self.api, b) for b in found.values()])

    def _booking(self, external_id: str, number: str) -> Answer:
        found = self.store.bookings(external_id)
        if found is None:
            return _no_patient()
        if number not in found:
            return _no_booking()
        return Answer(200, booking_answer(self.api, found[number]))

    def _add_booking(self, external_id: str, body: bytes) -> Answer:
        checked = self._checked(body, "booking", lambda b: booking_problems(self.api, b))
        if isinstance(checked, Answer):
            return checked
        number, booking = checked[self.api.booking_number], self._booking_fields(checked)
        outcome = self.store.add_booking(external_id, number, booking)
        if outcome == "no_patient":
            return _no_patient()
        if outcome == "exists":
            resent = self._stored_with(external_id, number) == body
            self.counters.refused_booking_create(external_id, number, resent=resent)
            exists = {self.api.booking_number: "already exists"}
            refusal = error_payload("this patient already has a booking with this number", exists)
            return Answer(self.options.exists_status, refusal)
        with self._lock:
            self._stored_by[(external_id, number)] = body
        self.counters.booking_created(external_id, number)
        return Answer(201, booking_answer(self.api, booking))

    def _update_booking(self, external_id: str, number: str, body: bytes) -> Answer:
        checked = self._checked(body, "booking", lambda b: booking_problems(self.api, b, booking=number))
        if isinstance(checked, Answer):
            return checked
        updated = self.store.update_booking(external_id, number, self._booking_fields(checked))
        if updated is None:
            return _no_booking()
        self.counters.booking_updated(external_id, number)
        return Answer(200, booking_answer(self.api, updated))

    def enter_by_hand(self, body: bytes) -> Answer:
        """Store a patient (and its first booking) as someone entering it in CorEMR would: no signature, no faults."""
        return self._create(body)
