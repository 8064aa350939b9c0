"""Times a person types on the command line: a date, an ISO 8601 time, or an age like 90d."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .._errors import UserInputError

__all__ = ["ledger_time", "parse_age", "parse_when"]

_DAYS = re.compile(r"(\d+)d")
_AGE = re.compile(r"(\d+)([hd])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MOST_DAYS = 36500  # a century: an age beyond it is a typo (and past what a date can hold)


def parse_age(text: str, option: str) -> timedelta:
    """An age in hours or days, like `26h` or `2d` (at most a century); a one-line error naming the option."""
    found = _AGE.fullmatch(text.strip())
    if found is None:
        raise UserInputError(f"{option} {text!r}: give hours or days, like 26h or 2d")
    digits, unit = found[1], found[2]
    hours = int(digits) * (24 if unit == "d" else 1) if len(digits) <= 9 else None  # no 10-digit age is meant
    if hours is None or hours > _MOST_DAYS * 24:
        raise UserInputError(f"{option} {text!r}: at most {_MOST_DAYS}d ({_MOST_DAYS * 24}h)")
    return timedelta(hours=hours)


def parse_when(text: str, option: str, now: datetime | None = None, *, end_of_day: bool = False) -> datetime:
    """`YYYY-MM-DD` (midnight UTC; the next midnight when end_of_day), an ISO 8601 time (UTC unless it has an
    offset), or an age like `90d`; a one-line error naming the option otherwise."""
    value = text.strip()
    if _DAYS.fullmatch(value):
        return (now or datetime.now(UTC)) - parse_age(value, option)
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
