"""Reports from the ledger: runs and row records gathered into typed data, rendered as text, JSON or CSV.

Rows are named by line and key; names and birth dates appear only in the CSV's original cells, which
are written only to a private (0600) file. The JSON shape is a public interface (see the README).
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

from .._errors import UserInputError
from .._private_files import neutralise_cell, open_private
from ..ledger import NOT_DELIVERED, ROW_STATES, STATE_ADVICE, Ledger

__all__ = [
    "RECORD_FIELDS",
    "REPORT_FORMATS",
    "Report",
    "ReportFormat",
    "RowRecord",
    "RunSummary",
    "gather_report",
    "open_private_text",
    "select_runs",
    "write_csv",
    "write_json",
    "write_text",
]

ReportFormat = Literal["text", "json", "csv", "html"]
REPORT_FORMATS: tuple[ReportFormat, ...] = get_args(ReportFormat)

RECORD_FIELDS = (
    "run_id", "line", "key", "state", "http_status", "attempts", "request_sha256", "request_signature",
    "response_signature", "response_signer", "response_verified", "error", "at",
)  # fmt: skip

_RUN_COLUMNS = (
    "run_id", "started_at", "finished_at", "status", "source", "source_sha256", "mapping", "mapping_sha256",
    "base_url", "endpoint", "access", "algorithm", "program_version",
)  # fmt: skip

# Spreadsheet programs run a cell starting with one of these as a formula (CSV injection).


@dataclass(frozen=True)
class RunSummary:
    """One run as the ledger recorded it, with counts per state computed from its state entries."""

    run_id: int
    started_at: str
    finished_at: str | None
    status: str
    source: str
    source_sha256: str
    mapping: str
    mapping_sha256: str
    base_url: str
    endpoint: str
    access: str
    algorithm: str
    program_version: str
    counts: dict[str, int]
    responses_verified: int = 0
    responses_unverified: int = 0

    @property
    def rows(self) -> int:
        """How many rows the run gave a state."""
        return sum(self.counts.values())

    def as_json(self) -> dict[str, Any]:
        """The run as the JSON report shows it."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _RUN_COLUMNS}
        data["counts"] = dict(self.counts)
        data["responses_verified"] = self.responses_verified
        data["responses_unverified"] = self.responses_unverified
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
    cells: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        """The record as the JSON report shows it (never the original cells)."""
        return {name: getattr(self, name) for name in RECORD_FIELDS}


@dataclass
class Report:
    """The runs a report covers and their row records, oldest run first, rows in file order."""

    ledger: Path
    runs: list[RunSummary]
    records: list[RowRecord] = field(default_factory=list)
    states: tuple[str, ...] = ()

    @property
    def attention(self) -> list[RowRecord]:
        """Records needing a person: the chosen states, or every state but delivered and skipped."""
        if self.states:
            return self.records
        return [r for r in self.records if r.state in NOT_DELIVERED]


def select_runs(ledger: Ledger, run_id: int | None = None, all_runs: bool = False) -> list[int]:
    """The run ids a report covers: one run, every run, or (by default) the latest."""
    ids = [int(r[0]) for r in ledger.connection.execute("SELECT run_id FROM runs ORDER BY run_id")]
    if not ids:
        raise UserInputError(f"{ledger.path}: no runs recorded yet; deliver with `cws-pipeline run` first")
    if all_runs:
        return ids
    if run_id is None:
        return [ids[-1]]
    if run_id not in ids:
        raise UserInputError(f"--run {run_id}: no such run in {ledger.path}; runs there are {ids[0]} to {ids[-1]}")
    return [run_id]


def gather_report(
    ledger: Ledger, run_ids: Sequence[int], states: Iterable[str] = (), *, with_cells: bool = False
) -> Report:
    """Read the chosen runs and their rows (only rows in `states` when given) from the ledger."""
    chosen = tuple(states)
    unknown = [s for s in chosen if s not in ROW_STATES]
    if unknown:
        raise UserInputError(f"--state {unknown[0]}: not a row state; use one of {', '.join(ROW_STATES)}")
    db = ledger.connection
    db.execute("BEGIN")  # one snapshot: counts and records agree even while a run is writing
    try:
        return _gather(ledger, run_ids, chosen, with_cells)
    finally:
        db.execute("ROLLBACK")


def _gather(ledger: Ledger, run_ids: Sequence[int], chosen: tuple[str, ...], with_cells: bool) -> Report:
    db = ledger.connection
    ids = ",".join(str(int(i)) for i in run_ids)  # integers only: safe to inline
    counts: dict[int, dict[str, int]] = {i: dict.fromkeys(ROW_STATES, 0) for i in run_ids}
    verified: dict[int, list[int]] = {i: [0, 0] for i in run_ids}
    for run_id, state, verification, n in db.execute(
        f"SELECT run_id, state, verification, COUNT(*) FROM entries WHERE event='state' AND run_id IN ({ids})"  # noqa: S608
        " GROUP BY run_id, state, verification"
    ):
        counts[run_id][state] = counts[run_id].get(state, 0) + n
        if verification is not None:
            verified[run_id][0 if verification == "ok" else 1] += n
    skipped = ledger.skipped_rows(run_ids=run_ids)
    for entry, rows in skipped:
        counts[entry.run_id]["skipped"] += len(rows)
    runs = []
    for row in db.execute(f"SELECT {','.join(_RUN_COLUMNS)} FROM runs WHERE run_id IN ({ids}) ORDER BY run_id"):  # noqa: S608
        values = dict(zip(_RUN_COLUMNS, row, strict=True))
        run_id = int(values["run_id"])
        good, bad = verified[run_id]
        runs.append(RunSummary(**values, counts=counts[run_id], responses_verified=good, responses_unverified=bad))
    cells_join = "b.body FROM entries e LEFT JOIN bodies b ON b.sha256 = e.cells_sha256"
    # Run ids are integers and states are bound parameters: nothing from input reaches the SQL text.
    sql = (
        "SELECT e.run_id, e.line, e.seq, e.key, e.state, e.http_status, e.attempt, e.request_sha256,"  # noqa: S608
        " e.request_authorization, e.response_authorization, e.response_signer, e.verification, e.error, e.at,"
        f" {cells_join if with_cells else 'NULL FROM entries e'} WHERE e.event='state' AND e.run_id IN ({ids})"
    )
    args: tuple[str, ...] = ()
    if chosen:
        sql += f" AND e.state IN ({','.join('?' * len(chosen))})"
        args = chosen
    ordered: list[tuple[int, int, int, RowRecord]] = [
        (run_id, line if line is not None else -1, seq,
         RowRecord(run_id, line, key, state, status, attempts or 0, request_sha, req_auth, resp_auth, signer,
                   None if verification is None else verification == "ok", error, at, _cells(cells)))
        for (run_id, line, seq, key, state, status, attempts, request_sha, req_auth, resp_auth, signer, verification,
             error, at, cells) in db.execute(sql, args)
    ]  # fmt: skip
    if not chosen or "skipped" in chosen:
        stored = _stored_cells(db, {r.cells_sha256 for _, rows in skipped for r in rows}) if with_cells else {}
        for entry, rows in skipped:
            ordered.extend(
                (entry.run_id, r.line if r.line is not None else -1, entry.seq,
                 RowRecord(entry.run_id, r.line, r.key, "skipped", None, 0, r.request_sha256, None, None, None, None,
                           None, entry.at, _cells(stored.get(r.cells_sha256))))
                for r in rows
            )  # fmt: skip
    ordered.sort(key=lambda t: t[:3])
    return Report(ledger.path, runs, [t[3] for t in ordered], chosen)


def _stored_cells(db: sqlite3.Connection, shas: set[str]) -> dict[str, bytes]:
    """The stored bytes of these bodies (those not pruned), fetched a few hundred at a time."""
    wanted = sorted(shas)
    stored: dict[str, bytes] = {}
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        marks = ",".join("?" * len(part))  # placeholders only: the hashes are bound parameters
        sql = f"SELECT sha256, body FROM bodies WHERE body IS NOT NULL AND sha256 IN ({marks})"  # noqa: S608
        stored.update(db.execute(sql, part))
    return stored


def _cells(raw: bytes | None) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None


# -- renderers ------------------------------------------------------------------------------------


def write_text(report: Report, out: TextIO) -> None:
    """A plain-text report for a terminal or a cron mail: run header, counts, rows needing attention."""
    by_run: dict[int, list[RowRecord]] = {}
    for record in report.attention:
        by_run.setdefault(record.run_id, []).append(record)
    for i, run in enumerate(report.runs):
        if i:
            out.write("\n")
        for line in _run_header(run):
            out.write(line + "\n")
        rows = by_run.get(run.run_id, [])
        what = f"Rows in state {', '.join(report.states)}" if report.states else "Rows needing attention"
        out.write(f"{what}: {len(rows)}\n")
        if rows:
            key_width = min(max(len(r.key or "(no key)") for r in rows), 40)
            state_width = max(len(r.state) for r in rows)
            for r in rows:
                line = f"  line {r.line if r.line is not None else '?':>6}  {r.key or '(no key)':<{key_width}}"
                out.write(f"{line}  {r.state:<{state_width}}  {_one_line(r.error)}".rstrip() + "\n")
        shown = {r.state for r in rows}
        for state in ROW_STATES:
            if state in shown and state in NOT_DELIVERED:
                out.write(f"  {state}: {STATE_ADVICE[state]}\n")


def _run_header(run: RunSummary) -> list[str]:
    finished = run.finished_at or "(not finished)"
    lines = [
        f"Run {run.run_id} ({run.status}): {run.started_at} to {finished}",
        f"  source    {run.source}",
        f"            sha256 {run.source_sha256}",
        f"  mapping   {run.mapping}",
        f"            sha256 {run.mapping_sha256}",
        f"  endpoint  {run.base_url}{run.endpoint}",
        f"  access    {run.access} ({run.algorithm}), cws-pipeline {run.program_version}",
        f"  rows      {run.rows}: " + ", ".join(f"{state} {run.counts.get(state, 0)}" for state in ROW_STATES),
        f"  answers   {run.responses_verified} signed by CorEMR and verified, {run.responses_unverified} not verified",
    ]
    return lines


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def write_json(report: Report, out: TextIO) -> None:
    """The JSON report: {"runs": [...], "records": [...]}, one record per line for easy diffing."""
    out.write('{"runs": ')
    out.write(json.dumps([run.as_json() for run in report.runs], ensure_ascii=False))
    out.write(',\n "records": [')
    for i, record in enumerate(report.records):
        out.write(",\n  " if i else "\n  ")
        out.write(json.dumps(record.as_json(), ensure_ascii=False))
    out.write("\n ]}\n" if report.records else "]}\n")


def write_csv(report: Report, out: TextIO) -> None:
    """One CSV row per record, plus the original cells when gathered with them; formulas neutralised."""
    cell_names: dict[str, None] = {}
    for record in report.records:
        if record.cells:
            cell_names.update(dict.fromkeys(record.cells))
    headers = [name if name not in RECORD_FIELDS else f"source:{name}" for name in cell_names]
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*RECORD_FIELDS, *headers])
    for record in report.records:
        values: list[Any] = [getattr(record, name) for name in RECORD_FIELDS]
        cells = record.cells or {}
        values.extend(cells.get(name, "") for name in cell_names)
        writer.writerow([_neutralise(v) for v in values])


def _neutralise(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return neutralise_cell(value) if isinstance(value, str) else value


def open_private_text(path: Path) -> TextIO:
    """Open a new text file that only its owner can read (mode 0600 from the first byte), for writing."""
    try:
        fd = open_private(path)
    except OSError as exc:
        raise UserInputError(f"{path}: cannot write the report ({exc.strerror})") from None
    return open(fd, "w", encoding="utf-8", newline="")  # the caller closes it
