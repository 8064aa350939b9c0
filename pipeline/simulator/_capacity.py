"""The local CWS server's capacity model: N requests served at once, M ms each, a FIFO queue, then 429.

A production CorEMR has a fixed number of workers: a request beyond them waits its turn (its answer is
later by the time it waited), and beyond what the server is willing to queue it is turned away with
429 Too Many Requests and a Retry-After. Service times vary by +-10% around M (seeded), as a real
server's do: identical times would keep every answer of a round arriving in the same instant. The
model keeps what it saw: requests served and throttled, and each served request's time in the server
(queue wait + service), whose p50 and p95 it reports.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Capacity", "CapacityModel", "CapacityReport"]

T = TypeVar("T")
_KEPT = 200_000  # times in the server kept for the percentiles: the latest ones


@dataclass(frozen=True)
class Capacity:
    """N requests served at once (`capacity`), each taking `service_ms`; at most `queue` waiting (default 2 x N)."""

    capacity: int
    service_ms: float
    queue: int | None = None
    retry_after: str = "1"  # what a 429 asks the client to wait, in seconds
    spread: float = 0.1  # each service takes M x (1 +- spread), uniformly: a real server's times vary
    seed: int = 0

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"capacity must be 1 or more, not {self.capacity}")
        if self.service_ms < 0:
            raise ValueError(f"service_ms must be 0 or more, not {self.service_ms}")
        if self.queue is not None and self.queue < 0:
            raise ValueError(f"queue must be 0 or more, not {self.queue}")
        if not 0 <= self.spread < 1:
            raise ValueError(f"spread must be at least 0 and below 1, not {self.spread}")

    @property
    def waiting_room(self) -> int:
        """Requests that may wait for a worker before the server answers 429."""
        return 2 * self.capacity if self.queue is None else self.queue

    @property
    def per_second(self) -> float:
        """Requests per second the server can serve: N / M."""
        return self.capacity / (self.service_ms / 1000) if self.service_ms else float("inf")


@dataclass(frozen=True)
class CapacityReport:
    """What the model saw: requests served and throttled, and the time served ones spent in the server."""

    capacity: int
    service_ms: float
    queue: int
    served: int
    throttled: int
    p50_ms: float
    p95_ms: float
    busy_seconds: float  # from the first request's arrival to the last one's answer
    second_half_per_second: float  # served per second in the second half of that time: after a client's ramp-up

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapacityReport:
        """The report from `to_dict()` output."""
        return cls(**{k: type(getattr(_EMPTY, k))(data[k]) for k in vars(_EMPTY)})

    def line(self) -> str:
        """One line for a person: served, throttled, and the time in the server."""
        return (
            f"capacity {self.capacity} at once, {self.service_ms:g} ms each, queue {self.queue}: served {self.served},"
            f" throttled {self.throttled} (429); time in the server p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms"
        )


_EMPTY = CapacityReport(0, 0.0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0)


class CapacityModel:
    """Admits requests to N workers in arrival order; `serve(work)` runs WORK in a worker for M ms in all."""

    def __init__(self, capacity: Capacity, stopping: threading.Event) -> None:
        self.settings = capacity
        self._service_s = capacity.service_ms / 1000
        self._dice = random.Random(capacity.seed)  # noqa: S311  # reproducible service times, not cryptography
        self._stopping = stopping
        self._lock = threading.Lock()
        self._busy = 0
        self._waiting: deque[threading.Event] = deque()
        self._served = self._throttled = 0
        self._times: deque[float] = deque(maxlen=_KEPT)
        self._answered: deque[float] = deque(maxlen=_KEPT)  # when each served request left
        self._first: float | None = None
        self._last = 0.0

    def serve(self, work: Callable[[], T]) -> tuple[bool, T | None]:
        """(True, WORK's result) once a worker ran it, taking M ms in all; (False, None) when turned away."""
        arrived = time.monotonic()
        if not self._admit(arrived):
            return False, None
        try:
            started = time.monotonic()
            result = work()
            with self._lock:
                spread = self.settings.spread
                service = self._service_s * self._dice.uniform(1 - spread, 1 + spread)
            left = service - (time.monotonic() - started)
            if left > 0:
                self._stopping.wait(left)  # stop() wakes it
        finally:
            self._release(arrived)
        return True, result

    def _admit(self, arrived: float) -> bool:
        """Take a worker, waiting in line for one; False when the line is full."""
        with self._lock:
            self._first = arrived if self._first is None else self._first
            if self._busy < self.settings.capacity and not self._waiting:
                self._busy += 1
                return True
            if len(self._waiting) >= self.settings.waiting_room:
                self._throttled += 1
                self._last = max(self._last, arrived)
                return False
            turn = threading.Event()
            self._waiting.append(turn)
        while not turn.wait(0.5):  # the worker is handed over by _release (or the server is stopping)
            if self._stopping.is_set():
                with self._lock:
                    if turn in self._waiting:
                        self._waiting.remove(turn)
                        self._busy += 1  # released below as if served, so the counts stay whole
                break
        return True

    def _release(self, arrived: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._served += 1
            self._times.append(now - arrived)
            self._answered.append(now)
            self._last = max(self._last, now)
            if self._waiting:
                self._waiting.popleft().set()  # the worker goes straight to the next in line
            else:
                self._busy -= 1

    def report(self) -> CapacityReport:
        """What the model has seen so far."""
        with self._lock:
            times = sorted(self._times)
            answered = list(self._answered)
            served, throttled, first, last = self._served, self._throttled, self._first, self._last
        p50 = statistics.median(times) if times else 0.0
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))] if times else 0.0
        busy = last - first if first is not None else 0.0
        middle = (first or 0.0) + busy / 2
        late = sum(1 for t in answered if t >= middle) / (busy / 2) if busy > 0 else 0.0
        s = self.settings
        return CapacityReport(s.capacity, s.service_ms, s.waiting_room, served, throttled, round(p50 * 1000, 2),
                              round(p95 * 1000, 2), round(busy, 3), round(late, 2))  # fmt: skip
