"""Retention in SQL: delete the bytes of old bodies no later entry names, and make sure they do not linger."""

from __future__ import annotations

import sqlite3

from ._entries import now_iso

__all__ = ["prune_bodies"]

# Bodies are shared by content: a later run that sent the same bytes, or listed a skipped row naming them,
# still needs them.
_PRUNABLE = (
    "body IS NOT NULL AND stored_at < :cutoff AND sha256 NOT IN ("
    " SELECT request_sha256 FROM entries WHERE at >= :cutoff AND request_sha256 IS NOT NULL"
    " UNION SELECT response_sha256 FROM entries WHERE at >= :cutoff AND response_sha256 IS NOT NULL"
    " UNION SELECT cells_sha256 FROM entries WHERE at >= :cutoff AND cells_sha256 IS NOT NULL"
    " UNION SELECT sha256 FROM temp.named_by_skipped_rows)"
)


def prune_bodies(
    db: sqlite3.Connection, cutoff: str, named_later: set[str], *, dry_run: bool, vacuum: bool
) -> tuple[int, int]:
    """Delete (unless dry_run) the bytes of prunable bodies; return how many bodies and bytes that is."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS named_by_skipped_rows (sha256 TEXT PRIMARY KEY)")
    db.execute("DELETE FROM temp.named_by_skipped_rows")
    db.executemany("INSERT OR IGNORE INTO temp.named_by_skipped_rows VALUES (?)", [(sha,) for sha in named_later])
    count, size = db.execute(
        f"SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM bodies WHERE {_PRUNABLE}",  # noqa: S608
        {"cutoff": cutoff},
    ).fetchone()
    if dry_run or not count:
        return int(count), int(size)
    db.execute("PRAGMA secure_delete=ON")  # overwrite the freed bytes instead of leaving them in free pages
    db.execute("BEGIN IMMEDIATE")
    try:
        sql = f"UPDATE bodies SET body=NULL, pruned_at=:now WHERE {_PRUNABLE}"  # noqa: S608 -- fixed text
        db.execute(sql, {"cutoff": cutoff, "now": now_iso()})
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if vacuum:
        db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # old page images in the WAL hold the bytes until then
    return int(count), int(size)
