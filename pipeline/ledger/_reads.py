"""Reading the ledger: runs, row states, entries, bodies, outstanding rows and sizes, for runs, reports and audits.

Every query is here, so that report, audit, retention and status never write SQL against the schema.
A read that meets a damaged page is one LedgerDamaged line, any other SQLite failure one LedgerError line,
never an SQLite traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple

from .._errors import LedgerDamaged, UserInputError
from ._entries import ENTRY_FIELDS, Entry, SkippedRow, row_states, skipped_rows
from ._file import sqlite_errors
from ._row_states import NOT_DELIVERED, ROW_STATES, PriorRow
from ._runs import RUN_COLUMNS, RunRecord

__all__ = [
    "SETTLED_SQL",
    "SETTLED_STATES",
    "STATE_ROW_FIELDS",
    "ChainHead",
    "LedgerReads",
    "LedgerSize",
    "OutstandingRow",
    "StateRow",
    "StateTally",
    "StoredBody",
    "booking_identity",
]

# Row states that need no person; every other state (and "sending") is outstanding until one of these follows.
SETTLED_STATES = tuple(s for s in ROW_STATES if s not in NOT_DELIVERED)
SETTLED_SQL = ",".join(f"'{s}'" for s in SETTLED_STATES)  # our own constants, never input
NOT_DELIVERED_SQL = ",".join(f"'{s}'" for s in sorted(NOT_DELIVERED))  # our own constants, never input

# Column names come from the Entry dataclass, never from input.
SELECT_ENTRIES = f"SELECT {','.join(ENTRY_FIELDS)} FROM entries"  # noqa: S608
_SELECT_RUNS = f"SELECT {','.join(RUN_COLUMNS)} FROM runs"  # noqa: S608
# A ledger from before runs kept the user and host (opened read-only, so not upgraded): NULL for both.
_SELECT_OLD_RUNS = f"SELECT {','.join('NULL' if c in ('user', 'host') else c for c in RUN_COLUMNS)} FROM runs"  # noqa: S608


def booking_identity(key: str | None, cells_sha256: str | None) -> str:
    """One booking across its lines and runs: its key, or for a line that has none (a malformed line), the
    SHA-256 of its input cells, so that the same line is the same booking every night."""
    return key if key else f"cells:{cells_sha256}"


class StateTally(NamedTuple):
    """How many state entries a run has in one state with one answer verification (None: no answer)."""

    run_id: int
    state: str
    verification: str | None
    rows: int


# A row's state entry as reports show it, as a plain tuple in STATE_ROW_FIELDS order (100,000s of them per
# report: a tuple straight from SQLite costs a third of what a NamedTuple made from it does).
StateRow = tuple[
    int, int | None, int, str | None, str, int | None, int | None, str | None, str | None, str | None, str | None,
    str | None, str | None, str, str | None, bytes | None, str | None,
]  # fmt: skip
STATE_ROW_FIELDS = (
    "run_id", "line", "seq", "key", "state", "http_status", "attempts", "request_sha256", "request_authorization",
    "response_authorization", "response_signer", "verification", "error", "at", "cells_sha256", "cells", "detail",
)  # fmt: skip


class StoredBody(NamedTuple):
    """A bodies row: its bytes (None once pruned) and when it was pruned."""

    body: bytes | None
    pruned_at: str | None


class OutstandingRow(NamedTuple):
    """A row whose latest state needs a person, with the run since which it has, and its latest run.

    Rows are tracked by key; a row without one (its key columns blank) is only known in the run it was in.
    """

    key: str | None
    line: int | None
    external_id: str | None
    state: str
    reason: str | None
    since_run_id: int
    run_id: int


class ChainHead(NamedTuple):
    """The last entry of the chain: its seq and hash, the run it belongs to and when it was written."""

    seq: int
    hash: str
    run_id: int
    at: str


class LedgerSize(NamedTuple):
    """How big the ledger is: its files' bytes, entries, and bodies still stored or pruned."""

    file_bytes: int
    entries: int
    bodies_stored: int
    bodies_pruned: int


class LedgerReads:
    """The ledger's read methods (mixed into Ledger, which holds the connection)."""

    path: Path
    _db: sqlite3.Connection
    _has_since: bool
    _has_run_user: bool

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with sqlite_errors(self.path, "read"):
            yield

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every read inside sees the same ledger, even while a run is writing."""
        with self._reading():
            self._db.execute("BEGIN")
        try:
            yield
        finally:
            with self._reading():
                self._db.execute("ROLLBACK")

    # -- runs ----------------------------------------------------------------------------------

    def run_ids(self, *, since: str | None = None, until: str | None = None) -> list[int]:
        """Every run's id in order, or those started at or after `since` and before `until` (ISO times)."""
        sql, args = "SELECT run_id FROM runs WHERE 1", list[str]()
        if since is not None:
            sql, args = sql + " AND started_at >= ?", [*args, since]
        if until is not None:
            sql, args = sql + " AND started_at < ?", [*args, until]
        with self._reading():
            return [int(r[0]) for r in self._db.execute(sql + " ORDER BY run_id", args)]

    def runs(self, run_ids: Sequence[int] | None = None, *, running: bool = False) -> list[RunRecord]:
        """The runs table's rows (of these runs; only those still 'running' if RUNNING), oldest first."""
        sql = _SELECT_RUNS if self._has_run_user else _SELECT_OLD_RUNS
        where = [] if run_ids is None else [f"run_id IN ({','.join(str(int(i)) for i in run_ids)})"]  # integers only
        where += ["status='running'"] if running else []
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._reading():
            return [RunRecord.from_row(row) for row in self._db.execute(sql + " ORDER BY run_id")]

    def latest_run_id(self) -> int | None:
        """The most recent run's id, or None for an empty ledger."""
        with self._reading():
            row = self._db.execute("SELECT MAX(run_id) FROM runs").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def runs_left_running(self) -> list[RunRecord]:
        """Runs the table still calls 'running'. While holding the RunLock, each is a run whose process died."""
        runs = self.runs(running=True)
        for run in runs:
            if not isinstance(run.run_id, int) or not isinstance(run.pid, int):  # an edited row: no run wrote it
                raise LedgerDamaged(
                    f"{self.path}: the runs table is damaged: a running run's pid is {run.pid!r}, not a number;"
                    " nothing was sent: run `cws-pipeline audit` on this ledger, and restore it from a backup"
                )
        return runs

    # -- row states ----------------------------------------------------------------------------

    def state_tally(self, run_ids: Sequence[int]) -> list[StateTally]:
        """State entries counted per run, state and answer verification (skipped_rows lists not included)."""
        ids = ",".join(str(int(i)) for i in run_ids)  # integers only: safe to inline
        sql = (
            "SELECT run_id, state, verification, COUNT(*) FROM entries"  # noqa: S608
            f" WHERE event='state' AND run_id IN ({ids}) GROUP BY run_id, state, verification"
        )
        with self._reading():
            return [StateTally(*row) for row in self._db.execute(sql)]

    def action_tally(self, run_ids: Sequence[int]) -> list[tuple[int, str, int]]:
        """(run_id, action, rows) for the delivered rows of these runs whose state entry names its action."""
        ids = ",".join(str(int(i)) for i in run_ids)  # integers only: safe to inline
        action = "CASE WHEN json_valid(detail) THEN json_extract(detail, '$.action') END"
        sql = (
            f"SELECT run_id, {action} AS action, COUNT(*) FROM entries"  # noqa: S608
            f" WHERE event='state' AND state='delivered' AND run_id IN ({ids}) AND detail IS NOT NULL"
            " GROUP BY run_id, action HAVING action IS NOT NULL"
        )
        with self._reading():
            return [(int(r[0]), str(r[1]), int(r[2])) for r in self._db.execute(sql)]

    def row_status(self, key: str) -> PriorRow | None:
        """What the ledger holds for one row key now (its row_status), or None."""
        with self._reading():
            found = self._db.execute(
                "SELECT key, external_id, state, body_sha256, delivered_sha256, run_id, line, reason, cells_sha256,"
                " delivered_run_id, action, step FROM row_status WHERE key=?",
                (key,),
            ).fetchone()
        return None if found is None else PriorRow(*found)

    def rows_in_state(self, state: str) -> list[PriorRow]:
        """Every row key whose latest state (row_status) is STATE, in line order."""
        with self._reading():
            found = self._db.execute(
                "SELECT key, external_id, state, body_sha256, delivered_sha256, run_id, line, reason, cells_sha256,"
                " delivered_run_id, action, step FROM row_status WHERE state=? ORDER BY line, key",
                (state,),
            ).fetchall()
        return [PriorRow(*row) for row in found]

    def state_counts(self, run_id: int) -> dict[str, int]:
        """Rows per state as one run's entries record them (state entries and skipped_rows lists)."""
        counts: dict[str, int] = dict.fromkeys(ROW_STATES, 0)
        for tally in self.state_tally([run_id]):
            counts[tally.state] = counts.get(tally.state, 0) + tally.rows
        for _, rows in self.skipped_rows(run_ids=[run_id]):
            counts["skipped"] += len(rows)
        return counts

    def state_rows(
        self, run_ids: Sequence[int], states: Sequence[str] = (), *, with_cells: bool = False
    ) -> list[StateRow]:
        """The state entries of these runs (only those in `states` when given), with the cells' bytes if asked
        (as tuples of STATE_ROW_FIELDS: run_id, line, seq, key, state, ... cells_sha256, cells)."""
        ids = ",".join(str(int(i)) for i in run_ids)  # integers only; states are bound parameters
        cells = (
            "b.body, e.detail FROM entries e LEFT JOIN bodies b ON b.sha256 = e.cells_sha256"
            if with_cells
            else "NULL, e.detail FROM entries e"
        )
        sql = (
            "SELECT e.run_id, e.line, e.seq, e.key, e.state, e.http_status, e.attempt, e.request_sha256,"
            " e.request_authorization, e.response_authorization, e.response_signer, e.verification, e.error, e.at,"
            f" e.cells_sha256, {cells} WHERE e.event='state' AND e.run_id IN ({ids})"
        )
        if states:
            sql += f" AND e.state IN ({','.join('?' * len(states))})"
        with self._reading():
            rows: list[StateRow] = self._db.execute(sql, tuple(states)).fetchall()
        return rows

    def row_states(self, run_id: int | None = None) -> Iterator[Entry]:
        """Each row's state entry in chain order, optionally of one run, skipped_rows entries expanded per row."""
        where, args = "event IN ('state', 'skipped_rows')", tuple[int, ...]()
        if run_id is not None:
            where, args = where + " AND run_id=?", (run_id,)
        return row_states(self._entries_where(where, args))

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
        with self._reading():
            listed = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        for run_id, seq, at, detail in listed:
            entry = Entry(run_id, "skipped_rows", at=at, detail=detail, seq=seq)
            try:
                found.append((entry, skipped_rows(entry)))
            except ValueError as exc:
                raise UserInputError(
                    f"{self.path}: {exc}; nothing was changed: run `cws-pipeline audit` on this ledger"
                ) from None
        return found

    def outstanding_rows(self) -> list[OutstandingRow]:
        """Every row key whose latest state needs a person, once each, longest outstanding first."""
        since = "COALESCE(since_run_id, run_id)" if self._has_since else "run_id"
        sql = (
            f"SELECT key, line, external_id, state, reason, {since}, run_id FROM row_status"  # noqa: S608
            f" WHERE state NOT IN ({SETTLED_SQL}) ORDER BY {since}, line, key"
        )
        with self._reading():
            return [OutstandingRow(*row) for row in self._db.execute(sql)]

    def bookings_needing_a_person(self) -> set[str]:
        """The bookings (booking_identity) that need a person now: each key whose latest state needs one, and
        each booking the latest run left needing one on any of its lines (a key's line whose sibling line
        was written after it, and the lines without a key, which only the latest run can speak for)."""
        outstanding = f"SELECT key FROM row_status WHERE state NOT IN ({SETTLED_SQL})"  # noqa: S608
        with self._reading():
            found = {str(r[0]) for r in self._db.execute(outstanding)}
            latest = self._db.execute("SELECT MAX(run_id) FROM runs").fetchone()[0]
            if latest is not None:
                found.update(booking_identity(key, cells) for key, _, cells in self._needing_rows(latest))
        return found

    def reported_before(self) -> frozenset[tuple[str, str, str | None]]:
        """(booking_identity, state, cells_sha256) of every line the latest finished (or stopped) run left needing
        a person: a line found again in the same state with the same cells was reported then."""
        last_sql = "SELECT MAX(run_id) FROM runs WHERE status IN ('finished', 'stopped')"
        with self._reading():
            last = self._db.execute(last_sql).fetchone()[0]
            rows = [] if last is None else self._needing_rows(last)
        return frozenset((booking_identity(key, cells), state, cells) for key, state, cells in rows)

    def _needing_rows(self, run_id: int) -> list[tuple[str | None, str, str | None]]:
        """(key, state, cells_sha256) of each line a run left needing a person."""
        sql = (
            "SELECT key, state, cells_sha256 FROM entries"  # noqa: S608
            f" WHERE event='state' AND run_id=? AND state IN ({NOT_DELIVERED_SQL})"
        )
        return [(key, str(state), cells) for key, state, cells in self._db.execute(sql, (run_id,))]

    # -- entries and bodies --------------------------------------------------------------------

    def entries(self, run_id: int | None = None) -> Iterator[Entry]:
        """Entries in chain order, optionally of one run."""
        return self._entries_where("1", ()) if run_id is None else self._entries_where("run_id=?", (run_id,))

    def _entries_where(self, where: str, args: tuple[Any, ...]) -> Iterator[Entry]:
        with self._reading():
            for row in self._db.execute(f"{SELECT_ENTRIES} WHERE {where} ORDER BY seq", args):  # our own clauses
                yield Entry(**dict(zip(ENTRY_FIELDS, row, strict=True)))

    def entry_at(self, seq: int) -> Entry | None:
        """The entry at this place in the chain, or None when the chain has none there."""
        with self._reading():
            row = self._db.execute(SELECT_ENTRIES + " WHERE seq=?", (seq,)).fetchone()
        return None if row is None else Entry(**dict(zip(ENTRY_FIELDS, row, strict=True)))

    def head(self) -> ChainHead | None:
        """The chain's last entry as it is in the file now, or None for an empty ledger."""
        with self._reading():
            row = self._db.execute("SELECT seq, hash, run_id, at FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else ChainHead(*row)

    def body(self, sha256: str | None) -> bytes | None:
        """Stored bytes for a SHA-256, or None when never stored or pruned."""
        found = self.stored_body(sha256) if sha256 is not None else None
        return None if found is None else found.body

    def stored_body(self, sha256: str) -> StoredBody | None:
        """The bodies row for a SHA-256 (bytes None once pruned), or None when there is none."""
        with self._reading():
            row = self._db.execute("SELECT body, pruned_at FROM bodies WHERE sha256=?", (sha256,)).fetchone()
        return None if row is None else StoredBody(None if row[0] is None else bytes(row[0]), row[1])

    def bodies(self, shas: set[str]) -> dict[str, bytes]:
        """The stored bytes of these bodies (those not pruned), fetched a few hundred at a time."""
        wanted = sorted(shas)
        stored: dict[str, bytes] = {}
        with self._reading():
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ",".join("?" * len(part))  # placeholders only: the hashes are bound parameters
                sql = f"SELECT sha256, body FROM bodies WHERE body IS NOT NULL AND sha256 IN ({marks})"  # noqa: S608
                stored.update(self._db.execute(sql, part))
        return stored

    def stored_bodies(self) -> Iterator[tuple[str, bytes]]:
        """Every body still stored, with its SHA-256 as recorded."""
        with self._reading():
            for sha, body in self._db.execute("SELECT sha256, body FROM bodies WHERE body IS NOT NULL"):
                yield str(sha), bytes(body)

    def size(self) -> LedgerSize:
        """The ledger's bytes on disk (with its -wal), entries, and bodies stored and pruned."""
        on_disk = 0
        for suffix in ("", "-wal"):
            with suppress(OSError):  # no -wal: nothing written since the last checkpoint
                on_disk += self.path.with_name(self.path.name + suffix).stat().st_size
        with self._reading():
            entries = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            stored, pruned = self._db.execute(
                "SELECT COUNT(*) - COUNT(pruned_at), COUNT(pruned_at) FROM bodies"
            ).fetchone()
        return LedgerSize(on_disk, int(entries), int(stored or 0), int(pruned or 0))
