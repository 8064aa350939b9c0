"""What the local CWS server answers about a patient or a booking: the documented GET form, nothing of our own.

v2 documents the GET form of two things: `facility` comes back as a string (it is posted as an
integer ID) and dates come back as `YYYY-MM-DD 00:00:00.000`. The rest follows assumption
"answer-shape": the version's listed fields only, booking fields under the bookings routes.
"""

from __future__ import annotations

from typing import Any

from ..protocol import ApiProfile, FieldRule, answer_date

__all__ = ["booking_answer", "patient_answer"]


def _answered(rule: FieldRule, value: Any) -> Any:
    if rule.kind in ("date", "timestamp") and isinstance(value, str):
        return answer_date(rule.kind, value)
    if rule.name == "facility" and rule.kind == "integer":
        return str(value)  # v2 docs: facility is posted as an integer ID and read back as a string
    return value


def patient_answer(api: ApiProfile, stored: dict[str, Any]) -> dict[str, Any]:
    """A stored patient as a read answers it: its patient fields (not its bookings) in their GET form."""
    answer: dict[str, Any] = {}
    for name, value in stored.items():
        rule = api.rule(name)
        if rule is not None and not rule.booking:
            answer[name] = _answered(rule, value)
    return answer


def booking_answer(api: ApiProfile, stored: dict[str, Any]) -> dict[str, Any]:
    """A stored booking as a read answers it (assumption "booking-body")."""
    answer: dict[str, Any] = {}
    for name in api.booking_fields:
        rule = api.rule(name)
        if rule is not None and name in stored:
            answer[name] = _answered(rule, stored[name])
    return answer
