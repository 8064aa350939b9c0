"""CWS patient checks laid over a mapping (`[target] profile = "cws-patient"`, the default).

From CorEMR's published patient fields and the walkthrough's example create body: `external_id` of
1-17 characters; `facility`, `agency`, `billing_agency` integers; `fname`, `lname`, `dob`, `sex`,
`booking_no`, `booking_date` present; dates written in the target datetime format; a birth date never
in the future. A mapping that cannot satisfy these is refused before any row is read; the rest become
per-row checks by tightening the fields' own options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from .._errors import UserInputError

if TYPE_CHECKING:
    from ._mapping_file import FieldSpec

__all__ = ["CWS_PATIENT_REQUIRED", "apply_profile"]

CWS_PATIENT_REQUIRED = ("external_id", "fname", "lname", "dob", "sex", "booking_no", "booking_date")
_INTEGER_FIELDS = ("facility", "agency", "billing_agency")
_DATETIME_FIELDS = ("dob", "booking_date")
_MAX_LENGTH = {"external_id": 17, "booking_no": 32, "ssn": 11}
_NOT_FUTURE = ("dob",)
_OFF = 'or set [target] profile = "none" to turn the CWS patient checks off'


def apply_profile(
    profile: str, fields: tuple[FieldSpec, ...], error: Callable[[str, str], UserInputError]
) -> tuple[FieldSpec, ...]:
    """Return FIELDS tightened by PROFILE's rules; raise error(key_path, problem) when they cannot comply."""
    if profile == "none":
        return fields
    by_name = {f.name: f for f in fields}
    missing = [name for name in CWS_PATIENT_REQUIRED if name not in by_name]
    if missing:
        raise error(
            f"fields.{missing[0]}",
            f"missing; a CWS patient body needs {', '.join(CWS_PATIENT_REQUIRED)}"
            f" (missing: {', '.join(missing)}); add [fields.{missing[0]}] {_OFF}",
        )
    for name in CWS_PATIENT_REQUIRED:
        spec = by_name[name]
        if spec.column is not None and not spec.required and spec.default is None:
            raise error(
                f"fields.{name}.required", f"CWS requires {name} in every body: remove required = false, {_OFF}"
            )
    for name in _INTEGER_FIELDS:
        if name in by_name and by_name[name].type != "integer":
            raise error(f"fields.{name}.type", f'CWS expects {name} as an integer ID: set type = "integer", {_OFF}')
    for name in _DATETIME_FIELDS:
        if by_name[name].type != "datetime":
            raise error(
                f"fields.{name}.type", f'CWS expects {name} as a date: set type = "datetime" and formats, {_OFF}'
            )
    tightened: list[FieldSpec] = []
    for spec in fields:
        limit = _MAX_LENGTH.get(spec.name)
        if limit is not None:
            if spec.type != "string":
                raise error(
                    f"fields.{spec.name}.type", f"CWS expects {spec.name} as text of at most {limit} characters"
                )
            spec = replace(spec, max_length=min(spec.max_length or limit, limit))
        if spec.name == "external_id":
            spec = replace(spec, min_length=1)
        if spec.name in _NOT_FUTURE:
            spec = replace(spec, not_future=True)
        tightened.append(spec)
    return tuple(tightened)
