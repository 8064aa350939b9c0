"""The audit ledger: one SQLite file holding runs, a hash-chained append-only entry log, and body bytes.

Tables:
    runs        one row per run: source, mapping, endpoint, access, algorithm, version, counts
    entries     append-only, hash-chained events (run_started, sending, attempt, lookup, state, skipped_rows,
                run_finished): see _entries
    bodies      request/response/cell bytes keyed by SHA-256, outside the chain so they can be pruned
    row_status  derived: the latest known state of each row key (with its body's and input cells' SHA-256),
                for deciding what a re-run sends

The file holds patient data: it is created mode 0600, and SQLite gives its -wal/-shm files the same mode.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._errors import UserInputError
from .._gc import cycle_collector_paused
from ._entries import (
    ENTRY_FIELDS,
    GENESIS_HASH,
    Entry,
    SkippedRow,
    entry_hash,
    entry_values,
    now_iso,
    row_states,
    skipped_rows,
)
from ._row_states import PriorRows, StatusUpdate
from ._write import LedgerWrite

__all__ = ["Ledger", "RunInfo"]

SCHEMA_VERSION = "1"

_SCHEMA = """
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
    exit_code INTEGER
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
    cells_sha256 TEXT
);
"""

# Column names come from the Entry dataclass, never from input.
_INSERT_ENTRY = f"INSERT INTO entries ({','.join(ENTRY_FIELDS)}) VALUES ({','.join('?' * len(ENTRY_FIELDS))})"  # noqa: S608
_SELECT_ENTRIES = f"SELECT {','.join(ENTRY_FIELDS)} FROM entries"  # noqa: S608


@dataclass(frozen=True)
class RunInfo:
    """What a run is about, written to the runs table and the chain when it starts."""

    source: str
    source_sha256: str
    mapping: str
    mapping_sha256: str
    base_url: str
    endpoint: str
    access: str
    algorithm: str
    program_version: str


class Ledger:
    """An open ledger file. Not thread-safe: one thread (the run's writer) appends."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        row = self._db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        self._seq: int = row[0] if row else 0
        self._head: str = row[1] if row else GENESIS_HASH
        self._full = self._db.execute("PRAGMA synchronous").fetchone()[0] >= 2

    @classmethod
    def open(cls, path: Path | str, *, create: bool = True) -> Ledger:
        """Open (and, unless create=False, create with mode 0600) the ledger at path."""
        path = Path(path)
        if not path.exists():
            if not create:
                raise UserInputError(f"{path}: no such ledger file")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except OSError as exc:
                raise UserInputError(f"{path}: cannot create the ledger ({exc.strerror})") from None
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: an entry saying a request is about to leave must survive power loss, not only a crash.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(_SCHEMA)
            if "cells_sha256" not in {r[1] for r in db.execute("PRAGMA table_info(row_status)")}:
                db.execute("ALTER TABLE row_status ADD COLUMN cells_sha256 TEXT")  # a ledger from before 0.1.0's end
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            raise UserInputError(f"{path}: not a cws-pipeline ledger ({exc})") from None
        return cls(path, db)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection, for read-only queries by reports and audits."""
        return self._db

    # -- writing -------------------------------------------------------------------------------

    def begin_run(self, info: RunInfo, pid: int) -> int:
        """Record a new run (and its run_started entry); return its run_id."""
        self._synchronous(True)
        started = now_iso()
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO runs (started_at, status, source, source_sha256, mapping, mapping_sha256, base_url,"
                " endpoint, access, algorithm, program_version, pid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (started, "running", info.source, info.source_sha256, info.mapping, info.mapping_sha256,
                 info.base_url, info.endpoint, info.access, info.algorithm, info.program_version, pid),
            )  # fmt: skip
            run_id = int(cur.lastrowid or 0)
            detail = json.dumps(asdict(info), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
            self._append_locked([Entry(run_id, "run_started", at=started, detail=detail)])
        return run_id

    def append(self, write: LedgerWrite, *, durable: bool = True) -> None:
        """Append entries, store bodies and update row_status in one transaction (durable: fsync'd at commit).

        durable=False commits without waiting for the disk: the entries survive a crash of this process
        but not a power loss, until the next durable commit, which makes everything before it durable too.
        """
        self._synchronous(durable)
        with self._transaction():
            self._store_bodies(write.bodies)
            self._append_locked(write.entries)
            self._update_status(write.updates)

    def finish_run(self, run_id: int, counts: dict[str, int], status: str, exit_code: int) -> None:
        """Record the end of a run with its counts per state."""
        self._synchronous(True)
        finished = now_iso()
        detail = json.dumps({"counts": counts, "status": status, "exit_code": exit_code}, separators=(",", ":"))
        with self._transaction():
            self._append_locked([Entry(run_id, "run_finished", at=finished, detail=detail)])
            self._db.execute(
                "UPDATE runs SET finished_at=?, status=?, counts=?, exit_code=? WHERE run_id=?",
                (finished, status, json.dumps(counts, separators=(",", ":")), exit_code, run_id),
            )

    def mark_interrupted_runs(self) -> list[int]:
        """Mark runs left 'running' by a process that died (the caller holds the lock); return their ids."""
        ids = [r[0] for r in self._db.execute("SELECT run_id FROM runs WHERE status='running'")]
        if ids:
            self._db.execute("UPDATE runs SET status='interrupted' WHERE status='running'")
        return ids

    def _synchronous(self, full: bool) -> None:
        """FULL: a commit is on disk when COMMIT returns (WAL fsync'd); NORMAL: it is in the OS's hands."""
        if full != self._full:
            self._db.execute("PRAGMA synchronous=FULL" if full else "PRAGMA synchronous=NORMAL")
            self._full = full

    def _append_locked(self, entries: Sequence[Entry]) -> None:
        rows = []
        at = now_iso()  # entries committed together are appended at the same millisecond, near enough
        for entry in entries:
            self._seq += 1
            entry.seq = self._seq
            entry.prev_hash = self._head
            if not entry.at:
                entry.at = at
            values = entry.__dict__
            entry.hash = entry_hash(values)
            self._head = entry.hash
            rows.append(entry_values(values))
        self._db.executemany(_INSERT_ENTRY, rows)

    def _store_bodies(self, bodies: Iterable[tuple[str, bytes]]) -> None:
        stored = now_iso()
        self._db.executemany(
            "INSERT OR IGNORE INTO bodies (sha256, body, stored_at) VALUES (?,?,?)",
            ((sha, body, stored) for sha, body in bodies),
        )

    def _update_status(self, updates: Iterable[StatusUpdate]) -> None:
        self._db.executemany(
            "INSERT INTO row_status (key, external_id, state, body_sha256, delivered_sha256, run_id, line, reason,"
            " cells_sha256) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET"
            " external_id=excluded.external_id, state=excluded.state, body_sha256=excluded.body_sha256,"
            " run_id=excluded.run_id, line=excluded.line, reason=excluded.reason,"
            " cells_sha256=COALESCE(excluded.cells_sha256, row_status.cells_sha256),"
            " delivered_sha256=CASE WHEN ? THEN excluded.body_sha256 ELSE row_status.delivered_sha256 END",
            ((u.key, u.external_id, u.state, u.body_sha256, u.body_sha256 if u.delivered else None, u.run_id,
              u.line, u.reason, u.cells_sha256, u.delivered) for u in updates),
        )  # fmt: skip

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    # -- reading -------------------------------------------------------------------------------

    def prior_rows(self) -> PriorRows:
        """Every row key earlier runs left a state for."""
        cur = self._db.execute(
            "SELECT key, external_id, state, body_sha256, delivered_sha256, run_id, line, reason, cells_sha256"
            " FROM row_status"
        )
        with cycle_collector_paused():  # 100,000s of tuples, no cycles
            return PriorRows({r[0]: r for r in cur})

    def entries(self, run_id: int | None = None) -> Iterator[Entry]:
        """Entries in chain order, optionally of one run."""
        sql = _SELECT_ENTRIES
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id=?"
            args = (run_id,)
        for row in self._db.execute(sql + " ORDER BY seq", args):
            yield Entry(**dict(zip(ENTRY_FIELDS, row, strict=True)))

    def row_states(self, run_id: int | None = None) -> Iterator[Entry]:
        """Each row's state entry in chain order, optionally of one run, skipped_rows entries expanded per row."""
        sql = _SELECT_ENTRIES + " WHERE event IN ('state', 'skipped_rows')"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " AND run_id=?"
            args = (run_id,)
        rows = self._db.execute(sql + " ORDER BY seq", args)
        return row_states(Entry(**dict(zip(ENTRY_FIELDS, row, strict=True))) for row in rows)

    def skipped_rows(
        self, *, run_ids: Sequence[int] | None = None, since: str | None = None
    ) -> list[tuple[Entry, list[SkippedRow]]]:
        """The skipped_rows entries of these runs (or written at or after `since`), each with the rows it lists.

        A list that cannot be read is a UserInputError naming the entry: its rows' states are unknown.
        """
        sql = "SELECT run_id, seq, at, detail FROM entries WHERE event='skipped_rows'"
        args: list[Any] = []
        if run_ids is not None:
            sql += f" AND run_id IN ({','.join('?' * len(run_ids))})"
            args += run_ids
        if since is not None:
            sql += " AND at >= ?"
            args.append(since)
        found = []
        for run_id, seq, at, detail in self._db.execute(sql + " ORDER BY seq", args).fetchall():
            entry = Entry(run_id, "skipped_rows", at=at, detail=detail, seq=seq)
            try:
                found.append((entry, skipped_rows(entry)))
            except ValueError as exc:
                raise UserInputError(
                    f"{self.path}: {exc}; nothing was changed: run `cws-pipeline audit` on this ledger"
                ) from None
        return found

    def body(self, sha256: str | None) -> bytes | None:
        """Stored bytes for a SHA-256, or None when never stored or pruned."""
        if sha256 is None:
            return None
        row = self._db.execute("SELECT body FROM bodies WHERE sha256=?", (sha256,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def run_ending(self, run_id: int) -> tuple[str, int | None] | None:
        """A run's status ('running', 'finished', 'stopped', 'interrupted', 'crashed') and exit code, or None."""
        row = self._db.execute("SELECT status, exit_code FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def latest_run_id(self) -> int | None:
        """The most recent run's id, or None for an empty ledger."""
        row = self._db.execute("SELECT MAX(run_id) FROM runs").fetchone()
        return None if row is None or row[0] is None else int(row[0])


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolling back (and rewinding the chain head) on error."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __enter__(self) -> None:
        self._seq, self._head = self._ledger._seq, self._ledger._head
        self._ledger._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            try:
                self._ledger._db.execute("COMMIT")
            except BaseException:  # a full disk fails the COMMIT itself: nothing of it was committed
                self._undo()
                raise
        else:
            self._undo()

    def _undo(self) -> None:
        """Rewind the chain head to the last committed entry, then roll back unless SQLite already has."""
        self._ledger._seq, self._ledger._head = self._seq, self._head
        if self._ledger._db.in_transaction:
            self._ledger._db.execute("ROLLBACK")
