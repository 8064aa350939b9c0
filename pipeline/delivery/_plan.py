"""Planning: what a row needs this run, decided from its validity and what earlier runs left for its key.

No I/O: the ledger hands out plain prior-row data (`PriorRows`), and the rules live here. Two of them
guard against what older versions did: a row recorded `rejected` by a refusal of our site (401/403, a
3xx, a 404 to a create, a 5xx: `refused_by_site`) was never refused for its data and is sent again; and a
delivered row whose external_id has changed is held (`renumbered`), never sent as anyone's update.
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
    "refused_by_site",
    "rejected_again_reason",
    "renumbered_reason",
    "same_number_reason",
    "updated_reason",
]

Plan = Literal[
    "invalid", "excluded", "duplicate", "skipped", "changed", "renumbered", "rejected_again", "send", "settle",
    "stopped", "rebooked",
]  # fmt: skip
# "rebooked": a returning person (a patient CorEMR holds, with a new booking) at a site without bookings routes:
# held, not sent (the engine decides it, knowing the site; see Delivery.plan).
# A request was recorded as leaving, or may have landed, and no verified answer settled it.
DOUBTFUL = ("sending", "ambiguous", "unverified")
_REJECTED_AGAIN = re.compile(r"rejected earlier with the same body \(run (\d+)\): ")
_HTTP_STATUS = re.compile(r"HTTP (\d{3})\b")  # how a refusal's reason starts (judge_answer)


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
    if delivered and sha == delivered and not prior.in_doubt(row.key):
        return "skipped", sha
    p = prior.get(row.key)
    if delivered and p is not None and p.external_id and row.external_id != p.external_id:
        return "renumbered", sha  # another patient's number: never an update, whatever on_change says
    if delivered and not prior.in_doubt(row.key):
        if _refused_again(p, sha):  # this correction was refused
            return "rejected_again", sha
        return ("send" if on_change == "update" else "changed"), sha
    if p is None:
        return "send", sha
    if p.state in DOUBTFUL:
        return "settle", sha
    if _refused_again(p, sha):
        return "rejected_again", sha
    return "send", sha


def _refused_again(p: PriorRow | None, sha: str) -> bool:
    """True when this very body was refused for its data before (a refusal of our site does not count)."""
    return p is not None and p.state == "rejected" and p.body_sha256 == sha and not refused_by_site(p.reason)


def refused_by_site(reason: str | None) -> bool:
    """True when a recorded rejection was a refusal of our site (401/403, 3xx, a 404 to a create, 5xx), which
    older versions recorded as `rejected`: no verdict on the row. A rejection is recorded as "HTTP NNN: ...",
    and only a create's 404 ends a row (a 404 to any other step leads to a next one)."""
    _, message = _first_refusal(reason or "")
    match = _HTTP_STATUS.match(message)
    if match is None:
        return False
    status = int(match.group(1))
    return status in (401, 403, 404) or 300 <= status < 400 or status >= 500


def renumbered_reason(p: PriorRow | None, row: MappedRow) -> str:
    """Why a delivered row whose external_id changed is held: the jail system merged or renumbered a patient."""
    was = p.external_id if p is not None else "another"
    return (
        f"the external_id changed from {was} to {row.external_id} since it was {_delivered_where(p)}: a patient"
        " merged or renumbered in the jail system; held, not sent: fix it in CorEMR by hand, then"
        " `cws-pipeline accept` the row"
    )


def same_number_reason(external_id: str | None, number: str | None, p: PriorRow | None) -> str:
    """Why a new booking of a patient keyed by person alone is held: it has the number of the booking delivered."""
    return (
        f"patient {external_id} has a new booking date under booking {number or '(none)'}, the number of the booking"
        f" {_delivered_where(p)}: the mapping's key names no booking, so this is a new booking, and it cannot be"
        " added under the delivered booking's number (nor sent as its update, which would overwrite its date); held,"
        " not sent: make booking_no from the person and the booking date (docs/returning-patients.md), or enter the"
        " booking in CorEMR by hand, then `cws-pipeline accept` the row"
    )


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
    run_id, message = _first_refusal(p.reason or "", p.run_id)
    return f"rejected earlier with the same body (run {run_id}): {message}"


def _first_refusal(reason: str, run_id: int = 0) -> tuple[int, str]:
    """The run and words of the first refusal a reason tells of, through any "rejected earlier" around it."""
    while match := _REJECTED_AGAIN.match(reason):
        run_id, reason = int(match.group(1)), reason[match.end() :]
    return run_id, reason


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
