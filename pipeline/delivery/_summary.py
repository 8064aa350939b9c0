"""What `run` prints: silent for cron when all is well, loud and precise when not. Rows by line and key only."""

from __future__ import annotations

from collections.abc import Callable

from ..ledger import NOT_DELIVERED, ROW_STATES
from ._run import WINDOW_CLOSED_EXIT, RunResult

__all__ = ["print_summary", "summary_lines"]

_SHOW_ROWS = 20


def summary_lines(result: RunResult) -> list[str]:
    """One line per state that occurred, then the rows that need attention (never names or birth dates)."""
    lines = [f"Run {result.run_id}: {result.rows} rows; ledger {result.ledger}"]
    for state in ROW_STATES:
        if result.counts[state]:
            lines.append(f"  {state:<11}{result.counts[state]:>8}")
    if result.peak_in_flight:  # requests were sent: say how many went at once
        how = "adaptive, settled at" if result.adaptive else "fixed at"
        lines.append(f"  concurrency: {how} {result.concurrency} ({result.peak_in_flight} in flight at most)")
    if result.window_closed and result.exit_code == WINDOW_CLOSED_EXIT:
        lines.append(f"Stopped sending: {result.window_closed}; the rows not sent go in the next run.")
    if result.security_stop:
        lines.append(f"SECURITY STOP: {result.security_stop}. Check private_key/access and server_keys/base_url.")
    for outcome in sorted(result.attention, key=lambda o: o.line)[:_SHOW_ROWS]:
        key = outcome.key or "(no key)"
        lines.append(f"  line {outcome.line} key {key}: {outcome.state}: {outcome.reason or ''}".rstrip(": "))
    hidden = sum(result.counts[s] for s in ROW_STATES if s in NOT_DELIVERED) - _SHOW_ROWS
    if hidden > 0:
        lines.append(f"  ... and {hidden} more; see: cws-pipeline report --ledger {result.ledger}")
    return lines


def print_summary(result: RunResult, echo: Callable[[str], None]) -> None:
    """Print the summary through echo, one line at a time."""
    for line in summary_lines(result):
        echo(line)
