"""Group commit: one thread owns the ledger and commits whatever has queued up in one transaction.

Workers that must not send before their intent is durable wait on a future; everything else is
fire-and-forget. Grouping commits keeps "recorded before sent" without paying an fsync per row.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from ._ledger import Ledger
from ._write import LedgerWrite

__all__ = ["LedgerWriter"]

_MAX_GROUP = 2000
_LINGER_SECONDS = 0.1


@dataclass
class _Batch:
    write: LedgerWrite
    done: Future[None] | None = None


class LedgerWriter:
    """A background thread appending to a Ledger in grouped transactions."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        # A deque and an event rather than a queue: only a durable batch (or close) wakes the writer, so
        # the many fire-and-forget batches of a run cost an append each, not a thread switch each.
        self._pending: collections.deque[_Batch | None] = collections.deque()
        self._wake = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="ledger-writer", daemon=True)
        self._thread.start()

    def submit(self, write: LedgerWrite, *, durable: bool = False) -> None:
        """Queue a write; with durable=True, return only once it is committed (or raise why not)."""
        if self._failure is not None:
            raise self._failure
        done: Future[None] | None = Future() if durable else None
        self._pending.append(_Batch(write, done))
        if done is not None:
            self._wake.set()
            done.result()

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        self.submit(LedgerWrite(), durable=True)

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        self._pending.append(None)
        self._wake.set()
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    def _loop(self) -> None:
        stop = backlog = False
        while not stop:
            if not backlog:
                # Nobody waits on a non-durable batch: let up to _LINGER_SECONDS' worth gather into one
                # commit (each commit rewrites whole pages). A durable batch ends the wait at once, and
                # its commit takes everything queued before it along.
                self._wake.wait(_LINGER_SECONDS)
            self._wake.clear()
            group: list[_Batch] = []
            while self._pending and len(group) < _MAX_GROUP:
                batch = self._pending.popleft()
                if batch is None:
                    stop = True
                    break
                group.append(batch)
            backlog = len(group) >= _MAX_GROUP
            if group:
                self._commit(group)

    def _commit(self, group: list[_Batch]) -> None:
        try:
            if self._failure is not None:
                raise self._failure
            # Only a group someone waits on must reach the disk before COMMIT returns; its fsync also
            # covers every commit before it.
            combined = LedgerWrite()
            for b in group:
                combined.add(b.write)
            self.ledger.append(combined, durable=any(b.done is not None for b in group))
        except BaseException as exc:  # disk full, I/O error: every waiter must learn it, nothing may be sent
            self._failure = exc
            for b in group:
                if b.done is not None:
                    b.done.set_exception(exc)
            return
        for b in group:
            if b.done is not None:
                b.done.set_result(None)
