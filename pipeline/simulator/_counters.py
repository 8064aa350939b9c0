"""What the local CWS server has seen, counted per external_id and per booking, readable from another process."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._capacity import CapacityReport

__all__ = ["COUNTERS_PATH", "CounterBook", "ServerCounters", "fetch_counters"]

COUNTERS_PATH = "/_simulator/counters"

Nested = dict[str, dict[str, int]]


@dataclass
class ServerCounters:
    """What the server has seen. `creates` and `booking_creates` count what was stored; `refused_*` count creates
    refused because the patient or booking already existed, and `resent_*` those of them that carried the very
    bytes that had stored it: a create sent again blindly (after a lost answer or a crash), which a server that
    did not refuse it would have stored as a second patient or booking."""

    requests: int = 0
    creates: dict[str, int] = field(default_factory=dict)
    create_attempts: dict[str, int] = field(default_factory=dict)
    lookups: int = 0
    rejected_signatures: int = 0
    faults_applied: dict[str, int] = field(default_factory=dict)
    updates: dict[str, int] = field(default_factory=dict)
    booking_creates: Nested = field(default_factory=dict)  # external_id -> booking number -> bookings stored
    booking_create_attempts: Nested = field(default_factory=dict)
    booking_updates: Nested = field(default_factory=dict)
    refused_creates: dict[str, int] = field(default_factory=dict)  # external_id -> creates refused as existing
    refused_booking_creates: Nested = field(default_factory=dict)  # ... -> booking creates refused as existing
    resent_creates: dict[str, int] = field(default_factory=dict)
    resent_booking_creates: Nested = field(default_factory=dict)
    capacity: CapacityReport | None = None  # what the capacity model saw, when the server has one

    def copy(self) -> ServerCounters:
        """An independent copy."""
        return ServerCounters.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The counters as plain JSON-able data."""
        return {
            "requests": self.requests,
            "creates": dict(self.creates),
            "create_attempts": dict(self.create_attempts),
            "lookups": self.lookups,
            "rejected_signatures": self.rejected_signatures,
            "faults_applied": dict(self.faults_applied),
            "updates": dict(self.updates),
            "booking_creates": {k: dict(v) for k, v in self.booking_creates.items()},
            "booking_create_attempts": {k: dict(v) for k, v in self.booking_create_attempts.items()},
            "booking_updates": {k: dict(v) for k, v in self.booking_updates.items()},
            "refused_creates": dict(self.refused_creates),
            "refused_booking_creates": {k: dict(v) for k, v in self.refused_booking_creates.items()},
            "resent_creates": dict(self.resent_creates),
            "resent_booking_creates": {k: dict(v) for k, v in self.resent_booking_creates.items()},
            "capacity": self.capacity.to_dict() if self.capacity is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerCounters:
        """Counters from `to_dict()` output (as served at /_simulator/counters)."""

        def counts(name: str) -> dict[str, int]:
            return {str(k): int(v) for k, v in data.get(name, {}).items()}

        def nested(name: str) -> Nested:
            return {str(k): {str(b): int(n) for b, n in v.items()} for k, v in data.get(name, {}).items()}

        return cls(
            requests=int(data["requests"]),
            creates=counts("creates"),
            create_attempts=counts("create_attempts"),
            lookups=int(data["lookups"]),
            rejected_signatures=int(data["rejected_signatures"]),
            faults_applied=counts("faults_applied"),
            updates=counts("updates"),
            booking_creates=nested("booking_creates"),
            booking_create_attempts=nested("booking_create_attempts"),
            booking_updates=nested("booking_updates"),
            refused_creates=counts("refused_creates"),
            refused_booking_creates=nested("refused_booking_creates"),
            resent_creates=counts("resent_creates"),
            resent_booking_creates=nested("resent_booking_creates"),
            capacity=CapacityReport.from_dict(data["capacity"]) if data.get("capacity") else None,
        )


def _add(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


class CounterBook:
    """The server's counters, updated from many handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters = ServerCounters()

    def snapshot(self) -> ServerCounters:
        """A copy of the counters as they are now."""
        with self._lock:
            return self._counters.copy()

    def received(self, faults: Iterable[str], *, lookup: bool) -> None:
        """A request arrived (before any fault or check), with the faults drawn for it."""
        with self._lock:
            self._counters.requests += 1
            self._counters.lookups += lookup
            for kind in faults:
                _add(self._counters.faults_applied, kind)

    def rejected_signature(self) -> None:
        """A request was refused for its signature."""
        with self._lock:
            self._counters.rejected_signatures += 1

    def create_attempt(self, external_id: str) -> None:
        """A create for this external_id arrived."""
        with self._lock:
            _add(self._counters.create_attempts, external_id)

    def created(self, external_id: str) -> None:
        """A patient was stored."""
        with self._lock:
            _add(self._counters.creates, external_id)

    def updated(self, external_id: str) -> None:
        """A patient was updated."""
        with self._lock:
            _add(self._counters.updates, external_id)

    def booking_attempt(self, external_id: str, booking: str) -> None:
        """A booking create for this patient and booking number arrived."""
        with self._lock:
            _add(self._counters.booking_create_attempts.setdefault(external_id, {}), booking)

    def booking_created(self, external_id: str, booking: str) -> None:
        """A booking was stored (with its patient's create, or on its own)."""
        with self._lock:
            _add(self._counters.booking_creates.setdefault(external_id, {}), booking)

    def booking_updated(self, external_id: str, booking: str) -> None:
        """A booking was updated."""
        with self._lock:
            _add(self._counters.booking_updates.setdefault(external_id, {}), booking)

    def refused_create(self, external_id: str, *, resent: bool) -> None:
        """A create was refused because the patient exists (RESENT: with the bytes that had stored it)."""
        with self._lock:
            _add(self._counters.refused_creates, external_id)
            if resent:
                _add(self._counters.resent_creates, external_id)

    def refused_booking_create(self, external_id: str, booking: str, *, resent: bool) -> None:
        """A booking create was refused because the patient has that booking (RESENT: with its storing bytes)."""
        with self._lock:
            _add(self._counters.refused_booking_creates.setdefault(external_id, {}), booking)
            if resent:
                _add(self._counters.resent_booking_creates.setdefault(external_id, {}), booking)


def fetch_counters(url: str, timeout: float = 10.0) -> ServerCounters:
    """Read a running server's counters over HTTP (for a server in another process)."""
    response = httpx.get(url.rstrip("/") + COUNTERS_PATH, timeout=timeout)
    response.raise_for_status()
    return ServerCounters.from_dict(response.json())
