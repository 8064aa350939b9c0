"""The local CWS server's patients: CorEMR v2 field rules, and a thread-safe store keyed by external_id.

Error messages name fields and rules, never the values sent (they hold names and birth dates).
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Any

__all__ = ["PatientStore", "invalid_new_patient_fields", "invalid_update_fields"]

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}")
_TIMESTAMP_RULE = "must be YYYY-MM-DD HH:MM:SS.fff (exactly 3 fractional digits)"
_REQUIRED_TEXT = ("fname", "lname", "booking_no", "booking_date")
_INTEGERS = ("facility", "agency", "billing_agency")
_TIMESTAMPS = ("dob", "booking_date")
# CorEMR ignores booking fields when updating (docs, v1/v2); so does this server.
_IGNORED_ON_UPDATE = frozenset({"booking_no", "booking_number", "booking_date"})


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_timestamp(value: object) -> bool:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f")
    except ValueError:
        return False
    return True


def _external_id_problem(value: object) -> str | None:
    if not isinstance(value, str) or not 1 <= len(value) <= 17:
        return "must be a string of 1 to 17 characters"
    return None


def _field_problems(body: dict[str, Any]) -> dict[str, str]:
    """Type and format problems of the fields that are present."""
    problems: dict[str, str] = {}
    for name in _INTEGERS:
        if name in body and not _is_integer(body[name]):
            problems[name] = "must be an integer"
    for name in _REQUIRED_TEXT:
        if name in body and not (isinstance(body[name], str) and body[name].strip()):
            problems[name] = "must be a non-empty string"
    for name in _TIMESTAMPS:
        if name in body and name not in problems and not _is_timestamp(body[name]):
            problems[name] = _TIMESTAMP_RULE
    return problems


def invalid_new_patient_fields(body: object) -> dict[str, str]:
    """Per-field problems of a create body; empty when it may be stored."""
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}
    problems: dict[str, str] = {}
    external_id = _external_id_problem(body.get("external_id"))
    if "external_id" not in body:
        problems["external_id"] = "required"
    elif external_id:
        problems["external_id"] = external_id
    for name in ("facility", *_REQUIRED_TEXT):
        if name not in body:
            problems[name] = "required"
    problems.update(_field_problems(body))
    return problems


def invalid_update_fields(body: object, external_id: str) -> dict[str, str]:
    """Per-field problems of an update body for the patient at this external_id."""
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}
    problems = _field_problems({k: v for k, v in body.items() if k not in _IGNORED_ON_UPDATE})
    if "external_id" in body and body["external_id"] != external_id:
        problems["external_id"] = "must match the external_id in the path (it cannot be changed)"
    return problems


class PatientStore:
    """Patients by external_id, each given an integer `id` when created."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._patients: dict[str, dict[str, Any]] = {}
        self._next_id = 1

    def create(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Store a new patient and return it with its `id`; None if that external_id exists."""
        with self._lock:
            external_id = body["external_id"]
            if external_id in self._patients:
                return None
            patient = {**body, "id": self._next_id}
            self._next_id += 1
            self._patients[external_id] = patient
            return dict(patient)

    def update(self, external_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Merge the body into a stored patient and return it; None if there is no such patient."""
        with self._lock:
            patient = self._patients.get(external_id)
            if patient is None:
                return None
            changes = {k: v for k, v in body.items() if k not in _IGNORED_ON_UPDATE and k not in ("id", "external_id")}
            patient.update(changes)
            return dict(patient)

    def get(self, external_id: str) -> dict[str, Any] | None:
        """A copy of the stored patient, or None."""
        with self._lock:
            patient = self._patients.get(external_id)
            return None if patient is None else dict(patient)

    def all(self) -> dict[str, dict[str, Any]]:
        """Copies of every stored patient by external_id, in creation order."""
        with self._lock:
            return {k: dict(v) for k, v in self._patients.items()}
