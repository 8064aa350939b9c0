"""The delivery window: the hours of the site's day when a bulk load may send, e.g. "22:00-06:00".

CorEMR is busiest while nurses chart; a bulk load of a site's history can be kept to the night. A run
started outside the window sends nothing and says when it opens; a run still going when it closes
stops sending, and the rows it did not reach go next time. A run's time limit (`max_run_seconds`)
stops it the same way, whether or not it has a window.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

__all__ = ["DeliveryWindow", "SendingWatch"]

_WINDOW = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")


@dataclass(frozen=True)
class DeliveryWindow:
    """A daily window in site local time; one that ends before it starts runs past midnight."""

    start: time
    end: time
    zone: tzinfo | None = None  # None: this machine's local time

    @classmethod
    def parse(cls, text: str, zone: tzinfo | None = None) -> DeliveryWindow:
        """Read "HH:MM-HH:MM" (24-hour clock); ValueError saying what is wrong."""
        match = _WINDOW.fullmatch(text.strip())
        if match is None:
            raise ValueError(f'{text!r} is not a window like "22:00-06:00" (HH:MM-HH:MM, 24-hour clock)')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"{text!r}: hours run 00-23 and minutes 00-59")
        if (h1, m1) == (h2, m2):
            raise ValueError(f"{text!r}: a window must not start and end at the same minute")
        return cls(time(h1, m1), time(h2, m2), zone)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def describe(self) -> str:
        """The window and its zone, e.g. '22:00-06:00 America/Chicago' or '22:00-06:00 local time'."""
        return f"{self} {self.zone if self.zone is not None else 'local time'}"

    def not_open(self, when: datetime) -> str | None:
        """None inside the window; outside it, one line saying when it opens (and that nothing was sent)."""
        if self.contains(when):
            return None
        opens = self.opens_at(when)
        minutes = max(1, round((opens - self._local(when)).total_seconds() / 60))
        wait = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
        return (
            f"outside the delivery window {self.describe()}: it opens at {opens:%H:%M} (in {wait}); nothing was"
            " sent: run again then"
        )

    def now(self) -> datetime:
        """The current time in the window's zone."""
        return datetime.now(self.zone).astimezone(self.zone)

    def contains(self, when: datetime) -> bool:
        """True when WHEN (aware, or naive local time) falls inside the window."""
        at = self._local(when).time()
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end

    def closes_at(self, when: datetime) -> datetime:
        """The end of the window WHEN is in (WHEN must be inside it)."""
        local = self._local(when)
        end = datetime.combine(local.date(), self.end, local.tzinfo)
        return end if end > local else end + timedelta(days=1)

    def opens_at(self, when: datetime) -> datetime:
        """The next start of the window after WHEN."""
        local = self._local(when)
        start = datetime.combine(local.date(), self.start, local.tzinfo)
        return start if start > local else start + timedelta(days=1)

    def _local(self, when: datetime) -> datetime:
        return when.astimezone(self.zone) if when.tzinfo is not None else when


class SendingWatch:
    """Watches the clock while a run sends, and calls ON_STOP once with the reason when sending must end:
    the delivery window closes, or the run has been going for MAX_SECONDS (its `max_run_seconds`).

    Both ends are worked out once, when the watch starts (the window's in its zone, so a daylight-saving
    change in between is counted right); the watch looks at the clock at least once a minute, so a clock
    that is set forward (or an injected one, in tests) is noticed.
    """

    def __init__(
        self,
        on_stop: Callable[[str], None],
        now: Callable[[], datetime] | None = None,
        *,
        window: DeliveryWindow | None = None,
        max_seconds: float | None = None,
        limit_named: str = "max_run_seconds",
        started: datetime | None = None,
    ) -> None:
        self.window = window
        self._started = started  # when the run began (the window's close is reckoned from it); None: on entering
        self._on_stop = on_stop
        self._now = now or (window.now if window is not None else _utc_now)
        self._max_seconds = max_seconds
        self._limit_named = limit_named
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.stopped: str | None = None  # the reason given, once sending had to end during the run

    def __enter__(self) -> SendingWatch:
        start = self._started if self._started is not None else self._now()
        ends: list[tuple[datetime, str]] = []
        if self.window is not None:
            closes = self.window.closes_at(start)
            ends.append((closes, f"the delivery window {self.window} closed at {closes:%H:%M}"))
        if self._max_seconds is not None:
            limit = f"the run reached its time limit, {self._limit_named}"
            ends.append((start + timedelta(seconds=self._max_seconds), limit))
        if ends:
            end = min(ends, key=lambda e: e[0])
            self._thread = threading.Thread(target=self._watch, args=end, name="sending-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, end: datetime, reason: str) -> None:
        while True:
            left = (end - self._now()).total_seconds()
            if left <= 0:
                self.stopped = reason
                self._on_stop(reason)
                return
            if self._done.wait(min(left, 60.0)):
                return


def _utc_now() -> datetime:
    return datetime.now(UTC)
