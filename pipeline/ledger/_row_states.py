"""Row states: the one state each input row ends each run in, what a person should do about it, and what
earlier runs left for each row key (the ledger's derived row_status table) with the changes made to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

__all__ = [
    "ACTIONS",
    "NOT_DELIVERED",
    "ROW_STATES",
    "STATE_ADVICE",
    "STEPS",
    "Action",
    "PriorRow",
    "PriorRows",
    "RowState",
    "StatusUpdate",
    "Step",
]

RowState = Literal[
    "delivered", "skipped", "changed", "invalid", "rejected", "failed", "unverified", "ambiguous", "excluded",
    "duplicate",
]  # fmt: skip
ROW_STATES: tuple[RowState, ...] = get_args(RowState)

NOT_DELIVERED: frozenset[RowState] = frozenset(ROW_STATES) - {"delivered", "skipped", "excluded", "duplicate"}

# How a delivered row got there: its patient created; a booking added to a patient CorEMR already held; the
# patient and this booking found already there (a verified lookup); the patient updated with a corrected body;
# or (row_status only, no request) a person accepted its body as what CorEMR holds (`cws-pipeline accept`).
Action = Literal["created", "booking added", "found", "updated", "accepted"]
ACTIONS: tuple[Action, ...] = get_args(Action)
# Which request of a row a "sending" entry is about to send: the patient create, a booking create for an
# existing patient, or (for a correction) the patient update and then its booking's update.
Step = Literal["create", "booking", "update", "booking update"]
STEPS: tuple[Step, ...] = get_args(Step)

STATE_ADVICE: dict[RowState, str] = {
    "delivered": "CorEMR accepted the row and signed its answer; nothing to do.",
    "skipped": "The identical body was delivered in an earlier run; nothing to do.",
    "changed": 'Delivered earlier with a different body and held (the mapping\'s on_change = "hold"): make the '
    "changes shown in CorEMR by hand (on the patient, or on the booking for a booking field) and run "
    '`cws-pipeline accept --key KEY`, correct the export, or set on_change = "update" to send corrections.',
    "invalid": "The row failed the mapping or the CWS checks and was never sent: fix the export or the mapping; "
    "the next run sends it once it is valid.",
    "rejected": "CorEMR refused the row (4xx) with the message shown: fix the data (a changed row is sent again "
    "next run), or the cause in CorEMR and then `cws-pipeline resend` the row.",
    "failed": "Transient errors (timeouts, 5xx, 429) outlasted the retries; nothing landed. The next run "
    "sends it again.",
    "unverified": "An answer's signature was missing, bad or from an unknown signer. Check keys/coremr and the "
    "base_url; the next run settles the row by a signed lookup before sending anything.",
    "ambiguous": "The request may have reached CorEMR (dropped connection, timeout, crash) and no verified "
    "lookup settled it. The next run looks it up first; if it stays ambiguous, check the patient in CorEMR "
    "(then `cws-pipeline accept` the row if it is there).",
    "excluded": "An [[exclude]] rule of the mapping leaves the row out (a training or voided record): never sent; "
    "nothing to do.",
    "duplicate": "The same key and the byte-identical body as an earlier line of the export (one line per charge): "
    "one booking, delivered with that line; never sent; nothing to do.",
}


class PriorRow(NamedTuple):
    """What earlier runs left for one row key (row_status)."""

    key: str
    external_id: str | None
    state: str  # a RowState, or "sending" when a request was recorded as leaving but no outcome followed
    body_sha256: str | None
    delivered_sha256: str | None
    run_id: int
    line: int | None
    reason: str | None
    cells_sha256: str | None = None  # the input cells of the row's last state entry
    delivered_run_id: int | None = None  # the run that delivered delivered_sha256 (None: unknown, older ledgers)
    action: str | None = None  # an Action: how delivered_sha256 got there
    step: str | None = None  # a Step: the request a "sending" (or a doubt) is about; None: a create


# PriorRow's fields as a plain tuple: key, external_id, state, body_sha256, delivered_sha256, run_id, line,
# reason, cells_sha256, delivered_run_id, action, step (tuples of fewer fields take the defaults).
_PriorTuple = tuple[Any, ...]
_DOUBTFUL = frozenset(("sending", "ambiguous", "unverified"))


class PriorRows:
    """Every row key earlier runs left a state for (row_status), read once when a run starts.

    Held as plain tuples and made into PriorRows only when asked: a re-run reads 100,000s of them, and
    plain tuples of strings are left alone by the cycle collector, which namedtuples are not.
    """

    __slots__ = ("_reported", "_rows")

    def __init__(
        self, rows: dict[str, _PriorTuple], reported: frozenset[tuple[str, str, str | None]] = frozenset()
    ) -> None:
        self._rows = rows
        self._reported = reported  # (booking, state, cells SHA-256) of the lines the last run left needing a person

    def reported(self, booking: str, state: str, cells_sha256: str | None) -> bool:
        """True when the last finished run left this booking's line with these input cells in this state: it was
        reported then (a line without a key, or a sibling line of a key, is known by its cells)."""
        return (booking, state, cells_sha256) in self._reported

    def get(self, key: str) -> PriorRow | None:
        """What earlier runs left for this key, or None."""
        found = self._rows.get(key)
        return None if found is None else PriorRow(*found)

    def recorded(self, key: str) -> tuple[str, str | None, str | None] | None:
        """(state, body_sha256, cells_sha256) earlier runs left for this key, or None: without a PriorRow each."""
        found = self._rows.get(key)
        return None if found is None else (found[2], found[3], found[8] if len(found) > 8 else None)

    def delivered_sha256(self, key: str) -> str | None:
        """The SHA-256 of the body delivered for this key in an earlier run, if one was."""
        found = self._rows.get(key)
        return None if found is None else found[4]

    def in_doubt(self, key: str) -> bool:
        """True when a request for this key was recorded as leaving, or may have landed, and nothing settled it."""
        found = self._rows.get(key)
        return found is not None and found[2] in _DOUBTFUL

    def delivered_ids(self) -> Iterator[tuple[str, str]]:
        """(external_id, key) of every key delivered in an earlier run."""
        return ((t[1], t[0]) for t in self._rows.values() if t[4] and t[1])

    def values(self) -> Iterator[PriorRow]:
        """Every key's prior row."""
        return (PriorRow(*t) for t in self._rows.values())


@dataclass(frozen=True)
class StatusUpdate:
    """A change to row_status written in the same transaction as the entry that causes it."""

    key: str
    external_id: str | None
    state: str
    body_sha256: str | None
    run_id: int
    line: int | None
    reason: str | None = None
    delivered: bool = False  # sets delivered_sha256 = body_sha256, delivered_run_id = run_id and action
    cells_sha256: str | None = None  # None keeps the one recorded before
    action: str | None = None  # with delivered: how the body got there (an Action)
    step: str | None = None  # the request a "sending" or a doubt is about (a Step); None keeps the one before
