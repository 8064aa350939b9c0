"""Looking a patient up: the one URL for an external_id, and whether a verified answer is that patient.

A lookup's 200 proves nothing unless the answer is the patient asked for: a front end that
normalises dot segments turns `GET /ws/patients/.` into the list route, which answers 200 too.
"""

from __future__ import annotations

import json
from typing import Literal
from urllib.parse import quote

from ._exchange import Exchange
from ._retry import RETRYABLE_STATUSES

__all__ = ["LookupFinding", "judge_lookup", "patient_url"]

LookupFinding = Literal["found", "absent", "someone_else", "refused", "try_again"]
_DOT_SEGMENTS = ("", ".", "..")


def patient_url(endpoint: str, external_id: str | None) -> str | None:
    """ENDPOINT/{external_id} with the id percent-encoded, or None when no URL path can name it safely."""
    if external_id is None or external_id in _DOT_SEGMENTS:
        return None
    base = endpoint if endpoint.endswith("/") else endpoint + "/"
    return base + quote(external_id, safe="")


def answered_external_id(body: bytes | None) -> str | None:
    """The external_id a patient answer names: its JSON object's `external_id` (CorEMR's read route answers one)."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return None
    value = data.get("external_id") if isinstance(data, dict) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def judge_lookup(ex: Exchange, external_id: str) -> LookupFinding:
    """What a lookup's answer says: found only when it is verified, 200, and the patient asked for."""
    if not ex.verified or ex.status is None or ex.status in RETRYABLE_STATUSES:
        return "try_again"
    if ex.status == 404:
        return "absent"
    if ex.status == 200:
        return "found" if answered_external_id(ex.response_body) == external_id else "someone_else"
    return "refused"
