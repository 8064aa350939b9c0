"""Looking a patient or a booking up: whether a verified answer is the patient (or booking) asked for.

A lookup's 200 proves nothing unless the answer is the patient asked for: a front end that
normalises dot segments turns `GET /ws/patients/.` into the list route, which answers 200 too. So a
patient is found only when the answer names its external_id, and a booking only when the answer
names its booking number.
"""

from __future__ import annotations

import json
from typing import Literal

from ..protocol import ApiProfile, answer_date
from ._exchange import Exchange
from ._retry import RETRYABLE_STATUSES

__all__ = ["LookupFinding", "answered_external_id", "holds_body", "judge_lookup"]

LookupFinding = Literal["found", "absent", "someone_else", "refused", "try_again"]


def answered_external_id(body: bytes | None, field: str = "external_id") -> str | None:
    """The value an answer names in FIELD: its JSON object's `external_id` (a patient read) or booking number."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return None
    value = data.get(field) if isinstance(data, dict) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def judge_lookup(
    ex: Exchange, expected: str, field: str = "external_id", external_id: str | None = None
) -> LookupFinding:
    """What a lookup's answer says: found only when it is verified, 200, and names EXPECTED in FIELD; a booking's
    answer that names an external_id too must name EXTERNAL_ID, the patient asked for."""
    if not ex.verified or ex.status is None or ex.status in RETRYABLE_STATUSES or ex.status >= 500:
        return "try_again"
    if ex.status == 404:
        return "absent"
    if ex.status != 200:
        return "refused"
    if answered_external_id(ex.response_body, field) != expected or _has_error(ex.response_body):
        return "someone_else"
    named = answered_external_id(ex.response_body)
    if field != "external_id" and external_id is not None and named is not None and named != external_id:
        return "someone_else"  # the asked booking number, of another patient
    return "found"


def _has_error(body: bytes | None) -> bool:
    """True when an answer's JSON object carries an `error`: no answer about a patient, whatever its status."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return False
    return isinstance(data, dict) and bool(data.get("error"))


def holds_body(answer: bytes | None, body: bytes, api: ApiProfile) -> bool:
    """True when a patient answer holds every patient field of BODY as sent (or in its GET form: assumption
    "answer-shape"); booking fields are not compared: a patient answer does not carry them."""
    try:
        answered, sent = json.loads(answer or b""), json.loads(body)
    except ValueError:
        return False
    if not isinstance(answered, dict) or not isinstance(sent, dict):
        return False
    for name, value in sent.items():
        rule = api.rule(name)
        if rule is None or rule.booking:
            continue
        got = answered.get(name)
        as_read = (
            answer_date(rule.kind, value) if rule.kind in ("date", "timestamp") and isinstance(value, str) else value
        )
        if got != value and got != as_read and str(got) != str(value):
            return False
    return True
