"""Patient-data retention: delete stored body bytes older than a date, keeping the chain, hashes and headers.

Entries (states, hashes, signature headers) stay, so the chain still verifies and `audit` counts the
entries whose bodies are gone as not checkable. Only the bytes of request, response and original-cell
bodies are removed; a body that an entry at or after the date still names is kept. The deleted bytes
are overwritten (SQLite secure_delete) and the write-ahead log is checkpointed and truncated, so they
do not linger in the file; `vacuum=True` also gives the freed pages back to the file system.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .._errors import UserInputError
from ..ledger import Ledger
from ._times import ledger_time, parse_when

__all__ = ["PruneResult", "parse_before", "prune_bodies"]


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or, on a dry run, would remove)."""

    before: str
    bodies: int
    bytes: int
    dry_run: bool = False
    vacuumed: bool = False


def parse_before(text: str, now: datetime | None = None) -> datetime:
    """A cut-off from `YYYY-MM-DD` (midnight UTC), an ISO 8601 time (UTC unless it has an offset), or `90d`."""
    return parse_when(text, "--before", now)


def prune_bodies(ledger: Ledger, before: datetime, *, dry_run: bool = False, vacuum: bool = False) -> PruneResult:
    """Delete the bytes of bodies stored before `before` that no later entry names; keep every entry."""
    cutoff = ledger_time(before)
    if before > datetime.now(UTC):
        raise UserInputError(f"--before {cutoff}: is in the future; that would delete bodies of runs not yet made")
    count, size = ledger.prune_bodies(cutoff, dry_run=dry_run, vacuum=vacuum)
    return PruneResult(cutoff, count, size, dry_run=dry_run, vacuumed=vacuum and not dry_run and count > 0)
