"""What `run` prints: silent for cron unless something new needs a person; everything on a terminal.

Rows are named by line and key only, never by names or birth dates; reasons are in our words (see _messages).
"""

from __future__ import annotations

from collections.abc import Callable

from ..ledger import ROW_STATES
from ._messages import withhold_server_words
from ._run import WINDOW_CLOSED_EXIT, RunResult

__all__ = ["print_summary", "summary_lines"]

_SHOW_ROWS = 20


def summary_lines(result: RunResult, *, everything: bool = True) -> list[str]:
    """One line per state that occurred, then the rows that need a person.

    EVERYTHING (a terminal, or -v): every such row, those reported before marked so. Otherwise (cron):
    only the rows that newly need a person, and one line for those reported before, unchanged since.
    """
    lines = [f"Run {result.run_id}: {result.rows} rows; ledger {result.ledger}"]
    for state in ROW_STATES:
        if result.counts[state]:
            lines.append(f"  {state:<11}{result.counts[state]:>8}")
    if result.needs_person:
        n = result.needs_person
        lines.append(f"  {n} booking{'s' if n != 1 else ''} need{'s' if n == 1 else ''} a person (each once, whatever"
                     " its lines; `status` gives the same count)")  # fmt: skip
    if result.peak_in_flight:  # requests were sent: say how many went at once
        if result.adaptive:  # the peak came first, the limit it ended at after: say them in that order
            lines.append(f"  concurrency: adaptive, up to {result.peak_in_flight} in flight, ending at"
                         f" {result.concurrency}")  # fmt: skip
        else:
            lines.append(f"  concurrency: fixed at {result.concurrency} ({result.peak_in_flight} in flight at most)")
    if result.stopped_early and result.exit_code == WINDOW_CLOSED_EXIT:
        lines.append(f"Stopped sending: {result.stopped_early}; the rows not sent go in the next run.")
    if result.security_stop:
        stop = withhold_server_words(result.security_stop)  # it may quote the signer name the server chose
        lines.append(f"SECURITY STOP: {stop}.")  # the reason names the setting to check
    shown = [o for o in result.attention if everything or not o.known]
    for outcome in sorted(shown, key=lambda o: o.line)[:_SHOW_ROWS]:
        key = outcome.key or "(no key)"
        text = f"  line {outcome.line} key {key}: {outcome.state}: {outcome.reason or ''}".rstrip(": ")
        lines.append(text + (" (reported before)" if outcome.known else ""))
    listed = result.new_attention + (result.known_attention if everything else 0)
    if listed > _SHOW_ROWS:
        lines.append(f"  ... and {listed - _SHOW_ROWS} more; see: cws-pipeline report --ledger {result.ledger}")
    if result.known_attention and not everything:
        lines.append(
            f"  {result.known_attention} more row(s) still need a person as reported before, unchanged since;"
            f" see: cws-pipeline status --ledger {result.ledger}"
        )
    return lines


def print_summary(result: RunResult, echo: Callable[[str], None], *, everything: bool = True) -> None:
    """Print the summary through echo, one line at a time."""
    for line in summary_lines(result, everything=everything):
        echo(line)
