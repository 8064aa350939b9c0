"""The local CWS server's memory: patients by external_id, each with its bookings by booking number.

Thread-safe; it stores checked values as sent and hands out copies. What an answer shows of them is
decided in _answers.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

__all__ = ["BookingOutcome", "PatientStore"]

BookingOutcome = Literal["created", "exists", "no_patient"]


class PatientStore:
    """Patients by external_id, and each patient's bookings by booking number, in creation order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._patients: dict[str, dict[str, Any]] = {}
        self._bookings: dict[str, dict[str, dict[str, Any]]] = {}

    def create(self, external_id: str, patient: dict[str, Any], booking: tuple[str, dict[str, Any]] | None) -> bool:
        """Store a new patient with its first booking (number, fields); False if the external_id exists."""
        with self._lock:
            if external_id in self._patients:
                return False
            self._patients[external_id] = dict(patient)
            self._bookings[external_id] = {} if booking is None else {booking[0]: dict(booking[1])}
            return True

    def update(self, external_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Merge CHANGES into a stored patient and return a copy; None if there is no such patient."""
        with self._lock:
            patient = self._patients.get(external_id)
            if patient is None:
                return None
            patient.update(changes)
            return dict(patient)

    def get(self, external_id: str) -> dict[str, Any] | None:
        """A copy of the stored patient, or None."""
        with self._lock:
            patient = self._patients.get(external_id)
            return None if patient is None else dict(patient)

    def all(self) -> dict[str, dict[str, Any]]:
        """Copies of every stored patient by external_id."""
        with self._lock:
            return {k: dict(v) for k, v in self._patients.items()}

    def bookings(self, external_id: str) -> dict[str, dict[str, Any]] | None:
        """Copies of a patient's bookings by number; None if there is no such patient."""
        with self._lock:
            found = self._bookings.get(external_id)
            return None if found is None else {k: dict(v) for k, v in found.items()}

    def add_booking(self, external_id: str, number: str, booking: dict[str, Any]) -> BookingOutcome:
        """Store a new booking for an existing patient."""
        with self._lock:
            bookings = self._bookings.get(external_id)
            if bookings is None:
                return "no_patient"
            if number in bookings:
                return "exists"
            bookings[number] = dict(booking)
            return "created"

    def update_booking(self, external_id: str, number: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Merge CHANGES into a stored booking and return a copy; None if there is no such booking."""
        with self._lock:
            booking = self._bookings.get(external_id, {}).get(number)
            if booking is None:
                return None
            booking.update(changes)
            return dict(booking)
