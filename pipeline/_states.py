"""Row states: the one outcome each input row gets in each run, and what a person should do about it."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["NOT_DELIVERED", "ROW_STATES", "STATE_ADVICE", "RowState"]

RowState = Literal["delivered", "skipped", "changed", "invalid", "rejected", "failed", "unverified", "ambiguous"]
ROW_STATES: tuple[RowState, ...] = get_args(RowState)

NOT_DELIVERED: frozenset[RowState] = frozenset(ROW_STATES) - {"delivered", "skipped"}

STATE_ADVICE: dict[RowState, str] = {
    "delivered": "CorEMR accepted the row and signed its answer; nothing to do.",
    "skipped": "The identical body was delivered in an earlier run; nothing to do.",
    "changed": "Delivered earlier with a different body and not sent again: update the patient in CorEMR "
    "by hand if the change matters, or correct the export.",
    "invalid": "The row failed the mapping or the CWS checks and was never sent: fix the export or the mapping; "
    "the next run sends it once it is valid.",
    "rejected": "CorEMR refused the row (4xx) with the message shown: fix the data; a changed row is sent again "
    "next run, an unchanged one is not.",
    "failed": "Transient errors (timeouts, 5xx, 429) outlasted the retries; nothing landed. The next run "
    "sends it again.",
    "unverified": "An answer's signature was missing, bad or from an unknown signer. Check keys/coremr and the "
    "base_url; the next run settles the row by a signed lookup before sending anything.",
    "ambiguous": "The request may have reached CorEMR (dropped connection, timeout, crash) and no verified "
    "lookup settled it. The next run looks it up first; if it stays ambiguous, check the patient in CorEMR.",
}
