"""A person accepting a row's body as what CorEMR holds: a held correction they entered by hand, a row CorEMR
cannot take through CWS (a v1 re-booking) that they added there themselves, or a row left in doubt that they
found there.

`accept_row` records it as a chained `accepted` entry; from then on the row's body counts as delivered,
so the next run skips it (and, should the export change it again, holds or updates from that body).
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from pathlib import Path

from .._errors import UserInputError
from ..ledger import Entry, Ledger, LedgerWrite, RunLock, StatusUpdate

__all__ = ["ACCEPTABLE_STATES", "AcceptedRow", "accept_row"]

# A held correction; a row CorEMR refused that a person settled; a row in doubt a person found in CorEMR.
ACCEPTABLE_STATES = ("changed", "rejected", "ambiguous", "unverified")


@dataclass(frozen=True)
class AcceptedRow:
    """What `accept_row` recorded: the row, the state it was in, the body now counted as delivered, the entry."""

    key: str
    line: int | None
    was: str
    body_sha256: str
    seq: int


def accept_row(ledger_path: Path, key: str, *, by: str | None = None) -> AcceptedRow:
    """Record (chained, under the run lock) that a person accepts KEY's latest body as what CorEMR holds.

    Only a row whose latest state is one of ACCEPTABLE_STATES can be accepted; anything else is a one-line
    UserInputError and nothing is written.
    """
    who = by or _login()
    with RunLock(ledger_path), Ledger.open(ledger_path, create=False) as ledger:
        found = ledger.row_status(key)
        if found is None:
            raise UserInputError(
                f"{ledger_path}: no row has the key {key!r}; `cws-pipeline report` names each row by its key"
            )
        if found.state not in ACCEPTABLE_STATES or found.body_sha256 is None:
            raise UserInputError(
                f"{ledger_path}: key {key!r} is {found.state} (run {found.run_id}); accept takes a row whose"
                f" latest state is {', '.join(ACCEPTABLE_STATES[:-1])} or {ACCEPTABLE_STATES[-1]}"
            )
        run_id = ledger.latest_run_id() or found.run_id
        # A row held because its external_id changed keeps the old one in row_status: the accepted body's counts now.
        external_id = _external_id_of(ledger.body(found.body_sha256)) or found.external_id
        detail = {"by": who, "was": found.state, "delivered_sha256": found.delivered_sha256}
        entry = Entry(run_id, "accepted", line=found.line, key=key, external_id=external_id,
                      request_sha256=found.body_sha256, detail=json.dumps(detail, separators=(",", ":")))  # fmt: skip
        reason = f"accepted by {who} after run {found.run_id}: counted as delivered, not sent"
        status = StatusUpdate(key, external_id, "skipped", found.body_sha256, run_id, found.line, reason,
                              delivered=True, action="accepted")  # fmt: skip
        ledger.append(LedgerWrite([entry], [], [status]))
    return AcceptedRow(key, found.line, found.state, found.body_sha256, entry.seq)


def _external_id_of(body: bytes | None) -> str | None:
    """The external_id a stored body names, or None (pruned, or not a JSON object naming one)."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return None
    value = data.get("external_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _login() -> str:
    """Who accepts: the login name (for the audit trail), or "unknown" where the system cannot say."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
