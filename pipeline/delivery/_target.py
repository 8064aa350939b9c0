"""Where a run sends a row's requests, and the booking body it sends for a patient CorEMR already holds.

One place for the URLs of every step (create, patient read and update, a patient's booking read, create and
update: the API version's routes at the site), the booking body the mapping's `[target] booking_fields`
name (assumption "booking-body"), and the corrections policy (`[target] on_change`). Whether the site has
the bookings routes is the site's fact (run configuration `bookings_routes`, or what `check` found), never
the version's: v2 and v3 without one have none here (assumption "bookings-routes").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..mapping import Mapping, OnChange
from ..protocol import API_PROFILES, DEFAULT_API, ApiProfile, ApiVersion, Routes

__all__ = ["Booking", "Target"]

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # as the mapping writes bodies


@dataclass(frozen=True)
class Booking:
    """A row's booking: its number (in the bookings routes' path) and the exact body bytes to sign and send."""

    number: str
    body: bytes


@dataclass(frozen=True)
class Target:
    """The API version's routes at the site (absolute URLs), the booking body's fields, the corrections policy."""

    routes: Routes
    booking_number: str | None = None  # the body field naming a booking; None: no bookings routes (v1)
    booking_fields: tuple[str, ...] = ()
    on_change: OnChange = "hold"
    api: ApiVersion = DEFAULT_API
    update_adds_booking: bool = False  # without bookings routes, a re-booking goes as a patient update
    routes_known: str = ""  # where the site's having (or not) the bookings routes is known from, in words
    key_names_booking: bool = True  # the mapping's key has a booking number or date (else it names a person)

    @classmethod
    def of(
        cls,
        mapping: Mapping,
        base_url: str,
        *,
        bookings_routes: bool = False,
        update_adds_booking: bool = False,
        routes_known: str = "",
    ) -> Target:
        """The target of a mapping at a site's base_url; BOOKINGS_ROUTES: the site is known to have them."""
        profile = API_PROFILES[mapping.api]
        routes = profile.routes.at(base_url.rstrip("/") + mapping.endpoint)
        routes = replace(routes, has_bookings=routes.has_bookings and bookings_routes)
        number = profile.booking_number if routes.has_bookings and mapping.booking_fields else None
        return cls(routes, number, mapping.booking_fields, mapping.on_change, mapping.api, update_adds_booking,
                   routes_known, mapping.key_names_booking)  # fmt: skip

    @classmethod
    def default(cls, endpoint_url: str, on_change: OnChange = "hold") -> Target:
        """The default API version's routes under ENDPOINT_URL, with its booking body (assumption "booking-body")."""
        profile = API_PROFILES[DEFAULT_API]
        return cls(profile.routes.at(endpoint_url), profile.booking_number, profile.booking_fields, on_change)

    @property
    def profile(self) -> ApiProfile:
        """The API version's field rules."""
        return API_PROFILES[self.api]

    @property
    def create_url(self) -> str:
        """Where a patient is created."""
        return self.routes.collection

    @property
    def update_method(self) -> str:
        """PUT (v1) or POST (v2, v3)."""
        return self.routes.update_method

    def patient_url(self, external_id: str | None) -> str | None:
        """Read and update one patient; None when no URL path can name the external_id safely."""
        return self.routes.patient(external_id) if external_id is not None and _nameable(external_id) else None

    def bookings_url(self, external_id: str | None) -> str | None:
        """Create a booking for a patient; None without bookings routes or a safe external_id."""
        if not self.routes.has_bookings or not _nameable(external_id):
            return None
        assert external_id is not None
        return self.routes.bookings(external_id)

    def booking_url(self, external_id: str | None, booking: Booking) -> str | None:
        """Read and update one booking; None without bookings routes or safe names."""
        if not self.routes.has_bookings or not _nameable(external_id) or not _nameable(booking.number):
            return None
        assert external_id is not None
        return self.routes.booking(external_id, booking.number)

    def booking_of(self, body: bytes) -> Booking | None:
        """The row's booking (its number and booking body, fields in the mapping's order), or None when the
        version has no bookings routes or the body names no booking."""
        if self.booking_number is None:
            return None
        data: Any = json.loads(body)
        number = data.get(self.booking_number) if isinstance(data, dict) else None
        if not isinstance(number, str) or not _nameable(number):
            return None
        fields = {name: data[name] for name in self.booking_fields if name in data}
        return Booking(number, _COMPACT.encode(fields).encode("utf-8"))

    def booking_number_of(self, body: bytes) -> str | None:
        """The booking number a body names (the version's field), with or without bookings routes."""
        data: Any = json.loads(body)
        number = data.get(self.profile.booking_number) if isinstance(data, dict) else None
        return number if isinstance(number, str) else None

    def booking_changed(self, delivered: bytes | None, body: bytes) -> bool:
        """True unless the DELIVERED body is known and holds every booking field exactly as BODY does."""
        # Pruned, never stored or unreadable: send the booking update (it changes nothing if the same).
        return _fields_differ(delivered, body, self.booking_fields or self.profile.booking_fields) is not False

    def new_booking(self, delivered: bytes | None, body: bytes) -> bool:
        """True when the key names a person only and BODY's booking (number or date) differs from the DELIVERED
        body's: a new booking of that person, never a correction of the delivered one. False when DELIVERED is
        unknown (pruned): whether the booking changed cannot be told, and the row is a correction as before."""
        if self.key_names_booking:
            return False
        identity = [f.name for f in self.profile.fields if f.booking]  # the booking number and date
        return _fields_differ(delivered, body, identity) is True


def _nameable(segment: str | None) -> bool:
    """True when SEGMENT can be one segment of a URL path once percent-encoded (never '', '.' or '..')."""
    return bool(segment) and segment not in (".", "..")


def _fields_differ(delivered: bytes | None, body: bytes, names: Iterable[str]) -> bool | None:
    """Whether BODY holds any of NAMES otherwise than DELIVERED does; None when DELIVERED is unknown or unreadable."""
    if delivered is None:
        return None
    try:
        before: Any = json.loads(delivered)
    except ValueError:
        return None
    now: Any = json.loads(body)
    if not isinstance(before, dict) or not isinstance(now, dict):
        return None
    return any(before.get(name) != now.get(name) for name in names)
