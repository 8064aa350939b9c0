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
from typing import Any, Literal, get_args
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
    Assumption("v2-sex-values", ("v2", "v3"), 'sex is "M", "F" or "U"',
               'the docs show only "M" (the walkthrough body, v3\'s ?sex=M filter); F and U mirror v1\'s'
               " Female and Unknown"),
    Assumption("v2-external-id-length", ("v2", "v3"), "external_id is text of 1 to 17 characters, as in v1",
               "v1 documents String(17), at least 1 character; the v2/v3 field tables could only be read in part"),
    Assumption("v2-optional-fields", ("v2", "v3"), "the optional fields of v1 (mname, ssn, race, height, ...)"
               " keep their names; of v1's limits only ssn's (at most 11 characters) is checked, not v1's other"
               " lengths nor its race and ethnicity values", "only the first part of the v2/v3 field tables could"
               " be read: a v1 limit applied to v2/v3 would refuse what CorEMR may take"),
    Assumption("booking-no-length", ("v2", "v3"), "booking_no is text of at most 32 characters",
               "v1 documents booking_number as String(32); v2 renamed it and its length could not be read"),
    Assumption("height-weight-numbers", ("v2", "v3"), "height (inches) and weight (pounds) are JSON numbers",
               "v1 documents height as Integer and weight as Float; the v2/v3 tables could not be read"),
    Assumption("fractional-digits", API_VERSIONS, "dates are read as YYYY-MM-DD HH:MM:SS with 0 to 3"
               " fractional digits, written with 3", "the walkthrough sends 2 (booking_date) and 3 (dob);"
               " v2 answers with 3; no grammar is published"),
    Assumption("date-only-dob", API_VERSIONS, "a date field (dob) may be sent as YYYY-MM-DD without a time",
               "v1 types dob as Date; v2 answers it as YYYY-MM-DD 00:00:00.000"),
    Assumption("v3-algorithms", ("v3",), "v3 accepts CWS-SHA256 and CWS-SHA1, like v2",
               "the algorithm table lists v1 and v2 only"),
    Assumption("bookings-routes", ("v2", "v3"), "a site's CorEMR has the bookings routes (…/{external_id}/bookings/"
               " and …/bookings/{booking}) only where its run configuration says bookings_routes = \"yes\" or"
               " `cws-pipeline check` found them; the local server plays them for v2 only unless told"
               " --bookings-routes", "an older version of the v2 page lists them; the current v2 page and the v3 page"
               " list only the four patient routes: whether a site has them is found out, not known"),
    Assumption("update-adds-booking", ("v2", "v3"), "where a site sets update_adds_booking = true (default false),"
               " a patient update carrying a new booking_no and booking_date adds that booking, so a returning"
               " person is sent as a patient update", "unverified: v1 documents booking fields as ignored when"
               " updating, and the v2/v3 pages do not say; without it a returning person at a site without"
               " bookings routes is held for a person"),
    Assumption("booking-body", ("v2", "v3"), "a booking body is booking_no, booking_date and facility;"
               " booking_no and booking_date are required", "the bookings field table could not be read"),
    Assumption("first-booking", API_VERSIONS, "a patient create also adds its booking (booking_no or"
               " booking_number, booking_date, facility) as the patient's first booking",
               "the create body carries them and v1 calls them required to add"),
    Assumption("update-ignores-bookings", ("v2", "v3"), "an update ignores booking fields, as in v1",
               "v1 documents it; v2/v3 move bookings to their own routes"),
    Assumption("update-keeps-external-id", API_VERSIONS, "the local server refuses an update whose body's"
               " external_id differs from the one in its path", "the docs do not say whether an update can"
               " change a patient's external_id; refusing keeps one patient from becoming another"),
    Assumption("exists-status", API_VERSIONS, "a second create for an external_id (or a booking number) is"
               " refused with 409; a site whose CorEMR answers otherwise sets exists_status (e.g. [422])",
               "the docs give 201 for a create and nothing for a duplicate; the local server answers another status"
               " with --exists-status"),
    Assumption("other-statuses", API_VERSIONS, "an update answers 200, a booking create 201, an unknown"
               " patient or booking 404", "201 is documented for creates only"),
    Assumption("not-found-body", API_VERSIONS, 'the local server answers a route that is not there 404'
               ' {"error": "no such route"}, an unknown patient 404 {"error": "no such patient"} and an'
               ' unknown booking 404 {"error": "no such booking"}', "the docs do not show a 404; a missing route"
               " and a missing patient may both answer 404, so only the body can tell them apart"),
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
    Assumption("not-processed", API_VERSIONS, "a 429 or 503 means the request was not processed, so it is sent"
               " again; any other 5xx to a create or booking create (500, 502, 504) may come after CorEMR stored it,"
               " so it is looked up before it is sent again", "the docs give no error statuses; in HTTP itself 429"
               " and 503 ask the client to try later (RFC 9110, RFC 6585); the local server's error_after_store"
               " fault plays a 500 after storing"),
    Assumption("update-repeatable", API_VERSIONS, "an update sent twice leaves the patient (or booking) as sent"
               " once, and never creates one", "an update sets the fields it carries; the docs describe no history"
               " a repeat would add to: an update in doubt is sent again instead of looked up"),
    Assumption("booking-answer", ("v2", "v3"), "a booking read answers the booking with its booking number field",
               "the bookings field table could not be read; a lookup that does not name the booking asked for proves"
               " nothing"),
    Assumption("url-path-safety", API_VERSIONS, "an external_id (and a booking number that goes into the bookings"
               " routes) is refused unless it is safe in a URL path: not '.' or '..', no '/', '?', '#', '%',"
               " whitespace or control characters", "the docs put them in the"
               " route's path and say nothing of escaping; '.' and '..' are resolved away by proxies and servers"
               " (GET /ws/patients/.. is the list), and the others change or mangle the route"),
    Assumption("access-name-characters", API_VERSIONS, "an Access name that is empty or holds whitespace or a"
               " comma is refused", "the docs say none of the Authorization header's pieces are escaped: such a"
               " name could not be read back from the header"),
    Assumption("key-floor-2048", API_VERSIONS, "private keys shorter than 2048 bits are refused",
               "the docs give 2048 bits as the minimum recommended length; making it a floor is our choice"),
)  # fmt: skip

EXISTS_STATUS = 409  # assumption "exists-status": the default of the run configuration's exists_status

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
    source: str = ""  # where the rule comes from, cited in messages: "CorEMR v1 docs: String(255)", an assumption

    def cited(self) -> str:
        """The rule's source in parentheses, to follow a message: " (CorEMR v1 docs: String(255))", or ""."""
        return f" ({self.source})" if self.source else ""

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
    required_source: str = ""  # where the required fields come from, cited in messages

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


def _v1(name: str, kind: FieldKind = "text", documented: str = "", **rule: Any) -> FieldRule:
    """A field of v1's documented table, citing what the table says of it."""
    return FieldRule(name, kind, source=f"CorEMR v1 docs: {documented}" if documented else "", **rule)


def _texts(*names: str) -> tuple[FieldRule, ...]:
    return tuple(FieldRule(name) for name in names)


# v1's field table (docs.coremr.com /ws/v1/patients/): every length, type and value list it gives.
_RACES = ("American Indian or Alaskan Native", "Asian", "Black or African American",
          "Native Hawaiian or Other Pacific Islander", "White")  # fmt: skip
_UNLIMITED = (
    *_texts("location_block", "location_pod", "location_cell", "location_bed"),
    *_texts(*(f"custom{i}" for i in range(1, 10)), "allergies"),
)
_V1_FIELDS = (
    _v1("external_id", documented="String(17), at least 1 character", required=True, min_length=1, max_length=17),
    _v1("facility", documented="String(32), required to add", required=True, max_length=32),
    _v1("agency", documented="String(255)", max_length=255),
    _v1("agency_id", documented="String(50)", max_length=50),
    _v1("fname", documented="String(255)", required=True, min_length=1, max_length=255),
    _v1("lname", documented="String(255)", required=True, min_length=1, max_length=255),
    _v1("dob", "date", "Date, required to add", required=True, not_future=True),
    _v1("sex", "choice", "String(7), required to add", required=True, choices=("Male", "Female", "Unknown")),
    _v1("booking_number", documented="String(32)", required=True, min_length=1, max_length=32, booking=True),
    _v1("booking_date", "timestamp", "Datetime", required=True, booking=True),
    _v1("mname", documented="String(255)", max_length=255),
    _v1("ssn", documented="String(11)", max_length=11),
    _v1("race", "choice", "the five listed race values", choices=_RACES),
    _v1("ethnicity", "choice", "Hispanic or Non-Hispanic", choices=("Hispanic", "Non-Hispanic")),
    _v1("height", "integer", "Integer (inches)"),
    _v1("weight", "number", "Float (pounds)"),
    _v1("eye_color", documented="String(64)", max_length=64),
    _v1("hair_color", documented="String(64)", max_length=64),
    _v1("address1", documented="String(128)", max_length=128),
    _v1("address2", documented="String(128)", max_length=128),
    _v1("city", documented="String(32)", max_length=32),
    _v1("state", documented="String(16)", max_length=16),
    _v1("zipcode", documented="String(16)", max_length=16),
    *_UNLIMITED,
)
# v2/v3: v1's optional fields by name, with only the rules the assumptions name (see "v2-optional-fields").
_V2_OPTIONAL = (
    FieldRule("mname"),
    FieldRule("ssn", max_length=11, source="assumption v2-optional-fields: v1's String(11)"),
    *_texts("race", "ethnicity"),
    FieldRule("height", "number", source="assumption height-weight-numbers"),
    FieldRule("weight", "number", source="assumption height-weight-numbers"),
    *_texts("eye_color", "hair_color", "address1", "address2", "city", "state", "zipcode"),
    *_UNLIMITED,
)
_V2_FIELDS = (
    FieldRule("external_id", required=True, min_length=1, max_length=17, source="assumption v2-external-id-length"),
    FieldRule("facility", "integer", required=True, source="CorEMR v2 docs: an integer ID, required"),
    FieldRule("agency", "integer", required=True, source="CorEMR v2 docs: an integer, required"),
    FieldRule("billing_agency", "integer"),
    FieldRule("fname", required=True, min_length=1),
    FieldRule("lname", required=True, min_length=1),
    FieldRule("dob", "date", required=True, not_future=True),
    FieldRule("sex", "choice", required=True, choices=("M", "F", "U"), source="assumption v2-sex-values"),
    FieldRule("booking_no", required=True, min_length=1, max_length=32, booking=True,
              source="assumption booking-no-length"),
    FieldRule("booking_date", "timestamp", required=True, booking=True),
    *_V2_OPTIONAL,
)  # fmt: skip
_V3_AGENCY = FieldRule("agency", "integer", source="CorEMR v3 docs: optional, the site's Default Jurisdiction")

API_PROFILES: dict[ApiVersion, ApiProfile] = {
    "v1": ApiProfile("v1", "CorEMR 5.3+", Routes("/ws/patients/", "PUT", has_bookings=False), _V1_FIELDS,
                     ("CWS-SHA1",), renamed={"booking_no": "booking_number"},
                     required_source="CorEMR v1 docs: the field table's Add column"),
    "v2": ApiProfile("v2", "CorEMR 6.2.0+", Routes("/ws/patients/", "POST", has_bookings=True), _V2_FIELDS,
                     ("CWS-SHA256", "CWS-SHA1"), renamed={"booking_number": "booking_no"},
                     required_source="CorEMR v2 docs and the walkthrough's example; dob, sex: assumption"
                                     " v2-required-dob-sex"),
    "v3": ApiProfile("v3", "CorEMR 6.4.0+", Routes("/ws/v3/patients/", "POST", has_bookings=True),
                     tuple(_V3_AGENCY if f.name == "agency" else f for f in _V2_FIELDS),
                     ("CWS-SHA256", "CWS-SHA1"), renamed={"booking_number": "booking_no"},
                     required_source="CorEMR v3 docs and the walkthrough's example; dob, sex: assumption"
                                     " v2-required-dob-sex"),
}  # fmt: skip
