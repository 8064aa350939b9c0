"""Planning: what a row needs this run, decided from its validity and what earlier runs left for its key.

No I/O: the ledger hands out plain prior-row data (`PriorRows`), and the rules live here.
"""

from __future__ import annotations

import re
import threading
from typing import Literal

from ..ledger import PriorRow, PriorRows, StatusUpdate, sha256_hex
from ..mapping import MappedRow, OnChange

__all__ = [
    "DOUBTFUL",
    "Plan",
    "Rebookings",
    "already_reported",
    "changed_reason",
    "keeps_recorded_status",
    "plan",
    "rejected_again_reason",
    "updated_reason",
]

Plan = Literal[
    "invalid", "excluded", "duplicate", "skipped", "changed", "rejected_again", "send", "settle", "stopped"
]  # fmt: skip
# A request was recorded as leaving, or may have landed, and no verified answer settled it.
DOUBTFUL = ("sending", "ambiguous", "unverified")
_REJECTED_AGAIN = re.compile(r"rejected earlier with the same body \(run (\d+)\): ")


def plan(row: MappedRow, prior: PriorRows, on_change: OnChange = "hold") -> tuple[Plan, str | None]:
    """What this row needs (from its validity, earlier runs and the corrections policy ON_CHANGE) and its body's
    SHA-256, hashed once here. "send" for a delivered row is its correction, sent as an update."""
    if row.excluded is not None:  # a filter of the mapping left it out: never sent, never an alarm
        return "excluded", None
    if row.body is None:
        return "invalid", None
    sha = sha256_hex(row.body)
    if row.duplicate_of is not None:  # an earlier line of this export is the same booking: that line is sent
        return "duplicate", sha
    delivered = prior.delivered_sha256(row.key)  # a re-run's common case, without a PriorRow each
    if delivered and not prior.in_doubt(row.key):
        if sha == delivered:
            return "skipped", sha
        p = prior.get(row.key)
        if p is not None and p.state == "rejected" and p.body_sha256 == sha:  # this correction was refused
            return "rejected_again", sha
        return ("send" if on_change == "update" else "changed"), sha
    p = prior.get(row.key)
    if p is None:
        return "send", sha
    if p.state in DOUBTFUL:
        return "settle", sha
    if p.state == "rejected" and p.body_sha256 == sha:
        return "rejected_again", sha
    return "send", sha


def changed_reason(p: PriorRow | None) -> str:
    """Why a held change is not sent, naming the run that delivered the body it differs from."""
    return f'{_delivered_where(p)} with a different body; held (on_change = "hold"): not sent'


def updated_reason(p: PriorRow | None) -> str:
    """What an update sent: a correction of the body delivered in the run it names."""
    return f'corrected: {_delivered_where(p)} with a different body; sent as an update (on_change = "update")'


def _delivered_where(p: PriorRow | None) -> str:
    if p is None or p.delivered_run_id is None:
        return "delivered in an earlier run"
    if p.action == "accepted":
        return f"accepted after run {p.delivered_run_id}"
    return f"delivered in run {p.delivered_run_id}"


def already_reported(p: PriorRow | None, update: StatusUpdate | None) -> bool:
    """True when an earlier run left this row in the same state, with the same body and the same input cells.

    Such a row was reported then and has not changed since: cron need not hear of it again.
    """
    return (
        p is not None
        and update is not None
        and p.state == update.state
        and p.body_sha256 == update.body_sha256
        and p.cells_sha256 == update.cells_sha256
    )


def keeps_recorded_status(
    recorded: tuple[str, str | None, str | None] | None, body_sha256: str, cells_sha256: str
) -> bool:
    """True when a skipped row's status needs no change: RECORDED (PriorRows.recorded: state, body and cells
    SHA-256) is delivered or skipped with this body and these cells."""
    return (
        recorded is not None and recorded[0] in ("delivered", "skipped") and recorded[1:] == (body_sha256, cells_sha256)
    )


def rejected_again_reason(p: PriorRow | None) -> str:
    """The reason for a row rejected earlier with the same body: the run that was refused and CorEMR's words.

    The same every night: the reason recorded last night is read back to the first refusal, never
    nested in another "rejected earlier" (older ledgers hold such nested reasons: the innermost is kept).
    """
    if p is None:
        return "rejected earlier with the same body"
    run_id, message = p.run_id, p.reason or ""
    while match := _REJECTED_AGAIN.match(message):
        run_id, message = int(match.group(1)), message[match.end() :]
    return f"rejected earlier with the same body (run {run_id}): {message}"


class Rebookings:
    """external_id -> keys delivered with it: a patient CorEMR holds, whose next booking is a re-booking (and
    whose lookup by external_id alone cannot tell one booking from another).

    Built on first need (rows in doubt are rare; a re-run of 100,000 rows should not pay for it).
    """

    def __init__(self, prior: PriorRows) -> None:
        self._prior = prior
        self._ids: dict[str, set[str]] | None = None
        self._lock = threading.Lock()

    def under_another_key(self, row: MappedRow) -> bool:
        """True when this row's external_id was delivered earlier under another row key."""
        with self._lock:
            if self._ids is None:
                ids: dict[str, set[str]] = {}
                for external_id, key in self._prior.delivered_ids():
                    ids.setdefault(external_id, set()).add(key)
                self._ids = ids
        return bool(self._ids.get(row.external_id or "", set()) - {row.key})
