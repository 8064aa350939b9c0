"""A row's outcome in a run: the one state it ended in, why, how a delivered row got there, and whether an
earlier run already left it so (then cron need not hear of it again)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ledger import Action, LedgerWrite, PriorRow, RowState, booking_identity
from ._plan import already_reported

__all__ = ["RowOutcome", "known_outcome"]


@dataclass(frozen=True)
class RowOutcome:
    """The one state a row ended in, and why; `known` when an earlier run left it so, unchanged since; for a
    delivered row how it got there (ACTION); the body the state is about (a held change: the new body, not sent)."""

    line: int
    key: str
    state: RowState
    reason: str | None = None
    known: bool = False
    action: Action | None = None  # delivered: created, booking added, found or updated
    body_sha256: str | None = None
    # The input cells: name a line without a key as a booking (see `booking`); how, not what, so not compared.
    cells_sha256: str | None = field(default=None, compare=False)

    @property
    def booking(self) -> str:
        """The booking this row is a line of: its key, or for a line without one, its input cells."""
        return booking_identity(self.key, self.cells_sha256)


def known_outcome(p: PriorRow | None, write: LedgerWrite) -> bool:
    """Whether the row's new status repeats what an earlier run left (same state, body and input cells)."""
    return already_reported(p, write.updates[-1] if write.updates else None)
