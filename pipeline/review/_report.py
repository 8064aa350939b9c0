"""Reports from the ledger: runs and row records gathered into typed data (the renderers are beside this).

A report covers one run or several. Across several runs (`--all`, `--since`/`--until`) a booking counts
once (a key, whatever its number of lines; a line without a key by its cells): its latest state (of the
latest run that saw it: a line needing a person, if any, stands for it), the run since which it has been
in it (needing a person or not), and how many of the runs saw it. Rows are named by line and key; names
and birth dates appear only in the CSV's original cells, which are written only to a private (0600) file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from .._errors import UserInputError
from ..ledger import NOT_DELIVERED, ROW_STATES, Entry, Ledger, RunRecord, SkippedRow, booking_identity
from ._audit import AuditResult
from ._changes import FieldChange, held_changes
from ._times import ledger_time

__all__ = [
    "RECORD_FIELDS",
    "REPORT_FORMATS",
    "Report",
    "ReportFormat",
    "RowHistory",
    "RowRecord",
    "RunSummary",
    "gather_report",
    "select_runs",
]

ReportFormat = Literal["text", "json", "csv", "html"]
REPORT_FORMATS: tuple[ReportFormat, ...] = get_args(ReportFormat)

RECORD_FIELDS = (
    "run_id", "line", "key", "state", "http_status", "attempts", "request_sha256", "request_signature",
    "response_signature", "response_signer", "response_verified", "error", "at", "action",
)  # fmt: skip

_Skipped = list[tuple[Entry, list[SkippedRow]]]


@dataclass(frozen=True)
class RunSummary:
    """One run as a report shows it: the ledger's record of it, with its rows per state counted from its entries.

    The rows are counted from the state entries (and skipped-row lists), not read from the record: the
    entries are what the chain protects (an edited runs table does not change a report), and a run still
    running has recorded no counts.
    """

    record: RunRecord
    counts_from_entries: dict[str, int]  # rows per state as the run's entries record them
    responses_verified: int = 0
    responses_unverified: int = 0
    actions: dict[str, int] = field(default_factory=dict)  # delivered rows per action (created, booking added...)

    @property
    def rows(self) -> int:
        """How many rows the run gave a state."""
        return sum(self.counts_from_entries.values())

    @property
    def attention(self) -> int:
        """How many of its rows needed a person."""
        return sum(n for state, n in self.counts_from_entries.items() if state in NOT_DELIVERED)

    def as_json(self) -> dict[str, Any]:
        """The run as the JSON report shows it."""
        # The keys in the order docs/audit.md gives them (a public interface).
        run = self.record
        data: dict[str, Any] = {"run_id": run.run_id, "started_at": run.started_at, "finished_at": run.finished_at,
                                "status": run.status, "exit_code": run.exit_code}  # fmt: skip
        data |= {k: v for k, v in asdict(run.info).items() if k not in ("user", "host")}
        data["counts"] = dict(self.counts_from_entries)
        data["responses_verified"] = self.responses_verified
        data["responses_unverified"] = self.responses_unverified
        data["actions"] = dict(self.actions)
        data["user"], data["host"] = run.info.user, run.info.host
        return data


@dataclass(frozen=True, slots=True)
class RowRecord:
    """The one state a row got in one run, with the last exchange's signatures."""

    run_id: int
    line: int | None
    key: str | None
    state: str
    http_status: int | None
    attempts: int
    request_sha256: str | None
    request_signature: str | None
    response_signature: str | None
    response_signer: str | None
    response_verified: bool | None
    error: str | None
    at: str
    action: str | None = None  # how a delivered row got there: created, booking added, found, updated
    cells: dict[str, str] | None = None
    cells_sha256: str | None = None  # tells keyless rows apart across runs; not shown
    differs_from: str | None = None  # a held change: the delivered body's SHA-256
    changes: tuple[FieldChange, ...] = ()  # a held change: its fields (with values only where they may be shown)

    def as_json(self) -> dict[str, Any]:
        """The record as the JSON report shows it (never the original cells)."""
        return {name: getattr(self, name) for name in RECORD_FIELDS}

    @property
    def identity(self) -> str:
        """The booking this record is a line of, the same in every run: its key (whatever its number of lines),
        or for a line without one, its input cells."""
        if self.key or self.cells_sha256:
            return booking_identity(self.key, self.cells_sha256)
        return f"run {self.run_id} line {self.line}"


@dataclass(frozen=True)
class RowHistory:
    """One row across the runs a report covers: its latest record, since which run it has been on that side
    (needing a person, or not), the first and last run that saw it, and in how many runs it appeared."""

    latest: RowRecord
    since_run: int
    first_run: int
    runs: int

    @property
    def outstanding(self) -> bool:
        """True when its latest state needs a person."""
        return self.latest.state in NOT_DELIVERED

    def as_json(self) -> dict[str, Any]:
        """The row as the JSON report's "rows" list shows it."""
        r = self.latest
        return {"key": r.key, "line": r.line, "state": r.state, "since_run": self.since_run,
                "first_run": self.first_run, "last_run": r.run_id, "runs": self.runs, "http_status": r.http_status,
                "error": r.error}  # fmt: skip


@dataclass
class Report:
    """The runs a report covers and their row records, oldest run first, rows in file order.

    Across several runs, `rows` holds each distinct row once with its latest state (in `states` when given).
    values_shown: the held changes carry their values (for a private file, or when a person asked).
    """

    ledger: Path
    runs: list[RunSummary]
    records: list[RowRecord] = field(default_factory=list)
    states: tuple[str, ...] = ()
    rows: list[RowHistory] = field(default_factory=list)
    audit: AuditResult | None = None
    values_shown: bool = False
    needs_person: int = 0  # bookings needing a person as of the last run covered (the run summary's and status's)

    @property
    def across_runs(self) -> bool:
        """True when the report covers more than one run (rows are then counted once each)."""
        return len(self.runs) > 1

    @property
    def attention(self) -> list[RowRecord]:
        """Records needing a person: the chosen states, or every state but delivered and skipped."""
        if self.states:
            return self.records
        return [r for r in self.records if r.state in NOT_DELIVERED]

    @property
    def outstanding(self) -> list[RowHistory]:
        """Across runs: each row once whose latest state needs a person (or is in the chosen states)."""
        return self.rows if self.states else [r for r in self.rows if r.outstanding]

    def latest_counts(self) -> dict[str, int]:
        """Rows per latest state: across runs each row once, for one run its counts."""
        if not self.across_runs:
            return dict(self.runs[0].counts_from_entries) if self.runs else dict.fromkeys(ROW_STATES, 0)
        counts: dict[str, int] = dict.fromkeys(ROW_STATES, 0)
        for row in self.rows:
            counts[row.latest.state] = counts.get(row.latest.state, 0) + 1
        return counts


def select_runs(
    ledger: Ledger,
    run_id: int | None = None,
    all_runs: bool = False,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[int]:
    """The run ids a report covers: one run, every run, those started in [since, until), or (default) the latest."""
    ids = ledger.run_ids()
    if not ids:
        raise UserInputError(f"{ledger.path}: no runs recorded yet; deliver with `cws-pipeline run` first")
    if since is not None or until is not None:
        chosen = ledger.run_ids(since=None if since is None else ledger_time(since),
                                until=None if until is None else ledger_time(until))  # fmt: skip
        if not chosen:
            raise UserInputError(f"{ledger.path}: no run started in that period; runs there are {ids[0]} to {ids[-1]}")
        return chosen
    if all_runs:
        return ids
    if run_id is None:
        return [ids[-1]]
    if run_id not in ids:
        raise UserInputError(f"--run {run_id}: no such run in {ledger.path}; runs there are {ids[0]} to {ids[-1]}")
    return [run_id]


def gather_report(
    ledger: Ledger, run_ids: Sequence[int], states: Iterable[str] = (), *, with_cells: bool = False,
    with_values: bool = False,
) -> Report:  # fmt: skip
    """Read the chosen runs and their rows (only rows in `states` when given) from the ledger; each held change
    with the fields it changed (and their old and new values, with_values)."""
    chosen = tuple(states)
    unknown = [s for s in chosen if s not in ROW_STATES]
    if unknown:
        raise UserInputError(f"--state {unknown[0]}: not a row state; use one of {', '.join(ROW_STATES)}")
    with ledger.snapshot():  # one snapshot: counts and records agree even while a run is writing
        skipped = ledger.skipped_rows(run_ids=run_ids)  # read once: the lists are most of a re-run's ledger
        runs = _runs(ledger, run_ids, skipped)
        # Across runs a row's latest state needs all its records, whatever states are asked for.
        records = _records(ledger, run_ids, () if len(run_ids) > 1 else chosen, with_cells, skipped)
        changes = held_changes(ledger, records, values=with_values)
        # Up to the latest run: what needs a person now, counted as the run summary and `status` count it.
        needing = ledger.bookings_needing_a_person() if run_ids[-1] == ledger.latest_run_id() else None
    if changes:
        records = [replace(r, changes=changes[i]) if i in changes else r for i, r in enumerate(records)]
    report = Report(ledger.path.resolve(), runs, records, chosen, values_shown=with_values)
    if report.across_runs:
        histories = _histories(records)
        report.needs_person = len(needing) if needing is not None else _needing(histories, run_ids[-1])
        report.rows = [r for r in histories if not chosen or r.latest.state in chosen]
        if chosen:
            report.records = [r for r in records if r.state in chosen]
    else:  # an earlier run: the bookings it left needing a person
        report.needs_person = len(needing if needing is not None else {r.identity for r in report.attention})
    return report


def _needing(histories: list[RowHistory], last_run: int) -> int:
    """Bookings needing a person as of LAST_RUN (a report of runs before the latest): keys by their latest state,
    lines without a key only from it (a malformed line corrected is another line: the old one waits for no one)."""
    return sum(1 for h in histories if h.outstanding and (h.latest.key or h.latest.run_id == last_run))


def _runs(ledger: Ledger, run_ids: Sequence[int], skipped: _Skipped) -> list[RunSummary]:
    counts: dict[int, dict[str, int]] = {i: dict.fromkeys(ROW_STATES, 0) for i in run_ids}
    verified: dict[int, list[int]] = {i: [0, 0] for i in run_ids}
    for tally in ledger.state_tally(run_ids):
        counts[tally.run_id][tally.state] = counts[tally.run_id].get(tally.state, 0) + tally.rows
        if tally.verification is not None:
            verified[tally.run_id][0 if tally.verification == "ok" else 1] += tally.rows
    for entry, rows in skipped:
        counts[entry.run_id]["skipped"] += len(rows)
    actions: dict[int, dict[str, int]] = {i: {} for i in run_ids}
    for run_id, action, n in ledger.action_tally(run_ids):
        actions[run_id][action] = n
    return [_summary(run, counts[run.run_id], verified[run.run_id], actions[run.run_id])
            for run in ledger.runs(run_ids)]  # fmt: skip


def _summary(run: RunRecord, counts: dict[str, int], verified: list[int], actions: dict[str, int]) -> RunSummary:
    good, bad = verified
    return RunSummary(
        run, counts_from_entries=counts, responses_verified=good, responses_unverified=bad, actions=actions
    )


def _records(
    ledger: Ledger, run_ids: Sequence[int], chosen: tuple[str, ...], with_cells: bool, skipped: _Skipped
) -> list[RowRecord]:
    ordered: list[tuple[int, int, int, RowRecord]] = [
        (run_id, line if line is not None else -1, seq,
         RowRecord(run_id, line, key, state, status, attempts or 0, request_sha, req_auth, resp_auth, signer,
                   None if verification is None else verification == "ok", error, at, (d := _detail(detail))[0],
                   _cells(cells), cells_sha, d[1]))
        for (run_id, line, seq, key, state, status, attempts, request_sha, req_auth, resp_auth, signer, verification,
             error, at, cells_sha, cells, detail) in ledger.state_rows(run_ids, chosen, with_cells=with_cells)
    ]  # fmt: skip
    if not chosen or "skipped" in chosen:
        stored = ledger.bodies({r.cells_sha256 for _, rows in skipped for r in rows}) if with_cells else {}
        for entry, rows in skipped:
            ordered.extend(
                (entry.run_id, r.line if r.line is not None else -1, entry.seq,
                 RowRecord(entry.run_id, r.line, r.key, "skipped", None, 0, r.request_sha256, None, None, None, None,
                           None, entry.at, None, _cells(stored.get(r.cells_sha256)), r.cells_sha256))
                for r in rows
            )  # fmt: skip
    ordered.sort(key=lambda t: t[:3])
    return [t[3] for t in ordered]


def _histories(records: list[RowRecord]) -> list[RowHistory]:
    """Each booking once, from records in run order: in each run its first line needing a person stands for it
    (else its first line), and its latest run's stands for the booking."""
    found: dict[str, RowHistory] = {}
    earlier: dict[str, RowHistory | None] = {}  # each booking's history up to the run before its latest
    for record in records:
        booking = record.identity
        now = found.get(booking)
        if now is not None and now.latest.run_id == record.run_id:  # another line of it in the same run
            if now.outstanding or record.state not in NOT_DELIVERED:
                continue
            found[booking] = _extended(earlier[booking], record)
        else:
            earlier[booking] = now
            found[booking] = _extended(now, record)
    return sorted(
        found.values(), key=lambda h: (h.latest.line if h.latest.line is not None else -1, h.latest.key or "")
    )


def _extended(before: RowHistory | None, record: RowRecord) -> RowHistory:
    """A booking's history with the record of a later run."""
    if before is None:
        return RowHistory(record, record.run_id, record.run_id, 1)
    same_side = (record.state in NOT_DELIVERED) == before.outstanding
    return RowHistory(record, before.since_run if same_side else record.run_id, before.first_run, before.runs + 1)


def _detail(detail: str | None) -> tuple[str | None, str | None]:
    """What a state entry's detail names: the action (how a delivered row got there) and, for a held change,
    the delivered body it differs from (differs_from)."""
    if not detail:
        return None, None
    try:
        value = json.loads(detail)
    except ValueError:
        return None, None
    if not isinstance(value, dict):
        return None, None
    action, differs_from = value.get("action"), value.get("differs_from")
    return (action if isinstance(action, str) else None), (differs_from if isinstance(differs_from, str) else None)


def _cells(raw: bytes | None) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None
