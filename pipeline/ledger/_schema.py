"""The ledger's tables, and bringing a ledger written by an earlier version up to them.

Tables:
    meta        schema_version
    runs        one row per run: source, mapping, endpoint, access, algorithm, version, pid, status, counts,
                concurrency, and the operating-system user and host that ran it
    entries     append-only, hash-chained events (run_started, sending, attempt, lookup, state, skipped_rows,
                run_finished, accepted, resend): see _entries
    bodies      request/response/cell bytes keyed by SHA-256, outside the chain so they can be pruned
    row_status  derived: the latest known state of each row key (with its body's and input cells' SHA-256),
                for deciding what a re-run sends, the run since which the row has needed a person, the run
                that delivered its body and how (created, booking added, found, updated), and which request
                a "sending" or a doubt is about (create, booking, update)
"""

from __future__ import annotations

import sqlite3

__all__ = ["SCHEMA", "SCHEMA_VERSION", "TABLES", "columns", "upgrade"]

SCHEMA_VERSION = "1"
TABLES = ("meta", "runs", "entries", "bodies", "row_status")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    mapping TEXT NOT NULL,
    mapping_sha256 TEXT NOT NULL,
    base_url TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    access TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    program_version TEXT NOT NULL,
    pid INTEGER NOT NULL,
    counts TEXT,
    exit_code INTEGER,
    concurrency INTEGER,
    user TEXT,
    host TEXT
);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    line INTEGER,
    key TEXT,
    external_id TEXT,
    state TEXT,
    attempt INTEGER,
    method TEXT,
    url TEXT,
    http_status INTEGER,
    elapsed_ms REAL,
    request_sha256 TEXT,
    request_authorization TEXT,
    response_sha256 TEXT,
    response_authorization TEXT,
    response_signer TEXT,
    verification TEXT,
    cells_sha256 TEXT,
    error TEXT,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_run ON entries (run_id, event);
CREATE TABLE IF NOT EXISTS bodies (sha256 TEXT PRIMARY KEY, body BLOB, stored_at TEXT NOT NULL, pruned_at TEXT);
CREATE TABLE IF NOT EXISTS row_status (
    key TEXT PRIMARY KEY,
    external_id TEXT,
    state TEXT NOT NULL,
    body_sha256 TEXT,
    delivered_sha256 TEXT,
    run_id INTEGER NOT NULL,
    line INTEGER,
    reason TEXT,
    cells_sha256 TEXT,
    since_run_id INTEGER,
    delivered_run_id INTEGER,
    action TEXT,
    step TEXT
);
"""

# Columns later versions added to a table, with their type: a ledger from before them gets them on open.
_ADDED = (
    ("row_status", "cells_sha256", "TEXT"),  # 0.1.0's end
    ("row_status", "since_run_id", "INTEGER"),  # NULL for rows last changed before it: read as run_id
    ("runs", "concurrency", "INTEGER"),  # the requests in flight a run settled at; NULL before it, or none sent
    ("row_status", "delivered_run_id", "INTEGER"),  # filled from the chain's delivered state entries (below)
    ("row_status", "action", "TEXT"),  # NULL for rows delivered before it: they were created or found
    ("row_status", "step", "TEXT"),  # NULL for requests recorded before it: every one was a create
    ("runs", "user", "TEXT"),  # the operating-system user who ran it; NULL for runs recorded before it
    ("runs", "host", "TEXT"),  # the host it ran on; NULL for runs recorded before it
)
# The run that delivered each key's body, for a ledger from before delivered_run_id: its latest `delivered`
# state entry (one pass over the entries; the chain itself is not touched).
_FILL_DELIVERED_RUN = (
    "UPDATE row_status SET delivered_run_id = d.run_id FROM (SELECT key, MAX(run_id) AS run_id FROM entries"
    " WHERE event='state' AND state='delivered' AND key IS NOT NULL GROUP BY key) AS d"
    " WHERE row_status.key = d.key AND row_status.delivered_sha256 IS NOT NULL"
)


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    """The names of a table's columns."""
    return {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}  # table names are ours, never input


def upgrade(db: sqlite3.Connection) -> None:
    """Create the tables (a new ledger) or add the columns a ledger from an earlier version lacks."""
    db.executescript(SCHEMA)
    missing = [(table, column, kind) for table, column, kind in _ADDED if column not in columns(db, table)]
    if missing:
        db.execute("BEGIN IMMEDIATE")  # the columns and what fills them, all or nothing
        try:
            for table, column, kind in missing:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            if ("row_status", "delivered_run_id", "INTEGER") in missing:
                db.execute(_FILL_DELIVERED_RUN)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
