"""CWS patient checks laid over a mapping (`[target] profile = "cws-patient"`, the default), per API version.

The rules are the version's field table (protocol.API_PROFILES: required fields, text lengths,
integers, dates, value lists such as sex and v1's race): a mapping that cannot satisfy them is refused
before any row is read, naming the field; the rest become per-row checks by tightening the fields' own
options (length caps, a lookup of the allowed values, a birth date never in the future, an external_id
and (v2, v3) a booking number that are safe in a URL path). Each message cites where its rule comes
from: the version's docs ("CorEMR v1 docs: String(255)") or the named assumption. `profile = "none"`
turns them all off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from .._errors import UserInputError
from ..protocol import ApiProfile, FieldKind, FieldRule, date_problem
from ._dates import format_datetimes

if TYPE_CHECKING:
    from ._field_spec import FieldSpec

__all__ = ["apply_profile"]

_OFF = 'or set [target] profile = "none" to turn the CWS patient checks off'
_TYPES = {"integer": ("integer",), "number": ("integer", "number"), "date": ("datetime",), "timestamp": ("datetime",)}
_SAMPLE = datetime(2001, 2, 3, 4, 5, 6, 7000)

Error = Callable[[str, str], UserInputError]


def apply_profile(
    profile: str, api: ApiProfile, fields: tuple[FieldSpec, ...], datetime_format: str, error: Error
) -> tuple[FieldSpec, ...]:
    """Return FIELDS tightened by API's rules; raise error(key_path, problem) when they cannot comply."""
    if profile == "none":
        return fields
    by_name = {f.name: f for f in fields}
    _check_required(api, by_name, error)
    kinds = {rule.kind for spec in fields if (rule := api.rule(spec.name)) is not None}
    if kinds & {"date", "timestamp"}:
        _check_datetime_format(api, "timestamp" if "timestamp" in kinds else "date", datetime_format, error)
    tightened = []
    for spec in fields:
        rule = api.rule(spec.name)
        tightened.append(spec if rule is None else _tightened(api, rule, spec, error))
    return tuple(tightened)


def _name(api: ApiProfile) -> str:
    return f"CorEMR API {api.version}"


def _check_required(api: ApiProfile, by_name: dict[str, FieldSpec], error: Error) -> None:
    missing = [name for name in api.required if name not in by_name]
    if missing:
        first = missing[0]
        renamed = next((old for old, new in api.renamed.items() if new == first and old in by_name), None)
        hint = f"; [fields.{renamed}] is another version's name for it: rename it" if renamed else ""
        raise error(
            f"fields.{first}",
            f"missing; {_name(api)} requires {', '.join(api.required)} to create a patient"
            f" ({api.required_source}; missing: {', '.join(missing)}){hint}; add [fields.{first}] {_OFF}",
        )
    for name in api.required:
        spec = by_name[name]
        if spec.column is not None and not spec.required and spec.default is None:
            problem = f"{_name(api)} requires {name} in every body ({api.required_source}):"
            problem += f" remove required = false, {_OFF}"
            raise error(f"fields.{name}.required", problem)


def _check_datetime_format(api: ApiProfile, kind: FieldKind, datetime_format: str, error: Error) -> None:
    """The target format must write dates the way the version reads them."""
    written = format_datetimes(np.array([_SAMPLE], dtype="datetime64[us]"), datetime_format)[0]
    problem = date_problem(kind, written)
    if problem is not None:
        raise error(
            "target.datetime_format",
            f"{datetime_format!r} writes {written!r}, but {_name(api)} dates {problem};"
            f' use "%Y-%m-%d %H:%M:%S.%f", {_OFF}',
        )


def _tightened(api: ApiProfile, rule: FieldRule, spec: FieldSpec, error: Error) -> FieldSpec:
    """SPEC held to RULE: the type checked at load, the value rules added as per-row checks."""
    base = f"fields.{spec.name}"
    expects = f"{_name(api)} expects {spec.name} as {rule.describe()}{rule.cited()}"
    if rule.kind in _TYPES:
        if spec.type not in _TYPES[rule.kind]:
            wanted = " or ".join(f'type = "{t}"' for t in _TYPES[rule.kind])
            raise error(f"{base}.type", f"{expects}: set {wanted}, {_OFF}")
        if rule.kind in ("integer", "number"):
            spec = replace(spec, rule_source=rule.source or None)
        return replace(spec, not_future=True) if rule.not_future else spec
    if spec.type != "string" and (rule.kind == "choice" or rule.max_length or rule.min_length):
        raise error(f"{base}.type", f'{expects}: set type = "string", {_OFF}')
    if rule.kind == "choice":
        return _one_of(api, rule, spec, error)
    if rule.max_length is not None:
        if rule.max_length <= (spec.max_length or rule.max_length):  # the documented limit is the one held to
            spec = replace(spec, rule_source=rule.source or None)
        spec = replace(spec, max_length=min(spec.max_length or rule.max_length, rule.max_length))
    if rule.min_length:
        spec = replace(spec, min_length=max(spec.min_length, rule.min_length))
    if rule.name == "external_id":
        spec = replace(spec, path_segment=True)  # it is sent in the path of every lookup and update
    elif rule.booking and rule.kind == "text" and api.routes.has_bookings:
        spec = replace(spec, path_segment=True)  # the booking number: in the path of the bookings routes
    return spec


def _one_of(api: ApiProfile, rule: FieldRule, spec: FieldSpec, error: Error) -> FieldSpec:
    """Hold a choice field (sex) to the version's values: checked constants, and a lookup that refuses the rest."""
    base, choices = f"fields.{spec.name}", rule.choices
    allowed = f"is not a {_name(api)} {spec.name} value ({', '.join(choices)}){rule.cited()}; {_OFF}"
    if spec.column is None:
        if spec.value not in choices:
            raise error(f"{base}.value", f"{spec.value!r} {allowed}")
        return spec
    if spec.default is not None and spec.default not in choices:
        raise error(f"{base}.default", f"{spec.default!r} {allowed}")
    lookup = dict(spec.lookup or {})
    for key, value in lookup.items():
        if value not in choices:
            raise error(f"{base}.lookup.{key}", f"{value!r} {allowed}")
    if spec.lookup is not None and spec.lookup_fallback != "keep":
        return replace(spec, rule_source=rule.source or None)  # its values are checked above: a cell must be a key
    # No lookup, or one that keeps unknown cells: a cell must then already be one of the values.
    lookup.update({c: c for c in choices if c not in lookup})
    return replace(spec, lookup=lookup, lookup_fallback="error", rule_source=rule.source or None)
