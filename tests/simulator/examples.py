"""Example create bodies per API version: the walkthrough's own, and v1's and v3's derived from CorEMR's field facts."""

from __future__ import annotations

import json
from typing import Any

# The walkthrough's example create body, exactly as it writes booking_date (two fractional digits).
WALKTHROUGH: dict[str, Any] = {
    "external_id": "FakeExternalID",
    "facility": 10000,
    "agency": 2,
    "billing_agency": 1,
    "fname": "First",
    "lname": "Name",
    "dob": "2000-04-12 10:00:00.000",
    "sex": "M",
    "booking_no": "EthanBooking14",
    "booking_date": "2023-04-07 10:00:00.00",
}
# v1's fields (CWS.md, from /ws/v1/patients/): booking_number, sex as a word, facility as text, dob a Date.
V1_BODY: dict[str, Any] = {
    "external_id": "FakeExternalID",
    "facility": "MAIN",
    "fname": "First",
    "lname": "Name",
    "dob": "2000-04-12",
    "sex": "Male",
    "booking_number": "EthanBooking14",
    "booking_date": "2023-04-07 10:00:00.00",
}


def compact(payload: object) -> bytes:
    """JSON as the client sends it: no spaces."""
    return json.dumps(payload, separators=(",", ":")).encode()


def example_body(api: str) -> dict[str, Any]:
    """The example create body for an API version."""
    if api == "v1":
        return dict(V1_BODY)
    return {k: v for k, v in WALKTHROUGH.items() if api == "v2" or k != "agency"}  # v3: agency is optional
