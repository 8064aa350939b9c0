"""The mapping file: a site's TOML description of how its bookings export becomes CWS patient bodies.

`load_mapping` refuses a file with an unknown option, a bad regex, a bad date format or a wrong type
before any row is read, naming the file, the TOML key path and the problem.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from .._errors import MappingError
from .._toml import TomlFile, kind_of
from ..protocol import API_PROFILES, API_VERSIONS, DEFAULT_API, ApiVersion, Routes
from ..source import CsvFormat
from ._profile import apply_profile

__all__ = [
    "FieldSpec",
    "FieldType",
    "LookupFallback",
    "Mapping",
    "Scalar",
    "Transform",
    "TwoDigitYear",
    "load_mapping",
    "parse_mapping",
]

FieldType = Literal["string", "integer", "number", "datetime"]
Transform = Literal["strip", "upper", "lower", "title", "collapse_spaces", "digits"]
LookupFallback = Literal["error", "keep", "default"]
TwoDigitYear = Literal["past", "strptime"]
Scalar = str | int | float | bool

DEFAULT_ENDPOINT = API_PROFILES[DEFAULT_API].routes.collection
DEFAULT_KEY = API_PROFILES[DEFAULT_API].default_key
DEFAULT_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
PROFILES = ("cws-patient", "none")
# Fields whose offending values are never printed: they identify a person.
IDENTIFYING_FIELDS = frozenset({"fname", "lname", "mname", "dob", "ssn"})

_SECTIONS = {"source", "target", "fields"}
_SOURCE_KEYS = {"encoding", "delimiter", "header_line"}
_TARGET_KEYS = {"api", "endpoint", "key", "datetime_format", "profile"}
_FIELD_KEYS = {
    "column",
    "value",
    "type",
    "formats",
    "two_digit_year",
    "not_future",
    "transform",
    "extract",
    "lookup",
    "lookup_fallback",
    "default",
    "required",
    "max_length",
    "sensitive",
}
_COLUMN_ONLY = (
    "formats",
    "two_digit_year",
    "not_future",
    "transform",
    "extract",
    "lookup",
    "lookup_fallback",
    "default",
)
_DIRECTIVES = set("aAbBcdfHIjmMpSUwWyYzZGuV%")


@dataclass(frozen=True)
class FieldSpec:
    """One output field: where its value comes from and what it must look like."""

    name: str
    column: str | None = None
    value: Scalar | None = None  # the constant, when `column` is None
    type: FieldType = "string"
    formats: tuple[str, ...] = ()
    two_digit_year: TwoDigitYear = "past"
    not_future: bool = False
    transform: tuple[Transform, ...] = ()
    extract: re.Pattern[str] | None = None
    lookup: dict[str, Scalar] | None = None
    lookup_fallback: LookupFallback = "error"
    default: Scalar | None = None
    required: bool = True
    max_length: int | None = None
    min_length: int = 0  # set by a profile (CWS external_id: at least 1 character)
    path_segment: bool = False  # set by a profile: the value goes into a URL path (CWS external_id)
    sensitive: bool = False


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

    @property
    def routes(self) -> Routes:
        """The API version's routes under this mapping's endpoint (create, read, update, bookings)."""
        return API_PROFILES[self.api].routes.at(self.endpoint)

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV columns the mapping reads, in first-use order."""
        return tuple(dict.fromkeys(f.column for f in self.fields if f.column is not None))


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
    fields = tuple(_field(where, name, where.table(f"fields.{name}", spec)) for name, spec in fields_doc.items())
    mapping = _target(where, target)
    fields = apply_profile(mapping.profile, API_PROFILES[mapping.api], fields, mapping.datetime_format, where.error)
    names = [f.name for f in fields]
    for i, k in enumerate(mapping.key_fields):
        if k not in names:
            raise where.error(f"target.key[{i}]", f"{k!r} is not one of the fields ({', '.join(names)})")
    return replace(mapping, path=path, sha256=hashlib.sha256(data).hexdigest(), source=source, fields=fields)


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
    _check_format(where, "target.datetime_format", dt_format)
    profile = where.string("target.profile", target.get("profile", "cws-patient"))
    if profile not in PROFILES:
        raise where.error("target.profile", f"{profile!r} is not one of {', '.join(PROFILES)}")
    return Mapping(Path(), "", api=api, endpoint=endpoint, key_fields=tuple(key), datetime_format=dt_format,
                   profile=profile)  # fmt: skip


def _scalar(where: TomlFile, key_path: str, value: object) -> Scalar:
    if not isinstance(value, str | int | float | bool):
        raise where.error(key_path, f"expected a string, number or boolean, got {kind_of(value)}")
    return value


def _source(where: TomlFile, table: dict[str, Any]) -> CsvFormat:
    where.only("source", table, _SOURCE_KEYS)
    encoding = where.string("source.encoding", table.get("encoding", "utf-8"))
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise where.error("source.encoding", f"{encoding!r} is not a known encoding (e.g. utf-8, cp1252)") from None
    delimiter = where.string("source.delimiter", table.get("delimiter", ","))
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise where.error(
            "source.delimiter", f'{delimiter!r} must be one character, not a quote or newline ("\\t" for tab)'
        )
    header_line = table.get("header_line", 1)
    if not isinstance(header_line, int) or isinstance(header_line, bool) or header_line < 1:
        raise where.error("source.header_line", "expected a line number, 1 or more")
    return CsvFormat(encoding=encoding, delimiter=delimiter, header_line=header_line)


def _check_format(where: TomlFile, key_path: str, fmt: str) -> None:
    """Refuse a strftime/strptime format with an unknown directive or one that cannot round-trip."""
    directives = re.findall(r"%(.?)", fmt)
    if not directives:
        raise where.error(key_path, f'{fmt!r} has no %-directives; expected e.g. "%m/%d/%Y"')
    for d in directives:
        if d not in _DIRECTIVES:
            raise where.error(key_path, f"{fmt!r}: '%{d}' is not a date directive (use %Y %m %d %H %M %S %f %y %b ...)")
    try:
        sample = datetime(2001, 2, 3, 4, 5, 6, 7000)
        datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        raise where.error(key_path, f"{fmt!r} is not a usable date format ({exc})") from None


def _field(where: TomlFile, name: str, table: dict[str, Any]) -> FieldSpec:
    base = f"fields.{name}"
    where.only(base, table, _FIELD_KEYS)
    if ("column" in table) == ("value" in table):
        raise where.error(base, "give exactly one of column (a CSV column) or value (a constant)")
    type_ = table.get("type", _inferred_type(table.get("value")))
    if type_ not in get_args(FieldType):
        raise where.error(f"{base}.type", f"{type_!r} is not one of {', '.join(get_args(FieldType))}")
    required = where.boolean(f"{base}.required", table.get("required", True))
    sensitive = where.boolean(f"{base}.sensitive", table.get("sensitive", name in IDENTIFYING_FIELDS))
    max_length = table.get("max_length")
    if max_length is not None:
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise where.error(f"{base}.max_length", "expected a positive integer")
        if type_ != "string":
            raise where.error(f"{base}.max_length", f"applies to string fields only (this one is {type_})")
    if "value" in table:
        for option in _COLUMN_ONLY:
            if option in table:
                raise where.error(f"{base}.{option}", "applies to column fields only, not to a constant value")
        value = _constant(where, f"{base}.value", type_, table["value"])
        if max_length is not None and len(str(value)) > max_length:
            raise where.error(f"{base}.value", f"longer than max_length {max_length}")
        return FieldSpec(name, value=value, type=type_, required=required, max_length=max_length, sensitive=sensitive)
    column = where.string(f"{base}.column", table["column"]).strip()
    if not column:
        raise where.error(f"{base}.column", "expected a column name from the header row")
    formats: tuple[str, ...] = ()
    for option in ("formats", "two_digit_year", "not_future"):
        if option in table and type_ != "datetime":
            raise where.error(f"{base}.{option}", f'applies to type = "datetime" only (this one is {type_})')
    if type_ == "datetime":
        raw_formats = table.get("formats")
        if not isinstance(raw_formats, list) or not raw_formats:
            raise where.error(f"{base}.formats", 'a datetime field needs a list of formats, e.g. ["%m/%d/%Y"]')
        for i, fmt in enumerate(raw_formats):
            _check_format(where, f"{base}.formats[{i}]", where.string(f"{base}.formats[{i}]", fmt))
        formats = tuple(raw_formats)
    two_digit_year = table.get("two_digit_year", "past")
    if two_digit_year not in get_args(TwoDigitYear):
        raise where.error(f"{base}.two_digit_year", f"{two_digit_year!r} is not one of past, strptime")
    transform = table.get("transform", [])
    if not isinstance(transform, list):
        raise where.error(f"{base}.transform", f'expected a list, e.g. ["strip", "title"], got {kind_of(transform)}')
    for i, t in enumerate(transform):
        if t not in get_args(Transform):
            raise where.error(f"{base}.transform[{i}]", f"{t!r} is not one of {', '.join(get_args(Transform))}")
    extract = None
    if "extract" in table:
        pattern = where.string(f"{base}.extract", table["extract"])
        try:
            extract = re.compile(pattern)
        except re.error as exc:
            raise where.error(f"{base}.extract", f"bad regular expression: {exc}") from None
    lookup = None
    if "lookup" in table:
        lookup_table = where.table(f"{base}.lookup", table["lookup"])
        lookup = {str(k): _scalar(where, f"{base}.lookup.{k}", v) for k, v in lookup_table.items()}
        for k, v in lookup.items():
            _constant(where, f"{base}.lookup.{k}", type_, v, lookup=True)
    fallback = table.get("lookup_fallback", "error")
    if fallback not in get_args(LookupFallback):
        raise where.error(f"{base}.lookup_fallback", f"{fallback!r} is not one of error, keep, default")
    if "lookup_fallback" in table and lookup is None:
        raise where.error(f"{base}.lookup_fallback", "applies only with a lookup table")
    default = _scalar(where, f"{base}.default", table["default"]) if "default" in table else None
    if fallback == "default" and default is None:
        raise where.error(f"{base}.lookup_fallback", 'is "default" but the field has no default')
    return FieldSpec(
        name=name,
        column=column,
        type=type_,
        formats=formats,
        two_digit_year=two_digit_year,
        not_future=where.boolean(f"{base}.not_future", table.get("not_future", False)),
        transform=tuple(transform),
        extract=extract,
        lookup=lookup,
        lookup_fallback=fallback,
        default=default,
        required=required,
        max_length=max_length,
        sensitive=sensitive,
    )


def _inferred_type(value: object) -> str:
    """A constant's type when none is given: 10000 is an integer, 1.5 a number, anything else a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "integer"
    return "number" if isinstance(value, float) else "string"


def _constant(where: TomlFile, key_path: str, type_: str, value: object, *, lookup: bool = False) -> Scalar:
    """Check a constant (or lookup result) against the field type."""
    scalar = _scalar(where, key_path, value)
    if lookup and isinstance(scalar, str):
        return scalar  # converted per row, like a cell
    ok = {
        "string": isinstance(scalar, str),
        "integer": isinstance(scalar, int) and not isinstance(scalar, bool),
        "number": isinstance(scalar, int | float) and not isinstance(scalar, bool),
        "datetime": isinstance(scalar, str),
    }[type_]
    if not ok:
        raise where.error(key_path, f'{kind_of(scalar)} does not fit type = "{type_}"')
    return scalar
