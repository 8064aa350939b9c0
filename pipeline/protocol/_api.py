"""CorEMR's API versions v1, v2 and v3: routes, update verb, body fields and their rules, algorithms.

Facts come from CorEMR's documentation (docs.coremr.com: /ws/v1/patients/, /ws/v2/patients,
/ws/v3/patients, /ws/security/ and the security walkthrough), of which only the first part of each
page could be read. Where the documents are silent the choice made is an entry of ASSUMPTIONS, with
its reason, here and nowhere else. The mapping's `[target] api` picks a version; the mapping checks
and the local CWS server both read these tables, so the client and the rehearsal server agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Literal, get_args
from urllib.parse import quote

from .._errors import ConfigError
from ._signing import Algorithm

__all__ = [
    "API_PROFILES",
    "API_VERSIONS",
    "ASSUMPTIONS",
    "DEFAULT_API",
    "EXISTS_STATUS",
    "PATH_SEGMENT_RULE",
    "ApiProfile",
    "ApiVersion",
    "Assumption",
    "FieldKind",
    "FieldRule",
    "Routes",
    "answer_date",
    "date_problem",
    "path_segment_problem",
]

ApiVersion = Literal["v1", "v2", "v3"]
API_VERSIONS: tuple[ApiVersion, ...] = get_args(ApiVersion)
DEFAULT_API: ApiVersion = "v2"  # the walkthrough's dialect: mappings written before versions existed keep working

# text: a string; integer: a JSON integer; number: integer or decimal; date: a day (a time part is
# allowed and answered as 00:00:00.000); timestamp: a day and a time; choice: one of `choices`.
FieldKind = Literal["text", "integer", "number", "date", "timestamp", "choice"]


@dataclass(frozen=True)
class Assumption:
    """Something CorEMR's documents do not say, the choice made, and why."""

    name: str
    versions: tuple[ApiVersion, ...]
    assumed: str
    why: str


# Every choice made where the documents are silent. The README lists each by name (a test checks it).
ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption("v2-required-dob-sex", ("v2", "v3"), "dob and sex are required to create a patient",
               "the walkthrough's example create body carries both; the v2/v3 field tables could only be read"
               " in part, and refusing early beats a patient CorEMR cannot use"),
    Assumption("v1-unmarked-optional", ("v1",), "facility, dob and sex are optional in v1",
               "the v1 field table marks external_id, fname, lname, booking_number and booking_date required"
               " and says nothing of these"),
    Assumption("v2-sex-values", ("v2", "v3"), 'sex is "M", "F" or "U"',
               'the docs show only "M" (the walkthrough body, v3\'s ?sex=M filter); F and U mirror v1\'s'
               " Female and Unknown"),
    Assumption("v2-optional-fields", ("v2", "v3"), "the optional fields of v1 (mname, ssn, race, height, ...)"
               " keep their names and rules", "only the first part of the v2/v3 field tables could be read"),
    Assumption("booking-no-length", ("v2", "v3"), "booking_no is text of at most 32 characters",
               "v1 documents booking_number as String(32); v2 renamed it and its length could not be read"),
    Assumption("height-weight-numbers", API_VERSIONS, "height (inches) and weight (pounds) are JSON numbers",
               "the docs give their units, not their type"),
    Assumption("fractional-digits", API_VERSIONS, "dates are read as YYYY-MM-DD HH:MM:SS with 0 to 3"
               " fractional digits, written with 3", "the walkthrough sends 2 (booking_date) and 3 (dob);"
               " v2 answers with 3; no grammar is published"),
    Assumption("date-only-dob", API_VERSIONS, "a date field (dob) may be sent as YYYY-MM-DD without a time",
               "v1 types dob as Date; v2 answers it as YYYY-MM-DD 00:00:00.000"),
    Assumption("v3-algorithms", ("v3",), "v3 accepts CWS-SHA256 and CWS-SHA1, like v2",
               "the algorithm table lists v1 and v2 only"),
    Assumption("booking-body", ("v2", "v3"), "a booking body is booking_no, booking_date and facility;"
               " booking_no and booking_date are required", "the bookings field table could not be read"),
    Assumption("first-booking", API_VERSIONS, "a patient create also adds its booking (booking_no or"
               " booking_number, booking_date, facility) as the patient's first booking",
               "the create body carries them and v1 calls them required to add"),
    Assumption("update-ignores-bookings", ("v2", "v3"), "an update ignores booking fields, as in v1",
               "v1 documents it; v2/v3 move bookings to their own routes"),
    Assumption("exists-status", API_VERSIONS, "a second create for an external_id (or a booking number) is"
               " refused with 409", "the docs give 201 for a create and nothing for a duplicate"),
    Assumption("other-statuses", API_VERSIONS, "an update answers 200, a booking create 201, an unknown"
               " patient or booking 404", "201 is documented for creates only"),
    Assumption("unknown-fields", API_VERSIONS, "fields a version does not list are accepted and ignored",
               'the walkthrough: "there could be more optional fields"'),
    Assumption("answer-shape", API_VERSIONS, "an answer about a patient holds its documented patient fields"
               " in their GET form (v2/v3 facility as text, dates with 3 fractional digits); booking fields"
               " are answered under the bookings routes; a create answers the patient", "v2 documents the GET"
               " form of facility and dates; the rest of the answer shapes could not be read"),
    Assumption("error-shape", API_VERSIONS, 'errors are signed JSON {"error": ..., "fields": {...}}',
               "the docs do not show an error answer"),
    Assumption("answer-algorithm", API_VERSIONS, "CorEMR signs an answer with the algorithm of the request",
               'the walkthrough: "typically CWS-SHA256 or CWS-SHA1"; the local server makes it a setting'),
    Assumption("list-filters", ("v1", "v3"), "list query strings (include_released, ?sex=, ?limit=) are"
               " ignored by the local server", "the client never lists patients"),
    Assumption("update-repeatable", API_VERSIONS, "an update sent twice leaves the patient (or booking) as sent"
               " once, and never creates one", "an update sets the fields it carries; the docs describe no history"
               " a repeat would add to: an update in doubt is sent again instead of looked up"),
    Assumption("booking-answer", ("v2", "v3"), "a booking read answers the booking with its booking number field",
               "the bookings field table could not be read; a lookup that does not name the booking asked for proves"
               " nothing"),
)  # fmt: skip

EXISTS_STATUS = 409  # assumption "exists-status"

# A value put in a URL path segment: '/' '?' '#' would change the route, '%' starts an escape,
# whitespace and control characters are mangled on the way, and '.' or '..' are resolved away by
# proxies and servers (GET /ws/patients/.. is the list).
_PATH_UNSAFE = re.compile(r"[/?#%\s\x00-\x1f\x7f-\x9f]|^\.{1,2}$")
_PATH_UNSAFE_CHARACTER = re.compile(r"[/?#%\s\x00-\x1f\x7f-\x9f]")
_DOT_SEGMENTS = frozenset((".", ".."))
PATH_SEGMENT_RULE = "text safe in a URL path (not '.' or '..', no '/', '?', '#', '%', whitespace or control characters)"

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?)?")


def path_segment_problem(value: str) -> str | None:
    """Why VALUE cannot be one segment of a URL path, or None when it can."""
    return PATH_SEGMENT_RULE if _PATH_UNSAFE.search(value) else None


def unsafe_path_segments(values: Sequence[str]) -> list[int]:
    """The indexes of VALUES that cannot be one segment of a URL path: one scan of them all in the usual case."""
    if not _PATH_UNSAFE_CHARACTER.search("".join(values)) and not _DOT_SEGMENTS.intersection(values):
        return []
    return [i for i, value in enumerate(values) if _PATH_UNSAFE.search(value)]


def date_problem(kind: FieldKind, text: str) -> str | None:
    """Why TEXT is not a date of this kind as CorEMR reads it, or None (see "fractional-digits", "date-only-dob")."""
    rule = "YYYY-MM-DD HH:MM:SS with 0 to 3 fractional digits, e.g. 2023-04-07 10:00:00.000"
    if kind == "date":
        rule = f"YYYY-MM-DD or {rule}"
    match = _DATE.fullmatch(text)
    if match is None or (kind == "timestamp" and match[4] is None):
        return f"must be {rule}"
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return f"must be a real date and time ({rule})"
    return None


def answer_date(kind: FieldKind, text: str) -> str:
    """A date as CorEMR answers it: YYYY-MM-DD 00:00:00.000 for a day, 3 fractional digits for a timestamp."""
    match = _DATE.fullmatch(text)
    if match is None:
        return text
    if kind == "date" or match[4] is None:
        return f"{match[1]}-{match[2]}-{match[3]} 00:00:00.000"
    return f"{match[1]}-{match[2]}-{match[3]} {match[4]}:{match[5]}:{match[6]}.{(match[7] or '').ljust(3, '0')}"


@dataclass(frozen=True)
class FieldRule:
    """One body field of a version: its kind, limits, and whether a create needs it."""

    name: str
    kind: FieldKind = "text"
    required: bool = False  # to create a patient
    max_length: int | None = None
    min_length: int = 0
    choices: tuple[str, ...] = ()
    not_future: bool = False
    booking: bool = False  # a booking's field: needed to add, ignored when updating

    def describe(self) -> str:
        """What a value must be, in words: 'text of 1 to 17 characters', 'one of M, F, U', ..."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "text":
            if self.max_length is None:
                return "text" if not self.min_length else "non-empty text"
            low = f"{self.min_length} to " if self.min_length else "at most "
            return f"text of {low}{self.max_length} characters"
        return {"integer": "an integer", "number": "a number", "date": "a date", "timestamp": "a date and time"}[
            self.kind
        ]


@dataclass(frozen=True)
class Routes:
    """Where a version's requests go, under its patients collection, and how an update is sent."""

    collection: str  # e.g. /ws/patients/
    update_method: Literal["PUT", "POST"]
    has_bookings: bool

    def at(self, collection: str) -> Routes:
        """The same routes under another collection path (a mapping's `[target] endpoint`)."""
        return replace(self, collection=collection if collection.endswith("/") else collection + "/")

    def patient(self, external_id: str) -> str:
        """Read (GET) and update (update_method) one patient."""
        return self.collection + quote(external_id, safe="")

    def bookings(self, external_id: str) -> str:
        """List (GET) and create (POST) a patient's bookings (v2 and v3 only)."""
        if not self.has_bookings:
            raise ValueError("this API version has no bookings routes")
        return self.patient(external_id) + "/bookings/"

    def booking(self, external_id: str, booking: str) -> str:
        """Read (GET) and update (POST) one booking (v2 and v3 only)."""
        return self.bookings(external_id) + quote(booking, safe="")

    def table(self) -> tuple[tuple[str, str, str], ...]:
        """(action, method, path) for every route, with {external_id} and {booking} placeholders."""
        one = self.collection + "{external_id}"
        rows = [("create", "POST", self.collection), ("list", "GET", self.collection), ("read", "GET", one),
                ("update", self.update_method, one)]  # fmt: skip
        if self.has_bookings:
            rows += [("bookings", "GET", one + "/bookings/"), ("booking create", "POST", one + "/bookings/"),
                     ("booking read", "GET", one + "/bookings/{booking}"),
                     ("booking update", "POST", one + "/bookings/{booking}")]  # fmt: skip
        return tuple(rows)


@dataclass(frozen=True)
class ApiProfile:
    """One CorEMR API version: its routes, body fields, and the algorithms it accepts (preferred first)."""

    version: ApiVersion
    coremr: str
    routes: Routes
    fields: tuple[FieldRule, ...]
    algorithms: tuple[Algorithm, ...]
    renamed: dict[str, str] = field(default_factory=dict)  # another version's name -> this version's

    def rule(self, name: str) -> FieldRule | None:
        """The rule for a body field, or None for a field this version does not list."""
        return self._rules.get(name)

    @cached_property  # the local server asks for rules per field of every request
    def _rules(self) -> dict[str, FieldRule]:
        return {f.name: f for f in self.fields}

    @cached_property
    def required(self) -> tuple[str, ...]:
        """The fields a create body must hold."""
        return tuple(f.name for f in self.fields if f.required)

    @cached_property
    def booking_number(self) -> str:
        """The name of the booking number field: booking_number (v1) or booking_no (v2, v3)."""
        return next(f.name for f in self.fields if f.booking and f.kind == "text")

    @cached_property
    def booking_fields(self) -> tuple[str, ...]:
        """The fields of a booking body (assumption "booking-body")."""
        return tuple(f.name for f in self.fields if f.booking or f.name == "facility")

    @property
    def default_key(self) -> tuple[str, str]:
        """The fields that name a row across runs when the mapping does not say."""
        return ("external_id", self.booking_number)

    def require_algorithm(self, algorithm: str, where: str) -> None:
        """Refuse (ConfigError naming WHERE) an algorithm this version does not accept; nothing is sent."""
        if algorithm not in self.algorithms:
            raise ConfigError(
                f"{where}: CorEMR API {self.version} ({self.coremr}) accepts {' and '.join(self.algorithms)} only,"
                f' not {algorithm}; set algorithm = "{self.algorithms[0]}"'
            )


def _optional_text(*names: str) -> tuple[FieldRule, ...]:
    return tuple(FieldRule(name) for name in names)


_OPTIONAL = (
    FieldRule("mname"),
    FieldRule("ssn", max_length=11),
    *_optional_text("race", "ethnicity"),
    FieldRule("height", "number"),
    FieldRule("weight", "number"),
    *_optional_text("eye_color", "hair_color", "address1", "address2", "city", "state", "zipcode"),
    *_optional_text("location_block", "location_pod", "location_cell", "location_bed"),
    *_optional_text(*(f"custom{i}" for i in range(1, 10)), "allergies"),
)
_EXTERNAL_ID = FieldRule("external_id", required=True, min_length=1, max_length=17)
_NAMES = (FieldRule("fname", required=True, min_length=1), FieldRule("lname", required=True, min_length=1))
_V2_FIELDS = (
    _EXTERNAL_ID,
    FieldRule("facility", "integer", required=True),
    FieldRule("agency", "integer", required=True),
    FieldRule("billing_agency", "integer"),
    *_NAMES,
    FieldRule("dob", "date", required=True, not_future=True),
    FieldRule("sex", "choice", required=True, choices=("M", "F", "U")),
    FieldRule("booking_no", required=True, min_length=1, max_length=32, booking=True),
    FieldRule("booking_date", "timestamp", required=True, booking=True),
    *_OPTIONAL,
)
_V1_FIELDS = (
    _EXTERNAL_ID,
    FieldRule("facility", max_length=32),
    *_NAMES,
    FieldRule("dob", "date", not_future=True),
    FieldRule("sex", "choice", choices=("Male", "Female", "Unknown")),
    FieldRule("booking_number", required=True, min_length=1, max_length=32, booking=True),
    FieldRule("booking_date", "timestamp", required=True, booking=True),
    *_OPTIONAL,
)

API_PROFILES: dict[ApiVersion, ApiProfile] = {
    "v1": ApiProfile("v1", "CorEMR 5.3+", Routes("/ws/patients/", "PUT", has_bookings=False), _V1_FIELDS,
                     ("CWS-SHA1",), renamed={"booking_no": "booking_number"}),
    "v2": ApiProfile("v2", "CorEMR 6.2.0+", Routes("/ws/patients/", "POST", has_bookings=True), _V2_FIELDS,
                     ("CWS-SHA256", "CWS-SHA1"), renamed={"booking_number": "booking_no"}),
    "v3": ApiProfile("v3", "CorEMR 6.4.0+", Routes("/ws/v3/patients/", "POST", has_bookings=True),
                     tuple(replace(f, required=False) if f.name == "agency" else f for f in _V2_FIELDS),
                     ("CWS-SHA256", "CWS-SHA1"), renamed={"booking_number": "booking_no"}),
}  # fmt: skip
