"""The mapping file: a site's TOML description of how its bookings export becomes CWS patient bodies.

`load_mapping` refuses a file with an unknown option, a bad regex, a bad date format or a wrong type
before any row is read, naming the file, the TOML key path and the problem.
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from .._errors import MappingError
from .._toml import TomlFile
from ..protocol import API_PROFILES, API_VERSIONS, DEFAULT_API, ApiVersion, Routes
from ..source import EXTRA_CELLS_CHOICES, MISSING_CELLS_CHOICES, CsvFormat
from ._dates import date_format_problem
from ._exclusions import ExcludeRule, parse_exclusions
from ._field_spec import (
    IDENTIFYING_FIELDS,
    FieldSpec,
    FieldType,
    LookupFallback,
    Scalar,
    Transform,
    TwoDigitYear,
    parse_field,
)
from ._profile import apply_profile
from ._regex import UserRegex, regex_problem
from ._tables import LookupFile

__all__ = [
    "ON_CHANGE_POLICIES",
    "FieldSpec",
    "FieldType",
    "LookupFallback",
    "Mapping",
    "OnChange",
    "Scalar",
    "Transform",
    "TwoDigitYear",
    "load_mapping",
    "parse_mapping",
]

DEFAULT_ENDPOINT = API_PROFILES[DEFAULT_API].routes.collection
DEFAULT_KEY = API_PROFILES[DEFAULT_API].default_key
DEFAULT_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
PROFILES = ("cws-patient", "none")

_SECTIONS = {"source", "target", "fields", "exclude"}
_SOURCE_KEYS = {"encoding", "delimiter", "header_line", "footer_lines", "footer_match", "extra_cells", "missing_cells"}
# Text codecs that are not character sets: a CSV in them is not a CSV.
_NOT_CHARACTER_SETS = {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"}
_TARGET_KEYS = {"api", "endpoint", "key", "datetime_format", "profile", "on_change", "booking_fields"}

# What a run does with a delivered row that comes back with a different body (a correction in the export):
# hold it (reported as changed; a person updates CorEMR and accepts it) or send it with the update request.
OnChange = Literal["hold", "update"]
ON_CHANGE_POLICIES: tuple[OnChange, ...] = get_args(OnChange)


@dataclass(frozen=True)
class Mapping:
    """A loaded, checked mapping file."""

    path: Path
    sha256: str
    api: ApiVersion = DEFAULT_API
    endpoint: str = DEFAULT_ENDPOINT
    key_fields: tuple[str, ...] = DEFAULT_KEY
    source: CsvFormat = field(default_factory=CsvFormat)
    datetime_format: str = DEFAULT_DATETIME_FORMAT
    profile: str = "cws-patient"
    fields: tuple[FieldSpec, ...] = ()
    exclude: tuple[ExcludeRule, ...] = ()  # rows that are never sent (training records...)
    on_change: OnChange = "hold"
    # The body fields a booking create (or update) sends, in this order (v2/v3; assumption "booking-body").
    booking_fields: tuple[str, ...] = ()

    @property
    def routes(self) -> Routes:
        """The API version's routes under this mapping's endpoint (create, read, update, bookings)."""
        return API_PROFILES[self.api].routes.at(self.endpoint)

    @property
    def booking_identity(self) -> tuple[str, ...]:
        """The fields that tell one booking from another (the booking number, the booking date) this mapping has."""
        booking = {f.name for f in API_PROFILES[self.api].fields if f.booking}
        return tuple(f.name for f in self.fields if f.name in booking)

    @property
    def key_names_booking(self) -> bool:
        """True when the key has a booking component (the booking number or the booking date among its fields):
        without one, a key names a person, and a new booking of that person comes back under the same key."""
        return any(name in self.booking_identity for name in self.key_fields)

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV columns the mapping reads (fields, then row filters), in first-use order."""
        used = [column for f in self.fields for column in f.columns] + [rule.column for rule in self.exclude]
        return tuple(dict.fromkeys(used))


def load_mapping(path: Path | str) -> Mapping:
    """Read and check a mapping file; MappingError naming the file, TOML key path and problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping file ({exc.strerror or exc})") from exc
    return parse_mapping(data, path)


def parse_mapping(data: bytes, path: Path) -> Mapping:
    """Check mapping-file bytes (named PATH in messages) and build the Mapping."""
    where = TomlFile.parse(data, path, MappingError, "mapping file")
    doc = where.data
    where.only("", doc, _SECTIONS)
    source = _source(where, where.table("source", doc.get("source", {})))
    target = where.table("target", doc.get("target", {}))
    where.only("target", target, _TARGET_KEYS)
    fields_doc = where.table("fields", doc.get("fields"))
    if not fields_doc:
        raise where.error("fields", "no output fields; add a [fields.NAME] table for each body key")
    files: list[LookupFile] = []
    fields = tuple(
        parse_field(where, name, where.table(f"fields.{name}", spec), path.parent, files)
        for name, spec in fields_doc.items()
    )
    mapping = _target(where, target)
    fields = apply_profile(mapping.profile, API_PROFILES[mapping.api], fields, mapping.datetime_format, where.error)
    names = [f.name for f in fields]
    for i, k in enumerate(mapping.key_fields):
        if k not in names:
            raise where.error(f"target.key[{i}]", f"{k!r} is not one of the fields ({', '.join(names)})")
    _refuse_identifying_key(where, mapping.key_fields, fields)
    exclude = parse_exclusions(where, doc["exclude"]) if "exclude" in doc else ()
    booking_fields = _booking_fields(where, target, mapping.api, names)
    return replace(
        mapping, path=path, sha256=mapping_sha256(data, files), source=source, fields=fields, exclude=exclude,
        booking_fields=booking_fields,
    )  # fmt: skip


def _target(where: TomlFile, target: dict[str, Any]) -> Mapping:
    """The `[target]` options (a Mapping with no fields yet): the API version first, as it gives the defaults."""
    named = where.string("target.api", target.get("api", DEFAULT_API))
    api = next((v for v in API_VERSIONS if v == named), None)
    if api is None:
        raise where.error("target.api", f"{named!r} is not one of {', '.join(API_VERSIONS)} (the CorEMR API version)")
    routes = API_PROFILES[api].routes
    key = target.get("key", list(API_PROFILES[api].default_key))
    if not isinstance(key, list) or not key or not all(isinstance(k, str) for k in key):
        raise where.error("target.key", 'expected a non-empty list of field names, e.g. ["booking_no"]')
    endpoint = where.string("target.endpoint", target.get("endpoint", routes.collection))
    if not endpoint.startswith("/"):
        example = routes.collection
        raise where.error("target.endpoint", f"{endpoint!r} must be a path starting with '/', e.g. {example!r}")
    dt_format = where.string("target.datetime_format", target.get("datetime_format", DEFAULT_DATETIME_FORMAT))
    if problem := date_format_problem(dt_format, target=True):
        raise where.error("target.datetime_format", f"{dt_format!r} {problem}")
    profile = where.string("target.profile", target.get("profile", "cws-patient"))
    if profile not in PROFILES:
        raise where.error("target.profile", f"{profile!r} is not one of {', '.join(PROFILES)}")
    on_change = where.choice("target.on_change", target.get("on_change", "hold"), ON_CHANGE_POLICIES,
                             "what a run does with a delivered row whose body changed: hold it for a person, or"
                             " send the update")  # fmt: skip
    return Mapping(Path(), "", api=api, endpoint=endpoint, key_fields=tuple(key), datetime_format=dt_format,
                   profile=profile, on_change=on_change)  # fmt: skip


def _booking_fields(where: TomlFile, target: dict[str, Any], api: ApiVersion, names: list[str]) -> tuple[str, ...]:
    """The fields of a booking body: `[target] booking_fields`, else those of assumption "booking-body" present."""
    profile = API_PROFILES[api]
    if "booking_fields" not in target:
        return tuple(name for name in profile.booking_fields if name in names) if profile.routes.has_bookings else ()
    if not profile.routes.has_bookings:
        raise where.error("target.booking_fields", f"CorEMR API {api} has no bookings routes; remove booking_fields")
    chosen = target["booking_fields"]
    if not isinstance(chosen, list) or not chosen or not all(isinstance(f, str) for f in chosen):
        example = ", ".join(f'"{f}"' for f in profile.booking_fields)
        raise where.error("target.booking_fields", f"expected a non-empty list of field names, e.g. [{example}]")
    for i, name in enumerate(chosen):
        if name not in names:
            raise where.error(f"target.booking_fields[{i}]", f"{name!r} is not one of the fields ({', '.join(names)})")
    if profile.booking_number not in chosen:
        raise where.error(
            "target.booking_fields",
            f"must hold {profile.booking_number!r}: it names the booking in the bookings routes",
        )
    if len(set(chosen)) != len(chosen):
        raise where.error("target.booking_fields", "names a field twice")
    return tuple(chosen)


def mapping_sha256(data: bytes, files: list[LookupFile]) -> str:
    """The mapping's recorded SHA-256: of its bytes alone, or also of every lookup file it reads, in order."""
    digest = hashlib.sha256(data)
    for table in files:
        digest.update(b"\0lookup_file\0" + table.name.encode("utf-8") + b"\0" + table.data)
    return digest.hexdigest()


def _refuse_identifying_key(where: TomlFile, key: tuple[str, ...], fields: tuple[FieldSpec, ...]) -> None:
    """A row's key is printed in every message and report: it must never name or date a person."""
    by_name = {f.name: f for f in fields}
    for i, k in enumerate(key):
        if k in IDENTIFYING_FIELDS or by_name[k].sensitive:
            raise where.error(
                f"target.key[{i}]",
                f"{k!r} identifies a person, and a row's key is printed in every message and report;"
                ' key rows by IDs such as ["external_id", "booking_no"]',
            )


def _source(where: TomlFile, table: dict[str, Any]) -> CsvFormat:
    where.only("source", table, _SOURCE_KEYS)
    encoding = _encoding(where, where.string("source.encoding", table.get("encoding", "utf-8")))
    delimiter = where.string("source.delimiter", table.get("delimiter", ","))
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise where.error(
            "source.delimiter", f'{delimiter!r} must be one character, not a quote or newline ("\\t" for tab)'
        )
    header_line = table.get("header_line", 1)
    if not isinstance(header_line, int) or isinstance(header_line, bool) or header_line < 1:
        raise where.error("source.header_line", "expected a line number, 1 or more")
    footer_lines = where.integer("source.footer_lines", table.get("footer_lines", 0), minimum=0, maximum=1000)
    footer_match: UserRegex | None = None
    if "footer_match" in table:
        pattern = where.string("source.footer_match", table["footer_match"])
        if problem := regex_problem(pattern):
            raise where.error("source.footer_match", problem)
        footer_match = UserRegex(pattern)
    extra_cells = where.choice("source.extra_cells", table.get("extra_cells", "error"), EXTRA_CELLS_CHOICES,
                               "what a line with more cells than the header is: a row problem, or the header's"
                               " cells with the rest ignored")  # fmt: skip
    missing_cells = where.choice("source.missing_cells", table.get("missing_cells", "error"), MISSING_CELLS_CHOICES,
                                 "what a line with fewer cells than the header is: a row problem, or its cells"
                                 " padded with blanks")  # fmt: skip
    return CsvFormat(
        encoding=encoding,
        delimiter=delimiter,
        header_line=header_line,
        footer_lines=footer_lines,
        footer_match=None if footer_match is None else footer_match.search,
        extra_cells=extra_cells,
        missing_cells=missing_cells,
    )


def _encoding(where: TomlFile, encoding: str) -> str:
    """ENCODING if it is a character set Python knows (utf-8, cp1252, utf-16...); refused in one line if not."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise where.error("source.encoding", f"{encoding!r} is not a known encoding (e.g. utf-8, cp1252)") from None
    sample = 'id,name;x|y\t"z"\r\n'
    try:
        readable = sample.encode(encoding).decode(encoding) == sample and name not in _NOT_CHARACTER_SETS
    except (LookupError, UnicodeError, ValueError):
        readable = False
    if not readable:
        raise where.error(
            "source.encoding",
            f"{encoding!r} is not a character set a CSV can be written in; use a text encoding such as"
            " utf-8, cp1252, latin-1 or utf-16",
        )
    return encoding
