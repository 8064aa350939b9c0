"""The delivery window: parsing, overnight windows, when it closes and opens, a named time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.delivery._pacing import DeliveryWindow


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("22-06", "HH:MM-HH:MM"),
        ("22:00 - 06:00x", "HH:MM-HH:MM"),
        ("24:00-06:00", "hours run 00-23"),
        ("22:60-06:00", "minutes 00-59"),
        ("06:00-06:00", "same minute"),
    ],
)
def test_a_window_that_is_not_hh_mm_hh_mm_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        DeliveryWindow.parse(text)


def test_an_overnight_window_holds_late_evening_and_early_morning_but_not_the_day() -> None:
    window = DeliveryWindow.parse("22:00-06:00", UTC)
    day = datetime(2026, 12, 1, tzinfo=UTC)
    inside = [
        day.replace(hour=22),
        day.replace(hour=23, minute=59),
        day.replace(hour=0),
        day.replace(hour=5, minute=59),
    ]
    outside = [day.replace(hour=6), day.replace(hour=12), day.replace(hour=21, minute=59)]
    assert all(window.contains(t) for t in inside)
    assert not any(window.contains(t) for t in outside)


def test_a_daytime_window_is_one_span() -> None:
    window = DeliveryWindow.parse("09:30-11:00", UTC)
    day = datetime(2026, 12, 1, tzinfo=UTC)
    assert window.contains(day.replace(hour=10)) and not window.contains(day.replace(hour=11))


def test_closes_and_opens_at_the_next_boundary_across_midnight() -> None:
    window = DeliveryWindow.parse("22:00-06:00", UTC)
    late = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    assert window.closes_at(late) == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    early = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert window.closes_at(early) == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    noon = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert window.opens_at(noon) == datetime(2026, 12, 2, 22, 0, tzinfo=UTC)
    assert window.opens_at(late) == datetime(2026, 12, 2, 22, 0, tzinfo=UTC)


def test_the_window_is_read_in_the_sites_time_zone() -> None:
    chicago = DeliveryWindow.parse("22:00-06:00", ZoneInfo("America/Chicago"))
    # 04:30 UTC on 1 December is 22:30 the evening before in Chicago (UTC-6): inside.
    assert chicago.contains(datetime(2026, 12, 1, 4, 30, tzinfo=UTC))
    # 14:00 UTC is 08:00 in Chicago: outside, and it opens at 22:00 Chicago time, 04:00 UTC next day.
    noon_utc = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert not chicago.contains(noon_utc)
    assert chicago.opens_at(noon_utc) - noon_utc == timedelta(hours=14)
