"""What the local CWS server accepts in a request body, per API version (protocol.API_PROFILES).

Required fields to create, types, lengths, value lists and dates as the version's field table says;
fields the version does not list are ignored (assumption "unknown-fields"). Problems name the field
and the rule with its source (a doc or an assumption), never the value sent: values hold names and
birth dates.
"""

from __future__ import annotations

from typing import Any

from ..protocol import ApiProfile, FieldRule, date_problem

__all__ = ["booking_problems", "patient_problems", "value_problem"]

_NOT_AN_OBJECT = {"body": "must be a JSON object"}


def value_problem(rule: FieldRule, value: object) -> str | None:
    """Why VALUE does not fit RULE, citing the rule's source (a doc or an assumption), or None."""
    problem = _problem(rule, value)
    return None if problem is None else problem + rule.cited()


def _problem(rule: FieldRule, value: object) -> str | None:
    if rule.kind in ("integer", "number"):
        ok = isinstance(value, int) or (rule.kind == "number" and isinstance(value, float))
        return None if ok and not isinstance(value, bool) else f"must be {rule.describe()}"
    if not isinstance(value, str):
        return "must be a string" if rule.kind != "choice" else f"must be {rule.describe()}"
    if rule.kind in ("date", "timestamp"):
        return date_problem(rule.kind, value)
    if rule.kind == "choice":
        return None if value in rule.choices else f"must be {rule.describe()}"
    too_short = rule.min_length and not value.strip()
    if too_short or len(value) > (rule.max_length or len(value)):
        return f"must be {rule.describe()}"
    return None


def _problems(rules: list[FieldRule], body: dict[str, Any], *, creating: bool) -> dict[str, str]:
    problems: dict[str, str] = {}
    for rule in rules:
        if rule.name not in body:
            if creating and rule.required:
                problems[rule.name] = "required"
            continue
        problem = value_problem(rule, body[rule.name])
        if problem is not None:
            problems[rule.name] = problem
    return problems


def patient_problems(api: ApiProfile, body: object, *, external_id: str | None = None) -> dict[str, str]:
    """Per-field problems of a create body, or of an update body for the patient at EXTERNAL_ID; empty if fine."""
    if not isinstance(body, dict):
        return dict(_NOT_AN_OBJECT)
    if external_id is None:
        return _problems(list(api.fields), body, creating=True)
    # Booking fields are ignored when updating (v1 docs; assumption "update-ignores-bookings").
    problems = _problems([r for r in api.fields if not r.booking], body, creating=False)
    if "external_id" in body and body["external_id"] != external_id:
        problems["external_id"] = (
            "must match the external_id in the path (it cannot be changed; assumption update-keeps-external-id)"
        )
    return problems


def booking_problems(api: ApiProfile, body: object, *, booking: str | None = None) -> dict[str, str]:
    """Per-field problems of a booking create body, or of an update body for BOOKING (assumption "booking-body")."""
    if not isinstance(body, dict):
        return dict(_NOT_AN_OBJECT)
    rules = [rule for name in api.booking_fields if (rule := api.rule(name)) is not None]
    problems = _problems(rules, body, creating=booking is None)
    number = api.booking_number
    if booking is not None and number in body and body[number] != booking:
        problems[number] = "must match the booking in the path (it cannot be changed)"
    return problems
