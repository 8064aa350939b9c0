"""The site at a glance (`cws-pipeline status`): last run, last fully good run, rows outstanding, ledger size, head.

For a person (text) and for monitoring (JSON, and an exit code a check can use, as Nagios plugins do):
    0 ok         the last run finished with every row delivered or skipped, and no row is outstanding
    1 attention  rows need a person (each listed once, with the run since which it has needed one)
    1 attention  also: the last run is dated in the future (a clock was ahead when it ran, or is behind
                 now), so no age can be judged
    2 problem    the last run did not finish (security stop, crash, interrupt, killed, or left running by a
                 process that died), or started longer ago than the allowed age; also, as for every
                 command, a ledger that cannot be read
    3 unknown    no run is recorded yet
    6 damaged    (LedgerDamaged, as for every command) the file is damaged, or its runs table holds what no
                 run wrote (NULL or garbage where a time, status or exit code belongs): one line, no verdict
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from .._errors import ExitCode, LedgerDamaged
from ..ledger import NOT_DELIVERED, ChainHead, Ledger, LedgerSize, OutstandingRow, RunLock, RunRecord

__all__ = ["STATUS_EXIT_CODES", "SiteStatus", "StatusVerdict", "site_status", "status_json", "status_lines"]

StatusVerdict = Literal["ok", "attention", "problem", "unknown"]
STATUS_EXIT_CODES: dict[StatusVerdict, ExitCode] = {
    "ok": ExitCode.OK,
    "attention": ExitCode.ATTENTION,
    "problem": ExitCode.PROBLEM,
    "unknown": ExitCode.UNKNOWN,
}
_COMPLETE = ("finished",)
_SHOW_ROWS = 50  # the text lists this many outstanding rows (the longest outstanding first); JSON lists all
# A run dated ahead of this clock by more than this was recorded by a clock that was wrong (or this one is):
# two hosts' clocks under NTP agree to well within it.
_CLOCK_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class SiteStatus:
    """What `status` shows: the ledger's runs, outstanding rows, size and chain head, and the verdict."""

    ledger: Path
    checked_at: datetime
    size: LedgerSize
    runs: list[RunRecord]
    outstanding: list[OutstandingRow]
    head: ChainHead | None
    running: dict[str, object] | None  # the lock holder while a run is in progress
    verdict: StatusVerdict = "unknown"
    reasons: list[str] = field(default_factory=list)
    needs_person: int = 0  # bookings needing a person (each once, whatever its lines): the run summary's count

    @property
    def exit_code(self) -> ExitCode:
        """0 ok, 1 attention, 2 problem, 3 unknown (no run yet): the Nagios plugin convention."""
        return STATUS_EXIT_CODES[self.verdict]

    @property
    def last_run(self) -> RunRecord | None:
        """The latest run (the one in progress, while a run is)."""
        return self.runs[-1] if self.runs else None

    @property
    def last_good_run(self) -> RunRecord | None:
        """The latest run that finished with no row needing a person (exit 0 alone allows rows reported before)."""
        return next((r for r in reversed(self.runs) if r.status in _COMPLETE and _all_settled(r)), None)

    def started(self, run_id: int) -> str | None:
        """When a run started."""
        return next((r.started_at for r in self.runs if r.run_id == run_id), None)


def site_status(ledger: Ledger, *, now: datetime | None = None, max_age: timedelta | None = None) -> SiteStatus:
    """Read the site's status from the ledger (read-only) and judge it; max_age: how old the last run may be."""
    with ledger.snapshot():
        runs = ledger.runs()
        outstanding = ledger.outstanding_rows()
        if runs:  # rows without a key cannot be followed across runs: those of the latest run
            latest = runs[-1].run_id
            for row in ledger.state_rows([latest], sorted(NOT_DELIVERED)):
                _, line, _, key, state, _, _, _, _, _, _, _, error, *_ = row  # STATE_ROW_FIELDS
                if not key:
                    outstanding.append(OutstandingRow(None, line, None, state, error, latest, latest))
        size, head = ledger.size(), ledger.head()
        needing = len(ledger.bookings_needing_a_person())
    _check_runs(ledger.path, runs)
    status = SiteStatus(ledger.path.resolve(), now or datetime.now(UTC), size, runs, outstanding, head,
                        RunLock.holder(ledger.path), needs_person=needing)  # fmt: skip
    verdict, reasons = _judge(status, max_age)
    return SiteStatus(**{**status.__dict__, "verdict": verdict, "reasons": reasons})


def _check_runs(path: Path, runs: list[RunRecord]) -> None:
    """LedgerDamaged, in one line, for the first run whose row no run could have written (an edited table)."""
    for run in runs:
        problem = run.damage()
        if problem is not None:
            raise LedgerDamaged(
                f"{path}: the runs table is damaged: run {run.run_id}: {problem}; nothing was changed: run"
                " `cws-pipeline audit` on this ledger, and restore it from a backup"
            )


def _judge(status: SiteStatus, max_age: timedelta | None) -> tuple[StatusVerdict, list[str]]:
    runs = [r for r in status.runs if not (r.status == "running" and status.running)]  # one in progress: the one before
    if not runs:
        return "unknown", [
            "no run is recorded in this ledger yet" if not status.runs else "the first run is in progress"
        ]
    last, problems = runs[-1], []
    if last.status == "running":
        problems.append(f"run {last.run_id} (pid {last.pid}) is recorded as running, but no run holds the ledger:"
                        " its process died; the next run records it as killed")  # fmt: skip
    elif last.status not in _COMPLETE:
        code = "" if last.exit_code is None else f", exit {last.exit_code}"
        problems.append(f"the last run, {last.run_id}, did not finish: {last.status}{code}")
    newest = status.runs[-1]
    age = status.checked_at - datetime.fromisoformat(newest.started_at)
    if max_age is not None and age > max_age:
        problems.append(f"the last run started {_ago(age)}, longer ago than --max-age allows")
    if problems:
        return "problem", problems
    attention = []
    if -age > _CLOCK_SLACK:
        attention.append(f"the last run, {newest.run_id}, is dated {newest.started_at}, {_ago(age)} of this clock:"
                         " a clock was wrong when it ran (or is now), so its age cannot be judged")  # fmt: skip
    if status.needs_person or status.outstanding or last.exit_code not in (0, None):
        n = status.needs_person
        attention.append(f"{n} booking{'s' if n != 1 else ''} need{'s' if n == 1 else ''} a person")
    if attention:
        return "attention", attention
    return "ok", ["every row is delivered or skipped"]


def _ago(age: timedelta) -> str:
    """How long ago, or how far ahead for a time in the future beyond the clocks' slack."""
    if -age > _CLOCK_SLACK:
        return _span(-age) + " ahead"
    return _span(max(age, timedelta(0))) + " ago"


def _span(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _run_line(status: SiteStatus, run: RunRecord | None) -> str:
    if run is None:
        return "none"
    code = "" if run.exit_code is None else f", exit {run.exit_code}"
    age = _ago(status.checked_at - datetime.fromisoformat(run.started_at))
    counts = ", ".join(f"{s} {n}" for s, n in run.counts.items() if n)
    return f"run {run.run_id}, {run.status}{code}, started {run.started_at} ({age})" + (f": {counts}" if counts else "")


def status_lines(status: SiteStatus) -> list[str]:
    """The status for a person: one line each for the ledger, the runs and the head, then each outstanding row."""
    size = status.size
    lines = [
        f"Ledger {status.ledger}: {size.file_bytes / 1e6:,.1f} MB, {len(status.runs)} runs, {size.entries:,} entries,"
        f" {size.bodies_stored:,} bodies stored, {size.bodies_pruned:,} pruned",
        f"Last run:       {_run_line(status, status.last_run)}",
        f"Last good run:  {_run_line(status, status.last_good_run)}",
    ]
    if status.running:
        lines.append(
            f"Running now:    pid {status.running.get('pid', '?')}, since {status.running.get('started_at', '?')}"
        )
    head = status.head
    lines.append(f"Chain head:     entry {head.seq} hash {head.hash}" if head else "Chain head:     none (no entries)")
    lines.append(f"Outstanding:    {status.needs_person} booking(s) need a person ({len(status.outstanding)} row(s))")
    for row in status.outstanding[:_SHOW_ROWS]:
        since = status.started(row.since_run_id) or "?"
        where = f"  line {row.line if row.line is not None else '?':>6}  {row.key or '(no key)'}  {row.state}"
        lines.append(f"{where}  since run {row.since_run_id} ({since[:10]}), last run {row.run_id}"
                     f"  {' '.join((row.reason or '').split())}".rstrip())  # fmt: skip
    if len(status.outstanding) > _SHOW_ROWS:
        lines.append(
            f"  ... and {len(status.outstanding) - _SHOW_ROWS} more (`status --json` or `report --all` lists them all)"
        )
    lines.append(f"Status: {status.verdict} (exit {status.exit_code}): {'; '.join(status.reasons)}")
    return lines


def status_json(status: SiteStatus) -> dict[str, Any]:
    """The status for monitoring (the JSON shape is a public interface: see the README)."""

    def run(r: RunRecord | None) -> dict[str, Any] | None:
        if r is None:
            return None
        age = (status.checked_at - datetime.fromisoformat(r.started_at)).total_seconds()
        return {"run_id": r.run_id, "status": r.status, "exit_code": r.exit_code, "started_at": r.started_at,
                "finished_at": r.finished_at, "age_seconds": round(age), "counts": r.counts}  # fmt: skip

    return {
        "ledger": str(status.ledger),
        "checked_at": status.checked_at.isoformat(timespec="seconds"),
        "status": status.verdict,
        "exit_code": status.exit_code,
        "reasons": status.reasons,
        "runs": len(status.runs),
        "last_run": run(status.last_run),
        "last_good_run": run(status.last_good_run),
        "running": status.running,
        "needs_person": status.needs_person,
        "outstanding": [
            {
                "key": r.key,
                "line": r.line,
                "state": r.state,
                "reason": r.reason,
                "since_run": r.since_run_id,
                "since": status.started(r.since_run_id),
                "last_run": r.run_id,
            }
            for r in status.outstanding
        ],
        "size": status.size._asdict(),
        "chain_head": None if status.head is None else status.head._asdict(),
    }


def _all_settled(run: RunRecord) -> bool:
    """True when the run left no row in a state that needs a person."""
    return run.exit_code == 0 and not any(n for state, n in run.counts.items() if state in NOT_DELIVERED)
