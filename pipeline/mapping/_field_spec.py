"""One `[fields.NAME]` table of a mapping file: where the value comes from and what it must look like.

Each option is checked when the mapping loads, and a misused one is refused in one line naming its key
path, before any row is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from .._toml import TomlFile, kind_of
from ._dates import date_format_problem
from ._regex import UserRegex, regex_problem
from ._tables import LookupFile, read_lookup_file

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "IDENTIFYING_FIELDS",
    "FieldSpec",
    "FieldType",
    "LookupFallback",
    "Scalar",
    "Transform",
    "TwoDigitYear",
    "control_character",
    "parse_field",
]

FieldType = Literal["string", "integer", "number", "datetime"]
Transform = Literal["strip", "upper", "lower", "title", "collapse_spaces", "digits", "remove_controls"]
LookupFallback = Literal["error", "keep", "default"]
TwoDigitYear = Literal["past", "strptime"]
Scalar = str | int | float | bool

# Fields whose offending values are never printed: they identify a person.
IDENTIFYING_FIELDS = frozenset({"fname", "lname", "mname", "dob", "ssn"})
# The most characters a string field may have when the mapping sets no max_length: no CWS field is longer,
# and a 50 MB surname is a broken export, not a name.
DEFAULT_MAX_LENGTH = 1000
# C0 and C1 control characters and DEL: never sent (NUL truncates, CR and LF forge lines downstream).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_FIELD_KEYS = {
    "column", "value", "template", "type", "formats", "two_digit_year", "not_future", "transform", "extract",
    "blank_values", "lookup", "lookup_file", "lookup_fallback", "default", "required", "max_length", "sensitive",
}  # fmt: skip
_CELL_ONLY = (
    "formats", "two_digit_year", "not_future", "transform", "extract", "blank_values", "lookup", "lookup_file",
    "lookup_fallback", "default",
)  # fmt: skip
_NUMBER = {"integer": re.compile(r"[+-]?\d+"), "number": re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")}
_TEMPLATE_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")


@dataclass(frozen=True)
class FieldSpec:
    """One output field: where its value comes from and what it must look like."""

    name: str
    column: str | None = None  # the CSV column; for a template field, the template as written
    value: Scalar | None = None  # the constant, when the field reads no cells
    type: FieldType = "string"
    formats: tuple[str, ...] = ()
    two_digit_year: TwoDigitYear = "past"
    not_future: bool = False
    transform: tuple[Transform, ...] = ()
    extract: UserRegex | None = None
    lookup: dict[str, Scalar] | None = None
    lookup_fallback: LookupFallback = "error"
    default: Scalar | None = None
    required: bool = True
    max_length: int | None = None
    min_length: int = 0  # set by a profile (CWS external_id: at least 1 character)
    path_segment: bool = False  # set by a profile: the value goes into a URL path (CWS external_id)
    sensitive: bool = False
    template: tuple[tuple[str, str], ...] = ()  # (literal text, column) pairs, column "" after the last
    blank_values: frozenset[str] = frozenset()  # casefolded values that mean blank
    lookup_name: str | None = None  # the lookup file, for messages
    rule_source: str | None = None  # set by a profile: the documented rule (or assumption) a problem cites

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV columns this field reads."""
        if self.template:
            return tuple(dict.fromkeys(column for _, column in self.template if column))
        return () if self.column is None else (self.column,)


def control_character(text: str) -> str | None:
    """The first control character in TEXT as U+XXXX, or None."""
    found = _CONTROL.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def parse_field(
    where: TomlFile, name: str, table: dict[str, Any], directory: Path, files: list[LookupFile]
) -> FieldSpec:
    """Check one [fields.NAME] table; lookup files it reads are appended to FILES (for the mapping's hash)."""
    base = f"fields.{name}"
    where.only(base, table, _FIELD_KEYS)
    if sum(option in table for option in ("column", "value", "template")) != 1:
        raise where.error(base, "give exactly one of column (a CSV column), template (several) or value (a constant)")
    type_ = table.get("type", _inferred_type(table.get("value")))
    if type_ not in get_args(FieldType):
        raise where.error(f"{base}.type", f"{type_!r} is not one of {', '.join(get_args(FieldType))}")
    required = where.boolean(f"{base}.required", table.get("required", True))
    sensitive = where.boolean(f"{base}.sensitive", table.get("sensitive", name in IDENTIFYING_FIELDS))
    max_length = _max_length(where, base, table, type_)
    if "value" in table:
        for option in _CELL_ONLY:
            if option in table:
                raise where.error(f"{base}.{option}", "applies to column or template fields only, not to a value")
        value = _constant(where, f"{base}.value", type_, table["value"])
        if max_length is not None and len(str(value)) > max_length:
            raise where.error(f"{base}.value", f"longer than max_length {max_length}")
        return FieldSpec(name, value=value, type=type_, required=required, max_length=max_length, sensitive=sensitive)
    column, template = _cells_read(where, base, table)
    formats, two_digit_year, not_future = _date_options(where, base, table, type_)
    lookup, fallback, lookup_name = _lookup(where, base, table, type_, directory, files)
    default = _scalar(where, f"{base}.default", table["default"]) if "default" in table else None
    if fallback == "default" and default is None:
        raise where.error(f"{base}.lookup_fallback", 'is "default" but the field has no default')
    return FieldSpec(
        name=name,
        column=column,
        type=type_,
        formats=formats,
        two_digit_year=two_digit_year,
        not_future=not_future,
        transform=_transforms(where, base, table),
        extract=_extract(where, base, table),
        lookup=lookup,
        lookup_fallback=fallback,
        default=default,
        required=required,
        max_length=max_length,
        sensitive=sensitive,
        template=template,
        blank_values=_blank_values(where, base, table),
        lookup_name=lookup_name,
    )


def _max_length(where: TomlFile, base: str, table: dict[str, Any], type_: str) -> int | None:
    if "max_length" not in table:
        return DEFAULT_MAX_LENGTH if type_ == "string" else None
    max_length = table["max_length"]
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise where.error(f"{base}.max_length", "expected a positive integer")
    if type_ != "string":
        raise where.error(f"{base}.max_length", f"applies to string fields only (this one is {type_})")
    return max_length


def _cells_read(where: TomlFile, base: str, table: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The field's column (or its template text) and, for a template, its (literal, column) parts."""
    if "column" in table:
        column = where.string(f"{base}.column", table["column"]).strip()
        if not column:
            raise where.error(f"{base}.column", "expected a column name from the header row")
        return column, ()
    text = where.string(f"{base}.template", table["template"])
    parts: list[tuple[str, str]] = []
    literal = ""
    for piece in _TEMPLATE_PART.finditer(text):
        token, column = piece.group(), piece.group(1)
        if column is not None:
            if not column.strip():
                raise where.error(f"{base}.template", "{} names no column; write {Column Name}")
            parts.append((literal, column.strip()))
            literal = ""
        elif token in ("{", "}"):
            raise where.error(f"{base}.template", f"unmatched {token!r}; write {{{{ or }}}} for a literal brace")
        else:
            literal += token[0] if token in ("{{", "}}") else token
    if not parts:
        raise where.error(f"{base}.template", 'names no column; e.g. "{Booking Date} {Booking Time}"')
    return text, (*parts, (literal, ""))


def _date_options(
    where: TomlFile, base: str, table: dict[str, Any], type_: str
) -> tuple[tuple[str, ...], TwoDigitYear, bool]:
    for option in ("formats", "two_digit_year", "not_future"):
        if option in table and type_ != "datetime":
            raise where.error(f"{base}.{option}", f'applies to type = "datetime" only (this one is {type_})')
    formats: tuple[str, ...] = ()
    if type_ == "datetime":
        raw_formats = table.get("formats")
        if not isinstance(raw_formats, list) or not raw_formats:
            raise where.error(f"{base}.formats", 'a datetime field needs a list of formats, e.g. ["%m/%d/%Y"]')
        for i, fmt in enumerate(raw_formats):
            problem = date_format_problem(where.string(f"{base}.formats[{i}]", fmt))
            if problem:
                raise where.error(f"{base}.formats[{i}]", f"{fmt!r} {problem}")
        formats = tuple(raw_formats)
    two_digit_year = table.get("two_digit_year", "past")
    if two_digit_year not in get_args(TwoDigitYear):
        raise where.error(f"{base}.two_digit_year", f"{two_digit_year!r} is not one of past, strptime")
    return formats, two_digit_year, where.boolean(f"{base}.not_future", table.get("not_future", False))


def _transforms(where: TomlFile, base: str, table: dict[str, Any]) -> tuple[Transform, ...]:
    transform = table.get("transform", [])
    if not isinstance(transform, list):
        raise where.error(f"{base}.transform", f'expected a list, e.g. ["strip", "title"], got {kind_of(transform)}')
    for i, t in enumerate(transform):
        if t not in get_args(Transform):
            raise where.error(f"{base}.transform[{i}]", f"{t!r} is not one of {', '.join(get_args(Transform))}")
    return tuple(transform)


def _extract(where: TomlFile, base: str, table: dict[str, Any]) -> UserRegex | None:
    if "extract" not in table:
        return None
    pattern = where.string(f"{base}.extract", table["extract"])
    problem = regex_problem(pattern)
    if problem:
        raise where.error(f"{base}.extract", problem)
    return UserRegex(pattern)


def _blank_values(where: TomlFile, base: str, table: dict[str, Any]) -> frozenset[str]:
    if "blank_values" not in table:
        return frozenset()
    values = where.strings(f"{base}.blank_values", table["blank_values"], example='["NMN", "Unknown"]')
    return frozenset(value.strip().casefold() for value in values)


def _lookup(
    where: TomlFile, base: str, table: dict[str, Any], type_: str, directory: Path, files: list[LookupFile]
) -> tuple[dict[str, Scalar] | None, LookupFallback, str | None]:
    """The lookup table (inline or from a file), its fallback, and the file's name."""
    if "lookup" in table and "lookup_file" in table:
        raise where.error(f"{base}.lookup_file", "give lookup (inline) or lookup_file, not both")
    lookup: dict[str, Scalar] | None = None
    name: str | None = None
    key_path = f"{base}.lookup"
    if "lookup" in table:
        lookup_table = where.table(key_path, table["lookup"])
        lookup = {str(k): _scalar(where, f"{key_path}.{k}", v) for k, v in lookup_table.items()}
    elif "lookup_file" in table:
        key_path = f"{base}.lookup_file"
        read = read_lookup_file(where, key_path, table["lookup_file"], directory)
        files.append(read)
        lookup, name = read.entries, read.name
    for k, v in (lookup or {}).items():
        _constant(where, f"{key_path}.{k}" if name is None else f"{key_path}: {name}: {k}", type_, v, lookup=True)
    fallback = table.get("lookup_fallback", "error")
    if fallback not in get_args(LookupFallback):
        raise where.error(f"{base}.lookup_fallback", f"{fallback!r} is not one of error, keep, default")
    if "lookup_fallback" in table and lookup is None:
        raise where.error(f"{base}.lookup_fallback", "applies only with a lookup table")
    return lookup, fallback, name


def _scalar(where: TomlFile, key_path: str, value: object) -> Scalar:
    if not isinstance(value, str | int | float | bool):
        raise where.error(key_path, f"expected a string, number or boolean, got {kind_of(value)}")
    return value


def _inferred_type(value: object) -> str:
    """A constant's type when none is given: 10000 is an integer, 1.5 a number, anything else a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "integer"
    return "number" if isinstance(value, float) else "string"


def _constant(where: TomlFile, key_path: str, type_: str, value: object, *, lookup: bool = False) -> Scalar:
    """Check a constant (or lookup result) against the field type."""
    scalar = _scalar(where, key_path, value)
    if isinstance(scalar, str) and (found := control_character(scalar)):
        raise where.error(key_path, f"holds the control character {found}; CorEMR must never receive one")
    if lookup and isinstance(scalar, str):
        if type_ in ("integer", "number") and not _NUMBER[type_].fullmatch(scalar.strip()):
            raise where.error(key_path, f'{scalar!r} does not fit type = "{type_}"')
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
