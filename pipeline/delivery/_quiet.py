"""Recording the rows that need no request: skipped (the re-run's common case, listed in chained skipped_rows
entries), invalid, excluded, duplicate, held (changed), refused before with the same body, or not sent because
the run had stopped. No I/O: one LedgerWrite for a chunk of them, which the engine submits.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..ledger import (
    LedgerWrite,
    PriorRows,
    RowState,
    SkippedRow,
    StatusUpdate,
    booking_identity,
    sha256_hex,
    skipped_rows_entries,
)
from ..mapping import MappedRow
from ._messages import reason_text
from ._outcome import RowOutcome, known_outcome
from ._plan import Plan, changed_reason, keeps_recorded_status, rejected_again_reason, renumbered_reason
from ._records import cells_json, final_records

__all__ = ["quiet_records"]


def quiet_records(
    run_id: int, prior: PriorRows, planned: Sequence[tuple[MappedRow, Plan, str | None]], stop_reason: str
) -> tuple[LedgerWrite, list[RowOutcome]]:
    """The records and outcomes of rows that need no request (STOP_REASON: why a run that stopped sent no more)."""
    write = LedgerWrite()
    outcomes: list[RowOutcome] = []
    skipped: list[SkippedRow] = []
    for row, row_plan, sha in planned:
        if row_plan == "skipped" and sha is not None:  # the re-run's common case, kept lean
            skipped.append(_skipped(run_id, prior, row, sha, write))
            outcomes.append(RowOutcome(row.line, row.key, "skipped", body_sha256=sha))
        else:
            outcomes.append(_quiet_outcome(run_id, prior, row, row_plan, sha, write, stop_reason))
    if skipped:  # listed in chained skipped_rows entries, not one entry each: a re-run is mostly these
        write.entries += skipped_rows_entries(run_id, skipped)
    return write, outcomes


def _skipped(run_id: int, prior: PriorRows, row: MappedRow, sha: str, write: LedgerWrite) -> SkippedRow:
    cells = cells_json(row)
    cells_sha = sha256_hex(cells)
    if not keeps_recorded_status(prior.recorded(row.key), sha, cells_sha):
        write.bodies.append((cells_sha, cells))
        write.updates.append(
            StatusUpdate(row.key, row.external_id, "skipped", sha, run_id, row.line, cells_sha256=cells_sha)
        )
    # else row_status already holds this body and these cells (stored with the entry that set them):
    # leave it, and the run that delivered it, as it is
    return SkippedRow(row.line, row.key, row.external_id, sha, cells_sha)


def _quiet_outcome(
    run_id: int,
    prior: PriorRows,
    row: MappedRow,
    row_plan: Plan,
    sha: str | None,
    write: LedgerWrite,
    stop_reason: str,
) -> RowOutcome:
    p = prior.get(row.key)
    state: RowState = "failed"
    reason: str | None = None
    if row_plan == "invalid":
        state, reason = "invalid", "; ".join(str(problem) for problem in row.problems)
    elif row_plan == "excluded":
        state, reason = "excluded", row.excluded
    elif row_plan == "duplicate":
        state, reason = "duplicate", f"the same booking as line {row.duplicate_of} (same key and body): not sent"
    elif row_plan == "skipped":
        state = "skipped"
    elif row_plan == "changed":
        state, reason = "changed", changed_reason(p)
    elif row_plan == "renumbered":
        state, reason = "changed", renumbered_reason(p, row)
    elif row_plan == "stopped":  # would have been sent, but the run had stopped
        reason = f"not sent: {stop_reason}"
    else:
        state = "rejected"
        reason = rejected_again_reason(p)  # the same words every night, naming the run that was refused
    reason = reason_text(reason, row.body) if reason else None
    # A renumbered row keeps the delivered external_id in row_status: the next night compares with it again.
    kept_id = p.external_id if row_plan == "renumbered" and p is not None else None
    # A held change names the body it differs from: a report says field by field what changed.
    differs_from = p.delivered_sha256 if row_plan in ("changed", "renumbered") and p is not None else None
    records = final_records(run_id, row, state, reason, sha, None, 0, duplicate_of=row.duplicate_of,
                            external_id=kept_id, differs_from=differs_from)  # fmt: skip
    write.add(records)
    cells_sha = records.entries[-1].cells_sha256
    # Reported before: this key's recorded status is this very line's (same state, body and cells), or the last
    # run left this line so (a line without a key, a per-charge sibling line of a key: known by their cells).
    known = known_outcome(p, records) or prior.reported(booking_identity(row.key, cells_sha), state, cells_sha)
    return RowOutcome(row.line, row.key, state, reason, known, body_sha256=sha, cells_sha256=cells_sha)
