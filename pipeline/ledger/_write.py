"""One value for what a ledger transaction appends: entries, the body bytes they name, the row states they set."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._entries import Entry
from ._row_states import StatusUpdate

__all__ = ["LedgerWrite"]


@dataclass
class LedgerWrite:
    """Entries to append, the bodies (by SHA-256) they name, and the row_status changes they cause.

    Written in one transaction, so a row's status never runs ahead of the entry that explains it.
    """

    entries: list[Entry] = field(default_factory=list)
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    updates: list[StatusUpdate] = field(default_factory=list)

    def add(self, other: LedgerWrite) -> None:
        """Append another write's entries, bodies and updates to this one (in that order)."""
        self.entries += other.entries
        self.bodies += other.bodies
        self.updates += other.updates

    def __bool__(self) -> bool:
        return bool(self.entries or self.bodies or self.updates)
