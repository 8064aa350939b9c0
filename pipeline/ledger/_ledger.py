"""The audit ledger: one SQLite file holding runs, a hash-chained append-only entry log, and body bytes.

The tables are in _schema, the file's rules (who may read it, read-only opens, damage) in _file, and the
read methods in _reads: every SQL statement of the product is in this package.

The file holds patient data: it is created mode 0600, and SQLite gives its -wal/-shm files the same mode.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path

from .._errors import UserInputError
from .._gc import cycle_collector_paused
from ._entries import ENTRY_FIELDS, GENESIS_HASH, Entry, entry_hash, entry_values, now_iso
from ._file import (
    IntegrityCheck,
    check_integrity,
    check_private,
    connect_read_only,
    ledger_error,
    not_a_ledger,
    sqlite_errors,
)
from ._prune import prune_bodies
from ._reads import SETTLED_SQL, LedgerReads
from ._row_states import PriorRows, StatusUpdate
from ._runs import RunInfo, RunRecord, RunStatus
from ._schema import TABLES, columns, upgrade
from ._write import LedgerWrite

__all__ = ["Ledger"]

# Column names come from the Entry dataclass, never from input.
# since_run_id is kept while a row stays settled, or stays outstanding, and becomes the run's id when it
# changes side. SETTLED_SQL is our own list of state names, never input.
_UPSERT_STATUS = (
    "INSERT INTO row_status (key, external_id, state, body_sha256, delivered_sha256, run_id, line, reason,"  # noqa: S608
    " cells_sha256, since_run_id, delivered_run_id, action, step) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(key) DO UPDATE SET"
    " external_id=excluded.external_id, state=excluded.state, body_sha256=excluded.body_sha256,"
    " run_id=excluded.run_id, line=excluded.line, reason=excluded.reason,"
    " cells_sha256=COALESCE(excluded.cells_sha256, row_status.cells_sha256),"
    f" since_run_id=CASE WHEN (row_status.state IN ({SETTLED_SQL})) = (excluded.state IN ({SETTLED_SQL}))"
    " THEN COALESCE(row_status.since_run_id, row_status.run_id) ELSE excluded.run_id END,"
    " step=COALESCE(excluded.step, row_status.step),"
    " delivered_sha256=CASE WHEN ?14 THEN excluded.body_sha256 ELSE row_status.delivered_sha256 END,"
    " delivered_run_id=CASE WHEN ?14 THEN excluded.run_id ELSE row_status.delivered_run_id END,"
    " action=CASE WHEN ?14 THEN excluded.action ELSE row_status.action END"
)
_INSERT_ENTRY = f"INSERT INTO entries ({','.join(ENTRY_FIELDS)}) VALUES ({','.join('?' * len(ENTRY_FIELDS))})"  # noqa: S608


class Ledger(LedgerReads):
    """An open ledger file. Not thread-safe: one thread (the run's writer) appends."""

    def __init__(self, path: Path, connection: sqlite3.Connection, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._db = connection
        self._check: IntegrityCheck | None = None
        with self._reading():
            row = self._db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
            self._full = self._db.execute("PRAGMA synchronous").fetchone()[0] >= 2
            self._has_since = "since_run_id" in columns(self._db, "row_status")
            self._has_run_user = "user" in columns(self._db, "runs")  # read-only, a ledger from before it has none
        self._seq: int = row[0] if row else 0
        self._head: str = row[1] if row else GENESIS_HASH

    @classmethod
    def open(cls, path: Path | str, *, create: bool = True) -> Ledger:
        """Open for writing (and, unless create=False, create with mode 0600) the ledger at path.

        Refused in one line: a ledger others can read or this process may not write (with the chmod to
        run), and one that is not a ledger. SQLite's quick_check of the whole file (0.3 s of CPU warm, 2.3 s
        from a cold cache, for a ledger of 100,000 delivered rows) runs beside the caller's first reads
        (a run's earlier rows); the first write waits for its verdict, and a damaged file raises
        LedgerDamaged there, with nothing written.
        """
        path = Path(path)
        if not path.exists():
            if not create:
                raise UserInputError(f"{path}: no such ledger file")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except OSError as exc:
                raise UserInputError(f"{path}: cannot create the ledger ({exc.strerror})") from None
        check_private(path, writing=True)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise UserInputError(f"{path}: cannot open the ledger ({exc})") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: an entry saying a request is about to leave must survive power loss, not only a crash.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=10000")
            upgrade(db)
        except sqlite3.Error as exc:
            db.close()
            if not_a_ledger(exc):
                raise UserInputError(f"{path}: not a cws-pipeline ledger ({exc})") from None
            raise ledger_error(path, exc, "write") from None
        try:
            ledger = cls(path, db)
        except BaseException:
            db.close()
            raise
        ledger._check = IntegrityCheck(path)  # read beside the caller's first reads; the first write waits for it
        return ledger

    @classmethod
    def open_read_only(cls, path: Path | str, *, check: bool = True) -> Ledger:
        """Open the ledger for reading only (report, audit, status): works on a write-protected copy.

        check: SQLite's quick_check of the whole file, so that a damaged ledger is never reported on as if
        it were sound (0.3 s of CPU warm, 2.3 s from a cold cache, for a ledger of 100,000 delivered rows).
        It runs beside the caller's reading and its verdict is taken by `close()` (and the `with` block's
        end), which raises LedgerDamaged: use what was read only after that. `audit` runs the fuller
        integrity_check itself instead.
        """
        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"{path}: no such ledger file")
        check_private(path, writing=False)
        db = connect_read_only(path)
        try:
            found = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        except sqlite3.Error as exc:
            db.close()
            raise ledger_error(path, exc, "read") from None
        missing = [t for t in TABLES if t not in found]
        if missing:
            db.close()
            raise UserInputError(f"{path}: not a cws-pipeline ledger (no {missing[0]} table)")
        try:
            ledger = cls(path, db, read_only=True)
        except BaseException:
            db.close()
            raise
        if check:
            ledger._check = IntegrityCheck(path)
        return ledger

    def close(self) -> None:
        """Close the connection; raise LedgerDamaged if the check of the file failed (and nothing was written)."""
        with sqlite_errors(self.path, "write"):
            self._db.close()
        check, self._check = self._check, None
        if check is not None:
            check.wait()

    def _sound(self) -> None:
        """Wait for the check of the file begun at open (once): LedgerDamaged before anything is written to it."""
        check, self._check = self._check, None
        if check is not None:
            check.wait()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
            return
        with suppress(Exception):  # the error already on its way says more than the check's verdict
            self.close()

    def check_integrity(self) -> None:
        """SQLite's full integrity_check of the whole file (what `audit` runs): LedgerDamaged if it fails."""
        check_integrity(self._db, self.path, full=True)

    # -- writing -------------------------------------------------------------------------------

    def begin_run(self, info: RunInfo, pid: int) -> int:
        """Record a new run (and its run_started entry); return its run_id."""
        self._synchronous(True)
        started = now_iso()
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO runs (started_at, status, source, source_sha256, mapping, mapping_sha256, base_url,"
                " endpoint, access, algorithm, program_version, pid, user, host) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (started, "running", info.source, info.source_sha256, info.mapping, info.mapping_sha256,
                 info.base_url, info.endpoint, info.access, info.algorithm, info.program_version, pid,
                 info.user, info.host),
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

    def finish_run(
        self, run_id: int, counts: dict[str, int], status: RunStatus, exit_code: int | None,
        concurrency: int | None = None,
    ) -> None:  # fmt: skip
        """Record a run's end: counts per state, how it ended, its exit code, the concurrency it settled at."""
        self._synchronous(True)
        finished = now_iso()
        end: dict[str, object] = {"counts": counts, "status": status, "exit_code": exit_code}
        if concurrency is not None:
            end["concurrency"] = concurrency
        detail = json.dumps(end, separators=(",", ":"))
        with self._transaction():
            self._append_locked([Entry(run_id, "run_finished", at=finished, detail=detail)])
            self._db.execute(
                "UPDATE runs SET finished_at=?, status=?, counts=?, exit_code=?, concurrency=? WHERE run_id=?",
                (finished, status, json.dumps(counts, separators=(",", ":")), exit_code, concurrency, run_id),
            )

    def close_abandoned_runs(self) -> list[RunRecord]:
        """Record every run left 'running' as killed, and return their records (as found) for the run to report.

        Call it holding the RunLock, before begin_run: then no run is alive, so each one found died without
        recording its end (SIGKILL, power loss). Each gets a chained run_finished entry with status killed,
        no exit code (its process could not say) and the counts its state entries show; its finished_at is
        when it was found.
        """
        found = self.runs_left_running()
        for run in found:
            self.finish_run(run.run_id, self.state_counts(run.run_id), "killed", None)
        return found

    def prune_bodies(self, cutoff: str, *, dry_run: bool = False, vacuum: bool = False) -> tuple[int, int]:
        """Delete the bytes of bodies stored before `cutoff` (ISO) that no entry since names; return (bodies, bytes).

        Entries stay, so the chain verifies. Freed bytes are overwritten (secure_delete) and the WAL is
        truncated so that they do not linger; vacuum also gives the pages back to the file system.
        """
        named_later = {sha for _, rows in self.skipped_rows(since=cutoff) for r in rows
                       for sha in (r.request_sha256, r.cells_sha256)}  # fmt: skip
        self._sound()
        with sqlite_errors(self.path, "write"):
            return prune_bodies(self._db, cutoff, named_later, dry_run=dry_run, vacuum=vacuum)

    def _synchronous(self, full: bool) -> None:
        """FULL: a commit is on disk when COMMIT returns (WAL fsync'd); NORMAL: it is in the OS's hands."""
        if full != self._full:
            with sqlite_errors(self.path, "write"):
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
            _UPSERT_STATUS,
            ((u.key, u.external_id, u.state, u.body_sha256, u.body_sha256 if u.delivered else None, u.run_id,
              u.line, u.reason, u.cells_sha256, u.run_id, u.run_id if u.delivered else None,
              u.action if u.delivered else None, u.step, u.delivered) for u in updates),
        )  # fmt: skip

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    # -- reading -------------------------------------------------------------------------------

    def prior_rows(self) -> PriorRows:
        """Every row key earlier runs left a state for."""
        with self._reading(), cycle_collector_paused():  # 100,000s of tuples, no cycles
            cur = self._db.execute(
                "SELECT key, external_id, state, body_sha256, delivered_sha256, run_id, line, reason, cells_sha256,"
                " delivered_run_id, action, step FROM row_status"
            )
            rows = {r[0]: r for r in cur}
        return PriorRows(rows, self.reported_before())


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolling back (and rewinding the chain head) on error; SQLite's errors leave
    as LedgerError (a full disk, an I/O error: nothing of the transaction was committed)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __enter__(self) -> None:
        self._ledger._sound()  # never add to a damaged file
        self._seq, self._head = self._ledger._seq, self._ledger._head
        with sqlite_errors(self._ledger.path, "write"):
            self._ledger._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: BaseException | None, _: object) -> None:
        if exc_type is None:
            try:
                self._ledger._db.execute("COMMIT")
            except sqlite3.Error as failed:  # a full disk fails the COMMIT itself: nothing of it was committed
                self._undo()
                raise ledger_error(self._ledger.path, failed, "write") from None
            except BaseException:
                self._undo()
                raise
            return
        self._undo()
        if isinstance(exc, sqlite3.Error):
            raise ledger_error(self._ledger.path, exc, "write") from None

    def _undo(self) -> None:
        """Rewind the chain head to the last committed entry, then roll back unless SQLite already has."""
        self._ledger._seq, self._ledger._head = self._seq, self._head
        with suppress(sqlite3.Error):  # the error on its way says more; SQLite rolls back on close regardless
            if self._ledger._db.in_transaction:
                self._ledger._db.execute("ROLLBACK")
