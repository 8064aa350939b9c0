"""A person marking rows CorEMR refused to be sent again by the next run, once the cause is fixed in CorEMR
(a facility added there later, say): an unchanged refused row is otherwise never sent again.

`resend_rows` records each as a chained `resend` entry naming the operating-system user and host who asked,
and sets the row's latest state to RESEND_STATE, which the next run's plan sends like a row it never sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._errors import UserInputError
from ..ledger import Entry, Ledger, LedgerWrite, PriorRow, RunLock, StatusUpdate
from ._who import Operator, operator

__all__ = ["RESEND_STATE", "ResendChoice", "RowToResend", "resend_rows"]

RESEND_STATE = "resend"  # row_status only: marked by a person, sent by the next run (see _plan)
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
