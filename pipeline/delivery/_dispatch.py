"""The run's orchestration: chunks planned and recorded, requests sent in intent windows with back-pressure.

Per chunk: plan every row, record at once the rows that need no request (a re-run is mostly these),
then hand the rest to the workers. "About to send" records are committed a window of rows at a time
(one fsync for the window), and at most two windows of rows wait in the pool, so a 100,000-row export
never sits in memory as futures. The pool has `concurrency` workers (the ceiling) and an eighth more,
which sign their next request while every place is taken; how many of them send at once is the
limiter's to say, and a window is twice what it allows now (32 rows at least), so
a slow CorEMR does not leave hundreds of rows recorded as "sending" that have not left. Once
the run is told to stop (circuit breaker, the delivery window's end, Ctrl-C, a crash), rows not yet
sent are recorded as not sent, and every worker's wait ends at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from .._gc import cycle_collector_paused
from ..ledger import NOT_DELIVERED, RowState
from ..mapping import MappedRow
from ._concurrency import ConcurrencyLimiter
from ._engine import Delivery, RowOutcome
from ._plan import Plan
from ._retry import RunStop

__all__ = ["Dispatcher", "Tally", "workers_for"]

_KEEP_PROBLEMS = 1000  # rows kept in memory for the end-of-run listing; the ledger has them all
# Rows whose "about to send" entries share one durable commit (at least; twice the concurrency when larger).
_MIN_INTENT_WINDOW = 32
_NEEDS_REQUEST: tuple[Plan, ...] = ("send", "settle")
# Workers beyond the ceiling, as a share of it: each signs its next request while its place is taken by
# another, so a place freed is taken at once and not after a signature (~2 ms of each ~100 ms round trip).
_SPARE_SHARE = 8


def workers_for(ceiling: int) -> int:
    """Pool size for a limiter's ceiling: an eighth more (one at least), which wait with a request signed.

    A ceiling of 1 gets no spare: one request at a time goes in the file's order, and a spare worker
    could take the place before the row ahead of it.
    """
    return ceiling + (max(1, -(-ceiling // _SPARE_SHARE)) if ceiling > 1 else 0)


class Tally:
    """Counts per state and the rows needing attention, added to from many threads."""

    def __init__(self, on_row: Callable[[RowOutcome], None] | None = None) -> None:
        self.counts: Counter[RowState] = Counter()
        self.attention: list[RowOutcome] = []  # new ones first when there are more than can be kept
        self.new_attention = 0  # rows that newly need a person (or changed since they were reported)
        self.known_attention = 0  # rows reported before, unchanged since
        self._known_kept: list[RowOutcome] = []
        self._on_row = on_row
        self._lock = threading.Lock()

    def add(self, outcomes: list[RowOutcome]) -> None:
        """Count these outcomes and keep the first rows that need a person."""
        with self._lock:
            self.counts.update(o.state for o in outcomes)
            for outcome in outcomes:
                if outcome.state not in NOT_DELIVERED:
                    continue
                if outcome.known:
                    self.known_attention += 1
                    if len(self._known_kept) < _KEEP_PROBLEMS:
                        self._known_kept.append(outcome)
                else:
                    self.new_attention += 1
                    if len(self.attention) < _KEEP_PROBLEMS:
                        self.attention.append(outcome)
        if self._on_row is not None:
            for outcome in outcomes:
                self._on_row(outcome)

    def kept_attention(self) -> list[RowOutcome]:
        """The rows kept for the listing: every new one kept, then known ones up to the same cap."""
        return self.attention + self._known_kept[: max(0, _KEEP_PROBLEMS - len(self.attention))]


class Dispatcher:
    """Feeds a run's rows to the engine: planned by chunk, sent by a pool of workers, counted in a Tally."""

    def __init__(
        self,
        delivery: Delivery,
        stop: RunStop,
        limiter: ConcurrencyLimiter,
        tally: Tally,
        on_total: Callable[[int], None] | None = None,
    ) -> None:
        self._delivery = delivery  # its requests wait for a place from LIMITER
        self._stop = stop
        self._tally = tally
        self._on_total = on_total
        self._limiter = limiter
        self._window: list[tuple[MappedRow, str]] = []
        self._queued = 0  # rows handed to the pool and not yet done
        self._room = threading.Condition()
        self._futures: list[Future[None]] = []

    def run(self, chunks: Iterator[list[MappedRow]]) -> None:
        """Deliver every row of every chunk; on any exception (Ctrl-C included) stop the run, then re-raise."""
        with ThreadPoolExecutor(workers_for(self._limiter.limit.ceiling), thread_name_prefix="deliver") as pool:
            try:
                while (requests := self._next_chunk(chunks)) is not None:
                    self._dispatch(pool, requests)
                    self._reap()
                self._send_window(pool)
                for future in self._futures:
                    future.result()
            except BaseException as exc:
                # Rows already queued end at once, recorded as not sent; the pool's exit waits for them.
                why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                self._stop.stop(f"stopped because the run was {why}")
                raise

    def _next_chunk(self, chunks: Iterator[list[MappedRow]]) -> list[tuple[MappedRow, Plan, str]] | None:
        """Plan the next chunk, record its rows that need no request, return those that do (None at the end)."""
        # Mapping a chunk, planning each row and recording the rows that need no request make 100,000s of
        # objects with no cycles: pause the collector (nothing in here waits on the network), and let those
        # rows go before it resumes so that it finds nothing to do.
        with cycle_collector_paused():
            chunk = next(chunks, None)
            if chunk is None:
                return None
            if self._on_total is not None:
                self._on_total(len(chunk))
            planned = [(row, *self._delivery.plan(row)) for row in chunk]
            quiet = [p for p in planned if p[1] not in _NEEDS_REQUEST or p[2] is None]
            self._tally.add(self._delivery.record_many_without_sending(quiet))
            requests = [(row, plan, sha) for row, plan, sha in planned if plan in _NEEDS_REQUEST and sha]
            chunk.clear()
            del planned, quiet
        return requests

    def _dispatch(self, pool: ThreadPoolExecutor, requests: list[tuple[MappedRow, Plan, str]]) -> None:
        """Send rows in doubt at once, the rest in intent windows; once stopped, record the rest as not sent."""
        stopped: list[tuple[MappedRow, Plan, str | None]] = []
        for row, plan, sha in requests:
            if plan == "settle":
                self._submit(pool, row, plan, sha, intent_recorded=False)
            elif self._stop.stopped:
                stopped.append((row, "stopped", sha))  # recorded as not sent, with no "sending" first
            else:
                self._window.append((row, sha))
                if len(self._window) >= self._window_size():
                    self._send_window(pool)
        if stopped:
            self._tally.add(self._delivery.record_many_without_sending(stopped))

    def _window_size(self) -> int:
        """Rows whose intents share one commit: twice the requests allowed in flight now (32 at least)."""
        return max(_MIN_INTENT_WINDOW, 2 * self._limiter.limit.allowed)

    def _send_window(self, pool: ThreadPoolExecutor) -> None:
        """Record the window's intents in one durable commit, then hand its rows to the workers."""
        window, self._window = self._window, []
        if window:
            self._delivery.record_intents(window)
            for row, sha in window:
                self._submit(pool, row, "send", sha, intent_recorded=True)

    def _submit(self, pool: ThreadPoolExecutor, row: MappedRow, plan: Plan, sha: str, *, intent_recorded: bool) -> None:
        with self._room:  # back-pressure: at most four rows per request allowed in flight wait in the pool
            while self._queued >= 2 * self._window_size():
                self._room.wait()
            self._queued += 1
        self._futures.append(pool.submit(self._work, row, plan, sha, intent_recorded))

    def _work(self, row: MappedRow, plan: Plan, sha: str, intent_recorded: bool) -> None:
        try:
            self._tally.add([self._delivery.deliver(row, plan, sha, intent_recorded=intent_recorded)])
        finally:
            with self._room:
                self._queued -= 1
                self._room.notify()

    def _reap(self) -> None:
        """Forget finished rows; raise the first worker failure (a ledger that cannot be written) here."""
        alive = []
        for future in self._futures:
            if future.done():
                future.result()
            else:
                alive.append(future)
        self._futures = alive
