"""The audit ledger: one SQLite file of runs, hash-chained entries, body bytes and each row's latest state.

The ledger records what happened and answers questions about it; it owns every SQL statement.
"""

from ._entries import (
    ChainBreak,
    Entry,
    SkippedRow,
    now_iso,
    sha256_hex,
    skipped_rows,
    skipped_rows_entries,
    verify_chain,
)
from ._ledger import Ledger, RunInfo
from ._lock import RunLock
from ._row_states import NOT_DELIVERED, ROW_STATES, STATE_ADVICE, PriorRow, PriorRows, RowState, StatusUpdate
from ._write import LedgerWrite
from ._writer import LedgerWriter

__all__ = [
    "NOT_DELIVERED",
    "ROW_STATES",
    "STATE_ADVICE",
    "ChainBreak",
    "Entry",
    "Ledger",
    "LedgerWrite",
    "LedgerWriter",
    "PriorRow",
    "PriorRows",
    "RowState",
    "RunInfo",
    "RunLock",
    "SkippedRow",
    "StatusUpdate",
    "now_iso",
    "sha256_hex",
    "skipped_rows",
    "skipped_rows_entries",
    "verify_chain",
]
