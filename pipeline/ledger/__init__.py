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
from ._heads import RecordedHead, check_heads, read_head_log, record_chain_head
from ._ledger import Ledger
from ._lock import RunLock
from ._reads import (
    SETTLED_STATES,
    STATE_ROW_FIELDS,
    ChainHead,
    LedgerSize,
    OutstandingRow,
    StateRow,
    StateTally,
    StoredBody,
    booking_identity,
)
from ._row_states import (
    ACTIONS,
    NOT_DELIVERED,
    ROW_STATES,
    STATE_ADVICE,
    STEPS,
    Action,
    PriorRow,
    PriorRows,
    RowState,
    StatusUpdate,
    Step,
)
from ._runs import RUN_STATUS_MEANING, RUN_STATUSES, RunInfo, RunRecord, RunStatus
from ._site_facts import SiteFact, created_patient, record_site_fact, site_facts
from ._who import Operator, operator
from ._write import LedgerWrite
from ._writer import LedgerWriter

__all__ = [
    "ACTIONS",
    "NOT_DELIVERED",
    "ROW_STATES",
    "RUN_STATUSES",
    "RUN_STATUS_MEANING",
    "SETTLED_STATES",
    "STATE_ADVICE",
    "STATE_ROW_FIELDS",
    "STEPS",
    "Action",
    "ChainBreak",
    "ChainHead",
    "Entry",
    "Ledger",
    "LedgerSize",
    "LedgerWrite",
    "LedgerWriter",
    "Operator",
    "OutstandingRow",
    "PriorRow",
    "PriorRows",
    "RecordedHead",
    "RowState",
    "RunInfo",
    "RunLock",
    "RunRecord",
    "RunStatus",
    "SiteFact",
    "SkippedRow",
    "StateRow",
    "StateTally",
    "StatusUpdate",
    "Step",
    "StoredBody",
    "booking_identity",
    "check_heads",
    "created_patient",
    "now_iso",
    "operator",
    "read_head_log",
    "record_chain_head",
    "record_site_fact",
    "sha256_hex",
    "site_facts",
    "skipped_rows",
    "skipped_rows_entries",
    "verify_chain",
]
