"""What a person does between runs: accept a held row as what CorEMR holds, or mark refused rows to be sent again."""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._errors import UserInputError
from ..ledger import Entry, Ledger, LedgerWrite, Operator, PriorRow, RunLock, StatusUpdate, operator

__all__ = [
    "ACCEPTABLE_STATES",
    "RESEND_STATE",
    "AcceptedRow",
    "ResendChoice",
    "RowToResend",
    "accept_row",
    "resend_rows",
]


# -- accept ---------------------------------------------------------------------------------------

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

    cannot take through CWS (a v1 re-booking) that they added there themselves, or a row left in doubt that they
    found there.

    `accept_row` records it as a chained `accepted` entry; from then on the row's body counts as delivered, so
    the next run skips it (and, should the export change it again, holds or updates from that body).
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


# -- resend ---------------------------------------------------------------------------------------

RESEND_STATE = "resend"  # row_status only: marked by a person, sent by the next run (see `plan`)
_RESENDABLE = "rejected"


@dataclass(frozen=True)
class ResendChoice:
    """Which rejected rows to mark: by key, by line, those whose reason contains a text, or every one."""

    keys: Sequence[str] = ()
    lines: Sequence[int] = ()
    reason: str | None = None
    every_rejected: bool = False

    def describe(self) -> str:
        """The choice as the person made it, for messages and the ledger."""
        if self.keys:
            return "key " + ", ".join(self.keys)
        if self.lines:
            return "line " + ", ".join(map(str, self.lines))
        if self.reason is not None:
            return f"reason containing {self.reason!r}"
        return "every rejected row"


@dataclass(frozen=True)
class RowToResend:
    """A row marked (or, in a dry run, that would be marked) to be sent again: its key, line and refusal."""

    key: str
    line: int | None
    run_id: int
    reason: str | None
    seq: int | None = None  # the resend entry; None in a dry run


def resend_rows(
    ledger_path: Path, choice: ResendChoice, *, dry_run: bool = False, by: Operator | None = None
) -> list[RowToResend]:
    """Mark the chosen rejected rows to be sent again by the next run (chained, under the run lock).

    A choice that names no rejected row is a one-line UserInputError and nothing is written; so is a key or
    line whose row is in another state. dry_run: return what would be marked, writing nothing.

    (a facility added there later, say): an unchanged refused row is otherwise never sent again.

    `resend_rows` records each as a chained `resend` entry naming the operating-system user and host who asked,
    and sets the row's latest state to RESEND_STATE, which the next run's plan sends like a row it never sent.
    """
    who = by or operator()
    with RunLock(ledger_path), Ledger.open(ledger_path, create=False) as ledger:
        rows = _chosen(ledger, choice)
        if dry_run:
            return [RowToResend(r.key, r.line, r.run_id, r.reason) for r in rows]
        run_id = ledger.latest_run_id() or rows[0].run_id
        write = LedgerWrite()
        for r in rows:
            detail = json.dumps({"by": who.user, "host": who.host, "was": r.state, "chosen": choice.describe()},
                                separators=(",", ":"))  # fmt: skip
            write.entries.append(Entry(run_id, "resend", line=r.line, key=r.key, external_id=r.external_id,
                                       request_sha256=r.body_sha256, detail=detail))  # fmt: skip
            reason = f"marked by {who} to be sent again by the next run (refused in run {r.run_id})"
            write.updates.append(
                StatusUpdate(r.key, r.external_id, RESEND_STATE, r.body_sha256, run_id, r.line, reason)
            )
        ledger.append(write)
    return [RowToResend(r.key, r.line, r.run_id, r.reason, e.seq) for r, e in zip(rows, write.entries, strict=True)]


def _chosen(ledger: Ledger, choice: ResendChoice) -> list[PriorRow]:
    """The rejected rows the choice names; UserInputError when it names none, or names a row not rejected."""
    if choice.keys:
        return [_rejected_key(ledger, key) for key in dict.fromkeys(choice.keys)]
    rejected = ledger.rows_in_state(_RESENDABLE)
    if choice.lines:
        found = [r for r in rejected if r.line in set(choice.lines)]
        missing = sorted(set(choice.lines) - {r.line for r in found if r.line is not None})
        if missing:
            raise UserInputError(
                f"{ledger.path}: no rejected row was last seen on line {missing[0]}; `cws-pipeline report --state"
                " rejected` lists them with their lines"
            )
        return found
    if choice.reason is not None:
        wanted = choice.reason.casefold()
        rejected = [r for r in rejected if wanted in (r.reason or "").casefold()]
    if not rejected:
        raise UserInputError(
            f"{ledger.path}: no rejected row matches ({choice.describe()}); `cws-pipeline report --state rejected`"
            " lists them with CorEMR's reasons"
        )
    return rejected


def _rejected_key(ledger: Ledger, key: str) -> PriorRow:
    found = ledger.row_status(key)
    if found is None:
        raise UserInputError(
            f"{ledger.path}: no row has the key {key!r}; `cws-pipeline report` names each row by its key"
        )
    if found.state != _RESENDABLE:
        raise UserInputError(
            f"{ledger.path}: key {key!r} is {found.state} (run {found.run_id}); resend takes a row CorEMR rejected"
            " (the next run already sends again a row that failed, and a changed row is sent or held by on_change)"
        )
    return found
