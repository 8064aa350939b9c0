"""The report as text (a terminal or a cron mail), JSON (a public interface: see the README) and CSV.

Rows are named by line and key; names and birth dates appear only in the CSV's original cells, which
are written only to a private (0600) file. A reason is printed in our words: where an earlier version
recorded CorEMR's own, the text report and the error file replace them (the answer stays in the ledger).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .._errors import UserInputError
from .._private_files import neutralise_cell, open_private, spreadsheet_csv
from ..delivery import printable_reason
from ..ledger import ACTIONS, NOT_DELIVERED, ROW_STATES, STATE_ADVICE
from ._audit_output import audit_json, audit_verdict
from ._changes import FieldChange, changes_text, where_text
from ._report import RECORD_FIELDS, Report, RowHistory, RunSummary

__all__ = ["actions_text", "open_private_text", "write_csv", "write_error_file", "write_json", "write_text"]


def write_text(report: Report, out: TextIO) -> None:
    """A plain-text report: one run's header, counts and rows needing attention; across runs, a line per run
    and each row needing attention once."""
    if report.across_runs:
        _across_runs(report, out)
    else:
        _one_run(report, out)
    if report.audit is not None:
        out.write(f"\n{audit_verdict(report.audit)}\n")


def _one_run(report: Report, out: TextIO) -> None:
    rows = report.attention
    for line in _run_header(report.runs[0]):
        out.write(line + "\n")
    what = f"Rows in state {', '.join(report.states)}" if report.states else "Rows needing attention"
    out.write(f"{what}: {len(rows)}\n")
    out.write(_needs_person(report))
    if rows:
        key_width = min(max(len(r.key or "(no key)") for r in rows), 40)
        state_width = max(len(r.state) for r in rows)
        for r in rows:
            line = f"  line {r.line if r.line is not None else '?':>6}  {r.key or '(no key)':<{key_width}}"
            out.write(f"{line}  {r.state:<{state_width}}  {_one_line(r.error)}".rstrip() + "\n")
            _changed(r.changes, report.values_shown, out)
    _advice({r.state for r in rows}, out, [c for r in rows for c in r.changes])


def _across_runs(report: Report, out: TextIO) -> None:
    runs = report.runs
    first, last = runs[0].record, runs[-1].record
    out.write(f"Runs {first.run_id} to {last.run_id}: {len(runs)} runs started {first.started_at}"
              f" to {last.started_at}\nLedger {report.ledger}\n")  # fmt: skip
    out.write(f"  {'run':>5}  {'started':<29}  {'status':<11}  {'exit':>4}  {'rows':>6}  {'attention':>9}  source\n")
    for run in runs:
        rec = run.record
        code = "-" if rec.exit_code is None else str(rec.exit_code)
        out.write(f"  {rec.run_id:>5}  {rec.started_at:<29}  {rec.status:<11}  {code:>4}  {run.rows:>6}"
                  f"  {run.attention:>9}  {Path(rec.info.source).name}\n")  # fmt: skip
    counts = report.latest_counts()
    out.write(f"Bookings: {len(report.rows)} distinct (a key once, whatever its lines), each counted once by its"
              " latest state: "
              + ", ".join(f"{state} {counts.get(state, 0)}" for state in ROW_STATES) + "\n")  # fmt: skip
    rows = report.outstanding
    what = f"Rows whose latest state is {', '.join(report.states)}" if report.states else "Rows needing attention"
    out.write(f"{what}: {len(rows)}\n")
    out.write(_needs_person(report))
    if rows:
        key_width = min(max(len(h.latest.key or "(no key)") for h in rows), 40)
        state_width = max(len(h.latest.state) for h in rows)
        for h in rows:
            r = h.latest
            line = f"  line {r.line if r.line is not None else '?':>6}  {r.key or '(no key)':<{key_width}}"
            out.write(f"{line}  {r.state:<{state_width}}  {_seen(h)}  {_one_line(r.error)}".rstrip() + "\n")
            _changed(r.changes, report.values_shown, out)
    _advice({h.latest.state for h in rows}, out, [c for h in rows for c in h.latest.changes])


def _needs_person(report: Report) -> str:
    n = report.needs_person
    return f"Needs a person: {n} booking{'s' if n != 1 else ''} (each once, whatever its lines; as `status` counts)\n"


def _seen(history: RowHistory) -> str:
    last = history.latest.run_id
    return f"run {last}" if history.since_run == last else f"runs {history.since_run} to {last}"


def _changed(changes: tuple[FieldChange, ...], values: bool, out: TextIO) -> None:
    """A held change's fields under its row: names only, unless values may be shown (--show-values)."""
    if changes:
        out.write(f"               what changed: {changes_text(changes, values)}\n")


def _advice(shown: set[str], out: TextIO, changes: Sequence[FieldChange] = ()) -> None:
    for state in ROW_STATES:
        if state in shown and state in NOT_DELIVERED and state in STATE_ADVICE:
            out.write(f"  {state}: {STATE_ADVICE[state]}\n")
            where = where_text(changes) if state == "changed" else None
            if where:
                out.write(f"    where in CorEMR: {where}\n")


def _run_header(run: RunSummary) -> list[str]:
    rec, info = run.record, run.record.info
    if rec.status == "killed":
        finished = f"found killed {rec.finished_at}"
    else:
        finished = f"to {rec.finished_at}" if rec.finished_at else "(not finished)"
    code = "" if rec.exit_code is None else f", exit {rec.exit_code}"
    return [
        f"Run {rec.run_id} ({rec.status}{code}): {rec.started_at} {finished}",
        f"  source    {info.source}",
        f"            sha256 {info.source_sha256}",
        f"  mapping   {info.mapping}",
        f"            sha256 {info.mapping_sha256}",
        f"  endpoint  {info.base_url}{info.endpoint}",
        f"  access    {info.access} ({info.algorithm}), cws-pipeline {info.program_version}",
        *([f"  run by    {info.user or 'unknown'}@{info.host or 'unknown'}"] if info.user or info.host else []),
        f"  rows      {run.rows}: "
        + ", ".join(f"{state} {run.counts_from_entries.get(state, 0)}" for state in ROW_STATES),
        *([f"  delivered {actions_text(run.actions)}"] if run.actions else []),
        f"  answers   {run.responses_verified} signed by CorEMR and verified, {run.responses_unverified} not verified",
    ]


def actions_text(actions: dict[str, int]) -> str:
    """How a run's delivered rows got there, e.g. 'created 210, booking added 31, found 2, updated 4'."""
    known = [a for a in ACTIONS if a in actions] + sorted(a for a in actions if a not in ACTIONS)
    return ", ".join(f"{action} {actions[action]}" for action in known)


def _one_line(reason: str | None) -> str:
    """A recorded reason as printed: one line, and CorEMR's own words never (an earlier version recorded them)."""
    return " ".join(printable_reason(reason or "").split())


def write_json(report: Report, out: TextIO) -> None:
    """The JSON report: {"runs": [...], "records": [...]}, one record per line for easy diffing; across runs
    also "rows" (each row once, latest state), and "audit" when asked for."""
    out.write('{"runs": ')
    out.write(json.dumps([run.as_json() for run in report.runs], ensure_ascii=False))
    out.write(f',\n "needs_person": {report.needs_person}')
    if report.across_runs:
        out.write(',\n "rows": [')
        out.write(",".join("\n  " + json.dumps(h.as_json(), ensure_ascii=False) for h in report.rows))
        out.write("\n ]" if report.rows else "]")
    if report.audit is not None:
        out.write(',\n "audit": ' + json.dumps(audit_json(report.audit), ensure_ascii=False))
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
    # A held change's fields (with their values when gathered with them) get a column when there are any.
    changes = ["changes"] if any(r.changes for r in report.records) else []
    writer = spreadsheet_csv(out)
    writer.writerow([*RECORD_FIELDS, *changes, *headers])
    for record in report.records:
        values: list[Any] = [getattr(record, name) for name in RECORD_FIELDS]
        if changes:
            values.append(changes_text(record.changes, report.values_shown))
        cells = record.cells or {}
        values.extend(cells.get(name, "") for name in cell_names)
        writer.writerow([_neutralise(v) for v in values])


def write_error_file(report: Report, out: TextIO) -> int:
    """The rows needing a person as the clerk's error file: the export's own cells, then line, state and reason.

    Like a loader's error file: open it in a spreadsheet, fix those rows in the export, run again.
    Cells a spreadsheet would run as formulas are neutralised. Returns how many rows it lists.
    """
    rows = [r for r in report.records if r.state in NOT_DELIVERED]
    cell_names: dict[str, None] = {}
    for record in rows:
        cell_names.update(dict.fromkeys(record.cells or {}))
    # A held change's fields, old → new, get a column when there are any (the file is the clerk's, mode 0600).
    ours = ("line", "state", "reason", "changes") if any(r.changes for r in rows) else ("line", "state", "reason")
    extra = [name if name not in cell_names else f"cws:{name}" for name in ours]
    writer = spreadsheet_csv(out)
    writer.writerow([_neutralise(name) for name in (*cell_names, *extra)])
    for record in sorted(rows, key=lambda r: (r.line if r.line is not None else -1, r.key or "")):
        cells = record.cells or {}
        values = [cells.get(name, "") for name in cell_names]
        reason = None if record.error is None else printable_reason(record.error)
        changes = [changes_text(record.changes, report.values_shown)] if len(ours) == 4 else []
        writer.writerow([_neutralise(v) for v in (*values, record.line, record.state, reason, *changes)])
    return len(rows)


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
