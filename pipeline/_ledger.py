"""The audit ledger: one SQLite file holding runs, a hash-chained append-only entry log, and body bytes.

Tables:
    runs        one row per run: source, mapping, endpoint, access, algorithm, version, counts
    entries     append-only events (run_started, sending, attempt, lookup, state, skipped_rows, run_finished),
                each storing the hash of the previous entry and its own, so any edit, deletion, insertion or
                reordering is detectable later (`verify_chain`). A row's state in a run is one `state` entry,
                except rows skipped as already delivered: a re-run of a cumulative export skips nearly every
                row, so those are listed, one [line, key, external_id, request_sha256, cells_sha256] each, in
                the `detail` of a `skipped_rows` entry (up to SKIPPED_ROWS_PER_ENTRY rows), chained like any other
    bodies      request/response/cell bytes keyed by SHA-256, outside the chain so they can be pruned
    row_status  derived: the latest known state of each row key (with its body's and input cells' SHA-256),
                for deciding what a re-run sends

The file holds patient data: it is created mode 0600, and SQLite gives its -wal/-shm files the same mode.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ._errors import UserInputError
from ._gc import cycle_collector_paused

__all__ = [
    "GENESIS_HASH",
    "SKIPPED_ROWS_PER_ENTRY",
    "ChainBreak",
    "Entry",
    "EntryEvent",
    "Ledger",
    "PriorRow",
    "PriorRows",
    "RunInfo",
    "SkippedRow",
    "StatusUpdate",
    "entry_hash",
    "now_iso",
    "row_states",
    "sha256_hex",
    "skipped_rows",
    "skipped_rows_entries",
    "verify_chain",
]

EntryEvent = Literal["run_started", "run_finished", "sending", "attempt", "lookup", "state", "skipped_rows"]
GENESIS_HASH = "0" * 64
SCHEMA_VERSION = "1"
SKIPPED_ROWS_PER_ENTRY = 5000  # keeps one entry's detail under about a megabyte

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


def now_iso() -> str:
    """The current time as ISO 8601 with offset, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of bytes as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    """One event in the ledger's chain; `seq`, `prev_hash` and `hash` are filled in when appended."""

    run_id: int
    event: EntryEvent
    at: str = ""
    line: int | None = None
    key: str | None = None
    external_id: str | None = None
    state: str | None = None
    attempt: int | None = None
    method: str | None = None
    url: str | None = None
    http_status: int | None = None
    elapsed_ms: float | None = None
    request_sha256: str | None = None
    request_authorization: str | None = None
    response_sha256: str | None = None
    response_authorization: str | None = None
    response_signer: str | None = None
    verification: str | None = None
    cells_sha256: str | None = None
    error: str | None = None
    detail: str | None = None
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""


_HASHED_FIELDS = tuple(f.name for f in fields(Entry) if f.name != "hash")
_ALL_FIELDS = tuple(f.name for f in fields(Entry))
# Column names come from the Entry dataclass, never from input.
_INSERT_ENTRY = f"INSERT INTO entries ({','.join(_ALL_FIELDS)}) VALUES ({','.join('?' * len(_ALL_FIELDS))})"  # noqa: S608
_SELECT_ENTRIES = f"SELECT {','.join(_ALL_FIELDS)} FROM entries"  # noqa: S608


_hashed_values = operator.itemgetter(*_HASHED_FIELDS)
_all_values = operator.itemgetter(*_ALL_FIELDS)
# Byte for byte what json.dumps(list, ensure_ascii=False, separators=(",", ":")) writes, without a new
# encoder per call: the C encoder json.dumps itself builds for each call, built once (entries hold no cycles).
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode_basestring: Any = getattr(json.encoder, "c_encode_basestring", None)
_encode_canonical: Any = (
    _c_make_encoder(None, _CANONICAL.default, _c_encode_basestring, None, ":", ",", False, False, True)
    if _c_make_encoder is not None and _c_encode_basestring is not None
    else None
)


def entry_hash(values: dict[str, Any]) -> str:
    """The chain hash of an entry: SHA-256 of its fields (all but `hash`) as canonical JSON."""
    fields = _hashed_values(values)
    canonical = "".join(_encode_canonical(fields, 0)) if _encode_canonical else _CANONICAL.encode(fields)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class SkippedRow(NamedTuple):
    """One row a skipped_rows entry lists: not sent, because this body was delivered in an earlier run."""

    line: int | None
    key: str
    external_id: str | None
    request_sha256: str  # the body it would have sent, identical to the one delivered before
    cells_sha256: str  # its input cells (stored in bodies)


_SKIPPED_COLUMNS = list(SkippedRow._fields)


def skipped_rows_entries(run_id: int, rows: Sequence[SkippedRow]) -> list[Entry]:
    """The entries recording rows skipped as already delivered, up to SKIPPED_ROWS_PER_ENTRY rows in each."""
    return [
        Entry(run_id, "skipped_rows", state="skipped", line=part[0].line, attempt=0,
              detail=_CANONICAL.encode({"columns": _SKIPPED_COLUMNS, "rows": part}))
        for part in (rows[i : i + SKIPPED_ROWS_PER_ENTRY] for i in range(0, len(rows), SKIPPED_ROWS_PER_ENTRY))
    ]  # fmt: skip


def skipped_rows(entry: Entry) -> list[SkippedRow]:
    """The rows a skipped_rows entry lists; ValueError naming the entry when its detail is not that shape."""
    try:
        data = json.loads(entry.detail or "")
    except ValueError:
        data = None
    rows = data.get("rows") if isinstance(data, dict) and data.get("columns") == _SKIPPED_COLUMNS else None
    if isinstance(rows, list) and all(map(_is_skipped_row, rows)):
        return [SkippedRow._make(r) for r in rows]
    raise ValueError(f"entry {entry.seq}: its detail is not a list of skipped rows")


def _is_skipped_row(r: object) -> bool:
    return (
        isinstance(r, list) and len(r) == 5 and isinstance(r[0], int | None) and isinstance(r[1], str)
        and isinstance(r[2], str | None) and isinstance(r[3], str) and isinstance(r[4], str)
    )  # fmt: skip


def row_states(entries: Iterable[Entry]) -> Iterator[Entry]:
    """Each row's state entry, in chain order, with every skipped_rows entry expanded into one per row.

    An expanded entry is a view: it carries the skipped_rows entry's seq, run and time but no hash of its own.
    """
    for entry in entries:
        if entry.event == "state":
            yield entry
        elif entry.event == "skipped_rows":
            for row in skipped_rows(entry):
                yield Entry(
                    entry.run_id,
                    "state",
                    at=entry.at,
                    line=row.line,
                    key=row.key,
                    external_id=row.external_id,
                    state="skipped",
                    attempt=0,
                    request_sha256=row.request_sha256,
                    cells_sha256=row.cells_sha256,
                    seq=entry.seq,
                )


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


class PriorRow(NamedTuple):
    """What earlier runs left for one row key (row_status)."""

    key: str
    external_id: str | None
    state: str  # a RowState, or "sending" when a request was recorded as leaving but no outcome followed
    body_sha256: str | None
    delivered_sha256: str | None
    run_id: int
    line: int | None
    reason: str | None
    cells_sha256: str | None = None  # the input cells of the row's last state entry


# PriorRow's fields as a plain tuple: key, external_id, state, body_sha256, delivered_sha256, run_id, line,
# reason, cells_sha256.
_PriorTuple = tuple[str, str | None, str, str | None, str | None, int, int | None, str | None, str | None]


class PriorRows:
    """Every row key earlier runs left a state for (row_status), read once when a run starts.

    Held as plain tuples and made into PriorRows only when asked: a re-run reads 100,000s of them, and
    plain tuples of strings are left alone by the cycle collector, which namedtuples are not.
    """

    __slots__ = ("_rows",)

    def __init__(self, rows: dict[str, _PriorTuple]) -> None:
        self._rows = rows

    def get(self, key: str) -> PriorRow | None:
        """What earlier runs left for this key, or None."""
        found = self._rows.get(key)
        return None if found is None else PriorRow._make(found)

    def delivered_sha256(self, key: str) -> str | None:
        """The SHA-256 of the body delivered for this key in an earlier run, if one was."""
        found = self._rows.get(key)
        return None if found is None else found[4]

    def holds(self, key: str, body_sha256: str, cells_sha256: str) -> bool:
        """True when this key is recorded as delivered or skipped with exactly this body and these input cells."""
        found = self._rows.get(key)
        return (
            found is not None
            and found[2] in ("delivered", "skipped")
            and found[3] == body_sha256
            and (found[8] == cells_sha256)
        )

    def values(self) -> Iterator[PriorRow]:
        """Every key's prior row."""
        return map(PriorRow._make, self._rows.values())

    def __len__(self) -> int:
        return len(self._rows)


@dataclass(frozen=True)
class StatusUpdate:
    """A change to row_status written in the same transaction as the entry that causes it."""

    key: str
    external_id: str | None
    state: str
    body_sha256: str | None
    run_id: int
    line: int | None
    reason: str | None = None
    delivered: bool = False  # sets delivered_sha256 = body_sha256
    cells_sha256: str | None = None  # None keeps the one recorded before


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

    def append(
        self,
        entries: Sequence[Entry],
        bodies: Iterable[tuple[str, bytes]] = (),
        updates: Iterable[StatusUpdate] = (),
        *,
        durable: bool = True,
    ) -> None:
        """Append entries, store bodies and update row_status in one transaction (durable: fsync'd at commit).

        durable=False commits without waiting for the disk: the entries survive a crash of this process
        but not a power loss, until the next durable commit, which makes everything before it durable too.
        """
        self._synchronous(durable)
        with self._transaction():
            self._store_bodies(bodies)
            self._append_locked(entries)
            self._update_status(updates)

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
            rows.append(_all_values(values))
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
            yield Entry(**dict(zip(_ALL_FIELDS, row, strict=True)))

    def row_states(self, run_id: int | None = None) -> Iterator[Entry]:
        """Each row's state entry in chain order, optionally of one run, skipped_rows entries expanded per row."""
        sql = _SELECT_ENTRIES + " WHERE event IN ('state', 'skipped_rows')"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " AND run_id=?"
            args = (run_id,)
        rows = self._db.execute(sql + " ORDER BY seq", args)
        return row_states(Entry(**dict(zip(_ALL_FIELDS, row, strict=True))) for row in rows)

    def body(self, sha256: str | None) -> bytes | None:
        """Stored bytes for a SHA-256, or None when never stored or pruned."""
        if sha256 is None:
            return None
        row = self._db.execute("SELECT body FROM bodies WHERE sha256=?", (sha256,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def latest_run_id(self) -> int | None:
        """The most recent run's id, or None for an empty ledger."""
        row = self._db.execute("SELECT MAX(run_id) FROM runs").fetchone()
        return None if row is None or row[0] is None else int(row[0])


@dataclass(frozen=True)
class ChainBreak:
    """Where the hash chain first fails to hold, and how."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.problem}"


def verify_chain(entries: Iterable[Entry]) -> ChainBreak | None:
    """Walk entries in order; return the first edited, deleted, inserted or reordered one (None if intact)."""
    prev, expected = GENESIS_HASH, 1
    for entry in entries:
        if entry.seq != expected:
            what = "missing" if entry.seq > expected else "out of order"
            return ChainBreak(entry.seq, f"entry {expected} is {what} before it (deleted or reordered entries)")
        if entry.prev_hash != prev:
            return ChainBreak(entry.seq, "does not follow the entry before it (deleted, inserted or swapped entries)")
        if entry_hash(entry.__dict__) != entry.hash:
            return ChainBreak(entry.seq, "its contents do not match its hash (the entry was edited)")
        prev, expected = entry.hash, expected + 1
    return None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolling back (and rewinding the chain head) on error."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __enter__(self) -> None:
        self._seq, self._head = self._ledger._seq, self._ledger._head
        self._ledger._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self._ledger._db.execute("COMMIT")
        else:
            self._ledger._db.execute("ROLLBACK")
            self._ledger._seq, self._ledger._head = self._seq, self._head
