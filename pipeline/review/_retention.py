"""Patient-data retention: delete stored body bytes older than a date, keeping the chain, hashes and headers.

Entries (states, hashes, signature headers) stay, so the chain still verifies and `audit` counts the
entries whose bodies are gone as not checkable. Only the bytes of request, response and original-cell
bodies are removed; a body that an entry at or after the date still names is kept. The deleted bytes
are overwritten (SQLite secure_delete) and the write-ahead log is checkpointed and truncated, so they
do not linger in the file; `vacuum=True` also gives the freed pages back to the file system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .._errors import UserInputError
from ..ledger import Ledger, now_iso

__all__ = ["PruneResult", "parse_before", "prune_bodies"]

_DAYS = re.compile(r"(\d+)d")


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
    value = text.strip()
    days = _DAYS.fullmatch(value)
    if days:
        return (now or datetime.now(UTC)) - timedelta(days=int(days[1]))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UserInputError(
            f"--before {text!r}: give a date like 2026-01-31, a time like 2026-01-31T00:00:00+00:00, or an age like 90d"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def prune_bodies(ledger: Ledger, before: datetime, *, dry_run: bool = False, vacuum: bool = False) -> PruneResult:
    """Delete the bytes of bodies stored before `before` that no later entry names; keep every entry."""
    cutoff = before.astimezone(UTC).isoformat(timespec="milliseconds")  # the ledger's own format: compares as text
    if before > datetime.now(UTC):
        raise UserInputError(f"--before {cutoff}: is in the future; that would delete bodies of runs not yet made")
    db = ledger.connection
    _list_bodies_of_later_skipped_rows(ledger, cutoff)
    # Bodies are shared by content: a later run that sent the same bytes still needs them.
    where = (
        "body IS NOT NULL AND stored_at < :cutoff AND sha256 NOT IN ("
        " SELECT request_sha256 FROM entries WHERE at >= :cutoff AND request_sha256 IS NOT NULL"
        " UNION SELECT response_sha256 FROM entries WHERE at >= :cutoff AND response_sha256 IS NOT NULL"
        " UNION SELECT cells_sha256 FROM entries WHERE at >= :cutoff AND cells_sha256 IS NOT NULL"
        " UNION SELECT sha256 FROM temp.named_by_skipped_rows)"
    )
    count, size = db.execute(f"SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM bodies WHERE {where}",  # noqa: S608
                             {"cutoff": cutoff}).fetchone()  # fmt: skip
    if dry_run or not count:
        return PruneResult(cutoff, int(count), int(size), dry_run=dry_run)
    db.execute("PRAGMA secure_delete=ON")  # overwrite the freed bytes instead of leaving them in free pages
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(f"UPDATE bodies SET body=NULL, pruned_at=:now WHERE {where}", {"cutoff": cutoff, "now": now_iso()})  # noqa: S608
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if vacuum:
        db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # old page images in the WAL hold the bytes until then
    return PruneResult(cutoff, int(count), int(size), vacuumed=vacuum)


def _list_bodies_of_later_skipped_rows(ledger: Ledger, cutoff: str) -> None:
    """Fill temp.named_by_skipped_rows with the bodies that rows listed in skipped_rows entries since cutoff name."""
    db = ledger.connection
    db.execute("CREATE TEMP TABLE IF NOT EXISTS named_by_skipped_rows (sha256 TEXT PRIMARY KEY)")
    db.execute("DELETE FROM temp.named_by_skipped_rows")
    for _, rows in ledger.skipped_rows(since=cutoff):
        db.executemany(
            "INSERT OR IGNORE INTO temp.named_by_skipped_rows VALUES (?)",
            [(sha,) for row in rows for sha in (row.request_sha256, row.cells_sha256)],
        )
