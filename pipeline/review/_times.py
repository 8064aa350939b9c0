"""Times a person types on the command line: a date, an ISO 8601 time, or an age like 90d."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .._errors import UserInputError

__all__ = ["ledger_time", "parse_when"]

_DAYS = re.compile(r"(\d+)d")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_when(text: str, option: str, now: datetime | None = None, *, end_of_day: bool = False) -> datetime:
    """`YYYY-MM-DD` (midnight UTC; the next midnight when end_of_day), an ISO 8601 time (UTC unless it has an
    offset), or an age like `90d`; a one-line error naming the option otherwise."""
    value = text.strip()
    days = _DAYS.fullmatch(value)
    if days:
        return (now or datetime.now(UTC)) - timedelta(days=int(days[1]))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UserInputError(
            f"{option} {text!r}: give a date like 2026-01-31, a time like 2026-01-31T00:00:00+00:00, or an age like 90d"
        ) from None
    if end_of_day and _DATE.fullmatch(value):
        when += timedelta(days=1)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def ledger_time(when: datetime) -> str:
    """A time as the ledger writes it (UTC, milliseconds), so that it compares with the ledger's as text."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds")
